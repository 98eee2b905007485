// Package interoptest holds what the interoperability tests of both modules
// share: the article's order events, unique namespaces, the Kafka and AMQP
// adapters opened with their defaults on the test brokers (and cleaned up
// after the test), and a service run for the length of a test. The root
// module's internal/interop and the bench module's interop tests both use
// it, so a fix to how a test broker is opened or cleaned is made once.
package interoptest

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
	"github.com/switchyard-go/switchyard/pkg/service"
)

// Wait bounds every wait on a broker or a script.
const Wait = 60 * time.Second

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

// OrderPaid is a second type on the orders topic.
type OrderPaid struct {
	OrderID string `json:"orderId"`
}

func (OrderPaid) EventType() string  { return "orders.order_paid" }
func (OrderPaid) EventVersion() int  { return 1 }
func (e OrderPaid) EventKey() string { return e.OrderID }
func (OrderPaid) EventTopic() string { return "orders" }

// InvoiceRequested is what a billing handler publishes for an order.
type InvoiceRequested struct {
	OrderID string `json:"orderId"`
}

func (InvoiceRequested) EventType() string  { return "billing.invoice_requested" }
func (InvoiceRequested) EventVersion() int  { return 1 }
func (e InvoiceRequested) EventKey() string { return e.OrderID }
func (InvoiceRequested) EventTopic() string { return "invoices" }

// Handled is one event a typed handler got, with its envelope.
type Handled struct {
	Event    any
	Envelope event.Envelope
}

// ReceiveHandled collects n handled events by type, failing the test when
// they do not all arrive within [Wait].
func ReceiveHandled(t testing.TB, got <-chan Handled, n int) map[string]Handled {
	t.Helper()
	out := map[string]Handled{}
	deadline := time.After(Wait)
	for range n {
		select {
		case h := <-got:
			out[h.Envelope.Type] = h
		case <-deadline:
			t.Fatalf("handled %d of %d events: %v", len(out), n, out)
		}
	}
	return out
}

// Namespace returns a prefix for topics and groups unique to this test.
func Namespace(testing.TB) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "interop-" + hex.EncodeToString(b[:]) + "."
}

// Logger is the adapters' logger: debug output with SWITCHYARD_TEST_VERBOSE
// set, the adapters' default otherwise.
func Logger() *slog.Logger {
	if os.Getenv("SWITCHYARD_TEST_VERBOSE") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

// KafkaBroker opens the Kafka adapter with its defaults (the defaults are
// what is under test) on the test brokers, and deletes the namespace's
// topics when the test ends. mutate, if not nil, changes the config first.
func KafkaBroker(t testing.TB, ns string, mutate func(*kafka.Config)) *kafka.Broker {
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
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	b, err := kafka.New(ctx, cfg, Logger())
	if err != nil {
		t.Fatalf("kafka.New: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func deleteKafkaTopics(t testing.TB, brokers []string, ns string) {
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

// AMQPEnv is one test's RabbitMQ: the adapter, and the exchanges and
// queues to delete when the test ends.
type AMQPEnv struct {
	t   testing.TB
	url string
	ns  string

	mu        sync.Mutex
	exchanges []string
	queues    []string
}

// NewAMQPEnv returns the test RabbitMQ for namespace ns; what its Topic
// records is deleted when the test ends.
func NewAMQPEnv(t testing.TB, ns string) *AMQPEnv {
	t.Helper()
	e := &AMQPEnv{t: t, url: brokertest.AMQPURL(t), ns: ns}
	t.Cleanup(e.cleanup)
	return e
}

// URL is the test RabbitMQ's address.
func (e *AMQPEnv) URL() string { return e.url }

// Broker opens the AMQP adapter with its defaults on the test RabbitMQ.
// mutate, if not nil, changes the config first.
func (e *AMQPEnv) Broker(mutate func(*amqp.Config)) *amqp.Broker {
	e.t.Helper()
	cfg := amqp.Config{URL: e.url, ConnectionName: "interop-" + e.ns}
	if mutate != nil {
		mutate(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	b, err := amqp.New(ctx, cfg, Logger())
	if err != nil {
		e.t.Fatalf("amqp.New: %v", err)
	}
	e.t.Cleanup(func() { _ = b.Close() })
	return b
}

// Topic returns the namespaced topic and records its exchange and the
// queues of the given groups (and their dead-letter topics) for deletion.
func (e *AMQPEnv) Topic(topic string, groups ...string) string {
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

// Queue records a queue created outside the adapter (by another client)
// for deletion when the test ends.
func (e *AMQPEnv) Queue(name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.queues = append(e.queues, name)
}

func (e *AMQPEnv) cleanup() {
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

// Run starts svc and waits until it is subscribed; it is stopped, and its
// Run error reported, when the test ends.
func Run(t testing.TB, svc *service.Service) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	select {
	case <-svc.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("Run: %v", err)
	case <-time.After(Wait):
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
		case <-time.After(Wait):
			t.Error("service did not stop")
		}
	})
}
