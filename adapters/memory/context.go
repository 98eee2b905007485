package memory

import (
	"context"
	"sync"
	"time"
)

// deliveryCtx is the context of one delivered message: it carries the values
// of the Subscribe context, not its cancellation, and is cancelled on Ack,
// Nack or Close. It costs no allocation until Done or AfterFunc is called
// (the first delivery of an entry uses the one embedded in it), and it
// implements AfterFunc so that contexts derived from it with
// [context.WithCancel] or [context.WithTimeout] need no watcher goroutine.
type deliveryCtx struct {
	values context.Context

	mu        sync.Mutex
	done      chan struct{}
	cancelled bool
	afters    []*afterFunc
}

type afterFunc struct{ f func() }

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (c *deliveryCtx) Deadline() (time.Time, bool) { return time.Time{}, false }

func (c *deliveryCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		if c.cancelled {
			return closedChan
		}
		c.done = make(chan struct{})
	}
	return c.done
}

func (c *deliveryCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancelled {
		return context.Canceled
	}
	return nil
}

func (c *deliveryCtx) Value(key any) any { return c.values.Value(key) }

// AfterFunc is what [context.AfterFunc] and derived contexts use: f runs in
// its own goroutine once c is cancelled; stop unregisters it.
func (c *deliveryCtx) AfterFunc(f func()) (stop func() bool) {
	a := &afterFunc{f: f}
	c.mu.Lock()
	if c.cancelled {
		c.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	c.afters = append(c.afters, a)
	c.mu.Unlock()
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, x := range c.afters {
			if x == a {
				c.afters = append(c.afters[:i], c.afters[i+1:]...)
				return true
			}
		}
		return false
	}
}

func (c *deliveryCtx) cancel() {
	c.mu.Lock()
	if c.cancelled {
		c.mu.Unlock()
		return
	}
	c.cancelled = true
	if c.done != nil {
		close(c.done)
	}
	afters := c.afters
	c.afters = nil
	c.mu.Unlock()
	for _, a := range afters {
		go a.f()
	}
}
