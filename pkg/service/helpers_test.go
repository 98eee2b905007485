package service_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.uber.org/goleak"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/service"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// guard bounds every wait so that a bug fails the test instead of hanging
// it; it is not a speed assertion.
const guard = 10 * time.Second

type orderPlaced struct {
	OrderID string `json:"order_id"`
}

func (orderPlaced) EventType() string  { return "orders.order_placed" }
func (orderPlaced) EventVersion() int  { return 1 }
func (orderPlaced) EventTopic() string { return "orders" }
func (e orderPlaced) EventKey() string { return e.OrderID }

type orderCancelled struct {
	OrderID string `json:"order_id"`
}

func (orderCancelled) EventType() string  { return "orders.order_cancelled" }
func (orderCancelled) EventVersion() int  { return 1 }
func (orderCancelled) EventTopic() string { return "orders" }

type stockReserved struct {
	OrderID string `json:"order_id"`
}

func (stockReserved) EventType() string { return "inventory.stock_reserved" }
func (stockReserved) EventVersion() int { return 1 }

func newBroker(t *testing.T) *memory.Broker {
	t.Helper()
	b, err := memory.New(memory.Config{NackBackoff: time.Millisecond, MaxNackBackoff: 10 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// immediateClock returns from Sleep at once, so retries take no time.
type immediateClock struct{}

func (immediateClock) Now() time.Time                                   { return time.Now() }
func (immediateClock) Sleep(ctx context.Context, _ time.Duration) error { return ctx.Err() }

// start runs svc until the returned stop is called (or the test ends) and
// waits until it is subscribed. stop cancels Run's context and returns
// Run's error.
func start(t *testing.T, svc *service.Service) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- svc.Run(ctx) }()
	select {
	case <-svc.Ready():
	case err := <-errc:
		cancel()
		t.Fatalf("Run: %v", err)
	case <-time.After(guard):
		cancel()
		t.Fatal("service not ready")
	}
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-errc:
			case <-time.After(guard):
				t.Error("Run did not return after its context was cancelled")
			}
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(guard):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// probe subscribes as its own consumer group; messages published to topic
// afterwards (or kept in the topic's backlog) arrive on the returned channel,
// acked.
func probe(t *testing.T, b broker.Broker, group, topic string) <-chan *message.Message {
	t.Helper()
	sub, err := b.Subscriber(group, broker.SubscriberOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	msgs, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan *message.Message, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m := range msgs {
			m.Ack()
			out <- m
		}
	}()
	t.Cleanup(func() { cancel(); _ = sub.Close(); <-done })
	return out
}

// logCapture is a slog handler that reports records whose message contains
// a given text.
type logCapture struct {
	mu    sync.Mutex
	waits map[string]chan struct{}
}

func newLogCapture(wanted ...string) (*slog.Logger, *logCapture) {
	c := &logCapture{waits: map[string]chan struct{}{}}
	for _, w := range wanted {
		c.waits[w] = make(chan struct{})
	}
	return slog.New(c), c
}

func (c *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (c *logCapture) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *logCapture) WithGroup(string) slog.Handler            { return c }
func (c *logCapture) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for w, ch := range c.waits {
		if strings.Contains(r.Message, w) {
			delete(c.waits, w)
			close(ch)
		}
	}
	return nil
}

func (c *logCapture) seen(text string) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch, ok := c.waits[text]; ok {
		return ch
	}
	ch := make(chan struct{})
	close(ch)
	return ch
}
