package switchyardtest

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/switchyard-go/switchyard/pkg/middleware"
)

// DefaultStart is the time a harness's clock starts at.
var DefaultStart = time.Date(2030, time.January, 1, 0, 0, 0, 0, time.UTC)

// Clock is a fake [middleware.Clock] for retry backoffs, dead-letter
// times, event times and the harness broker's delayed retries.
//
// An automatic clock ([NewClock]) jumps: every wait returns at once and
// moves the clock forward by its length, so a handler that fails four
// times with backoffs of seconds is retried, and dead-lettered, in
// microseconds, and the failure times it reports are as far apart as the
// backoffs say. A manual clock ([NewManualClock]) stands still: waits
// block until [Clock.Advance] moves it past their end, for tests of what
// happens before a wait is over.
//
// It implements the idempotency package's Clock too (Now), so a store can
// share it. It is safe for concurrent use.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	manual  bool
	waits   []*wait
	changed chan struct{}
}

// wait is a sleeper or a timer on a manual clock.
type wait struct {
	due  time.Time
	done chan struct{} // closed when due (sleepers)
	fire func()        // run when due (timers)
}

var _ middleware.Clock = (*Clock)(nil)

// NewClock returns an automatic clock at start (zero means [DefaultStart]).
func NewClock(start time.Time) *Clock { return newClock(start, false) }

// NewManualClock returns a manual clock at start (zero means
// [DefaultStart]): time moves only with [Clock.Advance].
func NewManualClock(start time.Time) *Clock { return newClock(start, true) }

func newClock(start time.Time, manual bool) *Clock {
	if start.IsZero() {
		start = DefaultStart
	}
	return &Clock{now: start, manual: manual, changed: make(chan struct{})}
}

// Manual reports whether the clock moves only with Advance.
func (c *Clock) Manual() bool { return c.manual }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Sleep waits for d on the clock, or until ctx is done (returning its
// error). On an automatic clock it moves the clock forward by d and
// returns at once.
func (c *Clock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil || d <= 0 {
		return err
	}
	if !c.manual {
		c.Advance(d)
		return nil
	}
	w := &wait{done: make(chan struct{})}
	c.add(w, d)
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		c.remove(w)
		return ctx.Err()
	}
}

// AfterFunc runs fn once the clock passed d from now: at once (in the
// caller's goroutine, after moving the clock forward by d) on an automatic
// clock; from Advance on a manual one.
func (c *Clock) AfterFunc(d time.Duration, fn func()) {
	if !c.manual || d <= 0 {
		if d > 0 {
			c.Advance(d)
		}
		fn()
		return
	}
	c.add(&wait{fire: fn}, d)
}

func (c *Clock) add(w *wait, d time.Duration) {
	c.mu.Lock()
	w.due = c.now.Add(d)
	c.waits = append(c.waits, w)
	c.notifyLocked()
	c.mu.Unlock()
}

func (c *Clock) remove(w *wait) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i := slices.Index(c.waits, w); i >= 0 {
		c.waits = slices.Delete(c.waits, i, i+1)
		c.notifyLocked()
	}
}

// Advance moves the clock forward by d and ends every wait that is over
// then, earliest first.
func (c *Clock) Advance(d time.Duration) {
	if d < 0 {
		return
	}
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*wait
	c.waits = slices.DeleteFunc(c.waits, func(w *wait) bool {
		if w.due.After(c.now) {
			return false
		}
		due = append(due, w)
		return true
	})
	c.notifyLocked()
	c.mu.Unlock()
	slices.SortStableFunc(due, func(a, b *wait) int { return a.due.Compare(b.due) })
	for _, w := range due {
		if w.fire != nil {
			w.fire()
		} else {
			close(w.done)
		}
	}
}

// AdvanceToNext moves a manual clock to the end of its earliest wait and
// ends it (and any due at the same time), returning how far it moved; false
// when nothing waits.
func (c *Clock) AdvanceToNext() (time.Duration, bool) {
	c.mu.Lock()
	if len(c.waits) == 0 {
		c.mu.Unlock()
		return 0, false
	}
	next := c.waits[0].due
	for _, w := range c.waits[1:] {
		if w.due.Before(next) {
			next = w.due
		}
	}
	d := next.Sub(c.now)
	c.mu.Unlock()
	c.Advance(d)
	return d, true
}

// Waiting returns how many waits (sleeping retries, held delayed
// redeliveries) a manual clock holds, and how long until the earliest
// ends.
func (c *Clock) Waiting() (n int, next time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, w := range c.waits {
		if d := w.due.Sub(c.now); i == 0 || d < next {
			next = d
		}
	}
	return len(c.waits), next
}

// Changed returns a channel closed the next time a wait starts or ends or
// the clock moves.
func (c *Clock) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

func (c *Clock) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}
