package middleware_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.uber.org/goleak"

	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/middleware"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeClock records every Sleep and advances its time by the slept duration
// without waiting. With block set, Sleep waits for ctx instead and reports
// on sleeping that it started.
type fakeClock struct {
	mu       sync.Mutex
	now      time.Time
	sleeps   []time.Duration
	block    bool
	sleeping chan struct{}
}

func newClock() *fakeClock { return &fakeClock{now: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	block := c.block
	c.mu.Unlock()
	if block {
		close(c.sleeping)
		<-ctx.Done()
	}
	return ctx.Err()
}

func (c *fakeClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

func ms(ns ...int) []time.Duration {
	out := make([]time.Duration, len(ns))
	for i, n := range ns {
		out[i] = time.Duration(n) * time.Millisecond
	}
	return out
}

// newDelivery returns a delivery of one message with custom headers, as the
// runtime builds it.
func newDelivery() *middleware.Delivery {
	msg := message.NewMessage("msg-1", []byte(`{"order_id":"o-1"}`))
	env := event.Envelope{ID: "msg-1", Type: "orders.order_placed", Version: 1, Source: "test",
		CorrelationID: "corr-1", CausationID: "cause-1", HopCount: 2, ContentType: "application/json"}
	env.Write(msg.Metadata)
	msg.Metadata.Set("x-custom", "kept")
	return &middleware.Delivery{
		Msg:      msg,
		Envelope: env,
		Handler:  &middleware.Info{Name: "reserve", Group: "inventory", Topic: "orders", EventType: "orders.order_placed"},
		Attempt:  1,
		Received: t0,
	}
}

// recordingPublisher records published messages; err, when set, fails every publish.
type recordingPublisher struct {
	mu     sync.Mutex
	err    error
	topics []string
	msgs   []*message.Message
}

func (p *recordingPublisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.err
	}
	for _, m := range msgs {
		p.topics = append(p.topics, topic)
		p.msgs = append(p.msgs, m)
	}
	return nil
}

func (p *recordingPublisher) Close() error { return nil }

// captureHandler is a slog.Handler keeping every record with the attributes
// accumulated by With.
type captureHandler struct {
	mu      *sync.Mutex
	records *[]map[string]any
	attrs   []slog.Attr
}

func newCapture() (*slog.Logger, *captureHandler) {
	h := &captureHandler{mu: &sync.Mutex{}, records: &[]map[string]any{}}
	return slog.New(h), h
}

func (h *captureHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *captureHandler) Handle(_ context.Context, r slog.Record) error {
	m := map[string]any{"msg": r.Message, "level": r.Level}
	for _, a := range h.attrs {
		m[a.Key] = a.Value.Any()
	}
	r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.Any(); return true })
	h.mu.Lock()
	*h.records = append(*h.records, m)
	h.mu.Unlock()
	return nil
}

func (h *captureHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &c
}

func (h *captureHandler) WithGroup(string) slog.Handler { return h }

func (h *captureHandler) Records() []map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]map[string]any(nil), *h.records...)
}
