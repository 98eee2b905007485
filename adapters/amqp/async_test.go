package amqp

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pkg/broker"
)

// asyncOutcomes collects PublishAsync's reports, failing on a second
// report for a message.
type asyncOutcomes struct {
	t    *testing.T
	mu   sync.Mutex
	by   map[string]error
	seen chan struct{}
}

func newAsyncOutcomes(t *testing.T, n int) *asyncOutcomes {
	return &asyncOutcomes{t: t, by: map[string]error{}, seen: make(chan struct{}, n)}
}

func (o *asyncOutcomes) done(m *message.Message, err error) {
	o.mu.Lock()
	if prev, dup := o.by[m.UUID]; dup {
		o.t.Errorf("message %s reported twice: %v, then %v", m.UUID, prev, err)
	}
	o.by[m.UUID] = err
	o.mu.Unlock()
	o.seen <- struct{}{}
}

func (o *asyncOutcomes) wait(n int, timeout time.Duration) map[string]error {
	o.t.Helper()
	deadline := time.After(timeout)
	for i := range n {
		select {
		case <-o.seen:
		case <-deadline:
			o.t.Fatalf("%d of %d messages reported within %s", i, n, timeout)
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.by
}

// More messages than the window, from one goroutine: all confirmed, each
// reported once, delivered in publish order; a topic with no group reports
// ErrUnroutable per message; a closed publisher ErrClosed.
func TestPublishAsyncConfirmsEveryMessage(t *testing.T) {
	e := newEnv(t)
	topic := e.topic("g")
	b := e.broker(nil)
	_, msgs := subscribe(t, b, "g", topic, broker.SubscriberOptions{Prefetch: 500})
	pub := b.Publisher().(broker.AsyncPublisher)

	const n = 3 * AsyncWindow
	sent := newMessages(n, "async")
	o := newAsyncOutcomes(t, n)
	pub.PublishAsync(context.Background(), topic, o.done, sent...)
	for id, err := range o.wait(n, 30*time.Second) {
		if err != nil {
			t.Errorf("message %s: %v", id, err)
		}
	}
	for i := range n {
		m := receive(t, msgs, 1, 30*time.Second)[0]
		if m.UUID != sent[i].UUID {
			t.Fatalf("delivery %d is %s, want %s (publish order)", i, m.UUID, sent[i].UUID)
		}
		m.Ack()
	}

	unbound := e.topic()
	o = newAsyncOutcomes(t, 3)
	pub.PublishAsync(context.Background(), unbound, o.done, newMessages(3, "x")...)
	for id, err := range o.wait(3, 30*time.Second) {
		if !errors.Is(err, ErrUnroutable) || !strings.Contains(err.Error(), unbound) {
			t.Errorf("message %s to a topic without groups: %v, want ErrUnroutable naming the topic", id, err)
		}
	}

	// Close waits for the confirms of what was handed over.
	o = newAsyncOutcomes(t, 500)
	pub.PublishAsync(context.Background(), topic, o.done, newMessages(500, "before close")...)
	_ = b.Close()
	for id, err := range o.wait(500, time.Second) {
		if err != nil {
			t.Errorf("message %s handed over before Close: %v, want confirmed", id, err)
		}
	}

	o = newAsyncOutcomes(t, 2)
	pub.PublishAsync(context.Background(), topic, o.done, newMessages(2, "x")...)
	for id, err := range o.wait(2, time.Second) {
		if !errors.Is(err, broker.ErrClosed) {
			t.Errorf("message %s after Close: %v, want broker.ErrClosed", id, err)
		}
	}
}

// A cancelled context stops the hand-over: the messages not sent are
// reported with its error, the others confirmed.
func TestPublishAsyncCancelledContext(t *testing.T) {
	e := newEnv(t)
	topic := e.topic("g")
	b := e.broker(nil)
	subscribe(t, b, "g", topic, broker.SubscriberOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	o := newAsyncOutcomes(t, 4)
	b.Publisher().(broker.AsyncPublisher).PublishAsync(ctx, topic, o.done, newMessages(4, "x")...)
	for id, err := range o.wait(4, 10*time.Second) {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("message %s: %v, want context.Canceled", id, err)
		}
	}
}
