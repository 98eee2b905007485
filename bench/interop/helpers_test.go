package interop_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-go/switchyard/adapters/amqp"
	"github.com/switchyard-go/switchyard/adapters/kafka"
	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// These helpers are the subset of the root module's internal/interop
// helpers that the Watermill tests use (test files can't be imported
// across packages, let alone modules).

// wait bounds every wait on a broker.
const wait = 60 * time.Second

// OrderPlaced is the article's order event as a Switchyard event.
type OrderPlaced struct {
	OrderID string  `json:"orderId"`
	UserID  string  `json:"userId"`
	Total   float64 `json:"total"`
}

func (OrderPlaced) EventType() string  { return "orders.order_placed" }
func (OrderPlaced) EventVersion() int  { return 1 }
func (e OrderPlaced) EventKey() string { return e.OrderID }
func (OrderPlaced) EventTopic() string { return "orders" }

// InvoiceRequested is what the billing handler publishes for an order.
type InvoiceRequested struct {
	OrderID string `json:"orderId"`
}

func (InvoiceRequested) EventType() string  { return "billing.invoice_requested" }
func (InvoiceRequested) EventVersion() int  { return 1 }
func (e InvoiceRequested) EventKey() string { return e.OrderID }
func (InvoiceRequested) EventTopic() string { return "invoices" }

// handled is one event a typed handler got, with its envelope.
type handled struct {
	event any
	env   event.Envelope
}

// billing registers a typed handler for OrderPlaced in group "billing"
// that requests an invoice, reporting what it handles.
func billing(t *testing.T, svc *service.Service) <-chan handled {
	t.Helper()
	got := make(chan handled, 16)
	if err := service.Handle(svc, "billing.placed", func(ctx context.Context, e OrderPlaced) error {
		got <- handled{e, middleware.DeliveryFrom(ctx).Envelope}
		return svc.Publish(ctx, InvoiceRequested{OrderID: e.OrderID})
	}, service.Group("billing"), service.Publishes(InvoiceRequested{})); err != nil {
		t.Fatal(err)
	}
	return got
}

// receiveHandled collects n handled events by type.
func receiveHandled(t *testing.T, got <-chan handled, n int) map[string]handled {
	t.Helper()
	out := map[string]handled{}
	for range n {
		select {
		case h := <-got:
			out[h.env.Type] = h
		case <-time.After(wait):
			t.Fatalf("handled %d of %d events: %v", len(out), n, out)
		}
	}
	return out
}

// namespace returns a namespace unique to this test.
func namespace(t *testing.T) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "interop-" + hex.EncodeToString(b[:]) + "."
}

func logger() *slog.Logger {
	if os.Getenv("SWITCHYARD_TEST_VERBOSE") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

// kafkaBroker opens the Kafka adapter with its defaults on the test
// brokers, and deletes the namespace's topics when the test ends.
func kafkaBroker(t *testing.T, ns string, mutate func(*kafka.Config)) *kafka.Broker {
	t.Helper()
	brokers := strings.Split(brokertest.KafkaBrokers(t), ",")
	t.Cleanup(func() { deleteKafkaTopics(t, brokers, ns) })
	cfg := kafka.Config{
		Brokers: brokers,
		// Short group timings keep joining quick; they are not interop.
		SessionTimeout:    6 * time.Second,
		RebalanceTimeout:  5 * time.Second,
		HeartbeatInterval: 500 * time.Millisecond,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	b, err := kafka.New(ctx, cfg, logger())
	if err != nil {
		t.Fatalf("kafka.New: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func deleteKafkaTopics(t *testing.T, brokers []string, ns string) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	var mine []string
	for _, name := range topics.Names() {
		if strings.HasPrefix(name, ns) {
			mine = append(mine, name)
		}
	}
	if len(mine) > 0 {
		_, _ = adm.DeleteTopics(ctx, mine...)
	}
}

// amqpEnv is one test's RabbitMQ: the adapter, and the exchanges and
// queues to delete when the test ends.
type amqpEnv struct {
	t   *testing.T
	url string
	ns  string

	mu        sync.Mutex
	exchanges []string
	queues    []string
}

func newAMQPEnv(t *testing.T, ns string) *amqpEnv {
	t.Helper()
	e := &amqpEnv{t: t, url: brokertest.AMQPURL(t), ns: ns}
	t.Cleanup(e.cleanup)
	return e
}

// broker opens the AMQP adapter with its defaults on the test RabbitMQ.
func (e *amqpEnv) broker(mutate func(*amqp.Config)) *amqp.Broker {
	e.t.Helper()
	cfg := amqp.Config{URL: e.url, ConnectionName: "interop-" + e.ns}
	if mutate != nil {
		mutate(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	b, err := amqp.New(ctx, cfg, logger())
	if err != nil {
		e.t.Fatalf("amqp.New: %v", err)
	}
	e.t.Cleanup(func() { _ = b.Close() })
	return b
}

// topic records the exchange of a namespaced topic and the queues of the
// given groups (and their dead-letter topics) for deletion.
func (e *amqpEnv) topic(topic string, groups ...string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.exchanges = append(e.exchanges, e.ns+topic)
	for _, g := range groups {
		dl := service.DeadLetterTopicFor(e.ns + g)
		e.queues = append(e.queues, e.ns+topic+"."+e.ns+g, dl+"."+broker.DeadLetterGroup)
		e.exchanges = append(e.exchanges, dl)
	}
	return e.ns + topic
}

func (e *amqpEnv) cleanup() {
	conn, err := amqp091.Dial(e.url)
	if err != nil {
		e.t.Logf("cleanup: %v", err)
		return
	}
	defer conn.Close()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, q := range e.queues {
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(q, false, false, false)
			_ = ch.Close()
		}
	}
	for _, x := range e.exchanges {
		if ch, err := conn.Channel(); err == nil {
			_ = ch.ExchangeDelete(x, false, false)
			_ = ch.Close()
		}
	}
}

// run starts svc and waits until it is subscribed; it is stopped when the
// test ends.
func run(t *testing.T, svc *service.Service) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	select {
	case <-svc.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("Run: %v", err)
	case <-time.After(wait):
		cancel()
		t.Fatal("service not ready")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(wait):
			t.Error("service did not stop")
		}
	})
}
