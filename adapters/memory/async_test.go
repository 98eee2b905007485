package memory_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/pkg/broker"
)

// outcomes records what done was told, per message id, failing the test
// on a second report for the same message.
type outcomes struct {
	t  *testing.T
	mu sync.Mutex
	by map[string]error
}

func newOutcomes(t *testing.T) *outcomes { return &outcomes{t: t, by: map[string]error{}} }

func (o *outcomes) done(m *message.Message, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, dup := o.by[m.UUID]; dup {
		o.t.Errorf("message %s reported twice (second: %v)", m.UUID, err)
	}
	o.by[m.UUID] = err
}

func TestPublishAsyncReportsEveryMessageInOrder(t *testing.T) {
	b := newBroker(t, memory.Config{BufferSize: 16})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, ch := subscribe(t, b, ctx, "g", "orders", 4)
	var msgs []*message.Message
	for i := range 100 { // more than the buffer: PublishAsync waits for room
		msgs = append(msgs, newMsg(fmt.Sprint(i), "k"))
	}
	got := make(chan string, len(msgs))
	go func() {
		for m := range ch {
			got <- m.UUID
			m.Ack()
		}
	}()
	o := newOutcomes(t)
	b.Publisher().(broker.AsyncPublisher).PublishAsync(ctx, "orders", o.done, msgs...)
	if len(o.by) != len(msgs) {
		t.Fatalf("%d outcomes reported by the time PublishAsync returned, want %d", len(o.by), len(msgs))
	}
	for id, err := range o.by {
		if err != nil {
			t.Errorf("message %s: %v", id, err)
		}
	}
	for i := range msgs {
		select {
		case id := <-got:
			if id != fmt.Sprint(i) {
				t.Fatalf("delivery %d is message %s, want publish order", i, id)
			}
		case <-time.After(waitLong):
			t.Fatalf("%d of %d delivered", i, len(msgs))
		}
	}
}

func TestPublishAsyncReportsContextAndCloseErrors(t *testing.T) {
	b := newBroker(t, memory.Config{BufferSize: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	subscribe(t, b, ctx, "g", "orders", 1) // nobody reads: the queue fills
	pub := b.Publisher().(broker.AsyncPublisher)

	// The queue takes a message or two (one may be handed out to the
	// subscription); the rest wait for room until ctx ends, then are
	// reported with ctx's error, each once, none stored after a failure.
	wctx, wcancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer wcancel()
	o := newOutcomes(t)
	var msgs []*message.Message
	for i := range 6 {
		msgs = append(msgs, newMsg(fmt.Sprint(i), ""))
	}
	pub.PublishAsync(wctx, "orders", o.done, msgs...)
	if len(o.by) != len(msgs) {
		t.Fatalf("%d outcomes, want %d", len(o.by), len(msgs))
	}
	if err := o.by["0"]; err != nil {
		t.Errorf("message 0: %v, want stored", err)
	}
	failed := false
	for i := range msgs {
		err := o.by[fmt.Sprint(i)]
		switch {
		case err != nil && !errors.Is(err, context.DeadlineExceeded):
			t.Errorf("message %d: %v, want context.DeadlineExceeded", i, err)
		case err == nil && failed:
			t.Errorf("message %d stored after an earlier one timed out", i)
		}
		failed = failed || err != nil
	}
	if !failed {
		t.Errorf("all %d stored in a queue of 1 nobody reads", len(msgs))
	}

	_ = b.Close()
	o = newOutcomes(t)
	pub.PublishAsync(context.Background(), "orders", o.done, newMsg("3", ""))
	if err := o.by["3"]; !errors.Is(err, broker.ErrClosed) {
		t.Errorf("after Close: %v, want broker.ErrClosed", err)
	}
}

// A publisher without PublishAsync still reports every message once
// through the broker.PublishAsync helper.
func TestPublishAsyncHelperFallsBackToPublish(t *testing.T) {
	b := newBroker(t, memory.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	subscribe(t, b, ctx, "g", "orders", 1)
	o := newOutcomes(t)
	broker.PublishAsync(ctx, syncOnly{b.Publisher()}, "orders", o.done, newMsg("a", ""), newMsg("b", ""))
	if len(o.by) != 2 || o.by["a"] != nil || o.by["b"] != nil {
		t.Fatalf("outcomes %v, want a and b stored", o.by)
	}
}

// syncOnly hides the publisher's PublishAsync.
type syncOnly struct{ message.Publisher }
