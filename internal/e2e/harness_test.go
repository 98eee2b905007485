package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-go/switchyard/config"
	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/retry"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// brokerKind opens a fresh connection to one kind of broker through config,
// as an application would.
type brokerKind struct {
	name string
	cfg  func(t *testing.T) config.Config
}

func kinds() []brokerKind {
	return []brokerKind{
		{"memory", func(*testing.T) config.Config { return config.Defaults() }},
		{"amqp", func(t *testing.T) config.Config {
			c := config.Defaults()
			c.Broker.Type = config.BrokerAMQP
			c.Broker.AMQP.URL = brokertest.AMQPURL(t)
			return c
		}},
		{"kafka", func(t *testing.T) config.Config {
			c := config.Defaults()
			c.Broker.Type = config.BrokerKafka
			c.Broker.Kafka.Brokers = strings.Split(brokertest.KafkaBrokers(t), ",")
			return c
		}},
	}
}

// harness is one scenario on one broker: a namespace of its own, services
// that run until the test ends, and raw inspectors.
type harness struct {
	t      *testing.T
	kind   string
	cfg    config.Config
	ns     string
	logger *slog.Logger
	mu     sync.Mutex
	opened []broker.Broker
}

func newHarness(t *testing.T, k brokerKind) *harness {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	level := slog.LevelWarn
	if os.Getenv("SWITCHYARD_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	h := &harness{
		t:      t,
		kind:   k.name,
		cfg:    k.cfg(t),
		ns:     "e2e-" + hex.EncodeToString(b[:]) + ".",
		logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
	}
	t.Cleanup(func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, b := range h.opened {
			_ = b.Close()
		}
	})
	return h
}

// broker opens a new broker connection, closed when the test ends. The
// in-memory broker lives in the process, so every "connection" to it is the
// same broker.
func (h *harness) broker() broker.Broker {
	h.t.Helper()
	if h.cfg.Broker.Type == config.BrokerMemory {
		h.mu.Lock()
		if len(h.opened) > 0 {
			b := h.opened[0]
			h.mu.Unlock()
			return b
		}
		h.mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := config.Open(ctx, h.cfg, h.logger)
	if err != nil {
		h.t.Fatalf("open %s: %v", h.kind, err)
	}
	h.mu.Lock()
	h.opened = append(h.opened, b)
	h.mu.Unlock()
	return b
}

// fastRetry keeps retry scenarios quick on every broker.
var fastRetry = retry.Policy{MaxAttempts: 4, InitialInterval: 10 * time.Millisecond, MaxInterval: 50 * time.Millisecond, Jitter: -1}

// service returns a service in the harness namespace on broker b.
func (h *harness) service(b broker.Broker, opts ...service.Option) *service.Service {
	base := []service.Option{
		service.WithNamespace(h.ns),
		service.WithSource("e2e-" + h.kind),
		service.WithLogger(h.logger),
		service.WithShutdownTimeout(20 * time.Second),
		service.WithDefaults(service.Policy{Retry: fastRetry}),
	}
	return service.New(b, append(base, opts...)...)
}

// run starts svc and waits until it is subscribed. The returned stop
// cancels it and waits for Run to return.
func (h *harness) run(svc *service.Service) (stop func()) {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	select {
	case <-svc.Ready():
	case err := <-done:
		cancel()
		h.t.Fatalf("run: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		h.t.Fatal("service not ready after 60s")
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					h.t.Errorf("run returned: %v", err)
				}
			case <-time.After(60 * time.Second):
				h.t.Error("service did not stop within 60s")
			}
		})
	}
	h.t.Cleanup(stop)
	return stop
}

// settled waits, on Kafka, until the consumer group is stable with members
// members, so a scenario's messages are not caught in the rebalance of a
// member joining (its redeliveries are at-least-once, not what the scenario
// tests). Other brokers have no rebalance.
func (h *harness) settled(group string, members int) {
	h.t.Helper()
	if h.cfg.Broker.Type != config.BrokerKafka {
		return
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.cfg.Broker.Kafka.Brokers...))
	if err != nil {
		h.t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	group = h.ns + group
	eventually(h.t, fmt.Sprintf("kafka group %s stable with %d members", group, members), func() bool {
		gs, err := adm.DescribeGroups(context.Background(), group)
		if err != nil {
			return false
		}
		g, ok := gs[group]
		return ok && g.Err == nil && g.State == "Stable" && len(g.Members) == members
	})
}

// inspect subscribes a raw Watermill subscriber, in its own group, to a
// namespaced topic: it sees messages as a non-Switchyard consumer would.
// It must be called before the messages are published.
func (h *harness) inspect(b broker.Broker, topic string) <-chan *message.Message {
	h.t.Helper()
	sub, err := b.Subscriber(h.ns+"inspector", broker.SubscriberOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	msgs, err := sub.Subscribe(ctx, h.ns+topic)
	if err != nil {
		cancel()
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { cancel(); _ = sub.Close() })
	return msgs
}

// next returns the next inspected message, acked, or fails after a wait.
func (h *harness) next(msgs <-chan *message.Message) *message.Message {
	h.t.Helper()
	select {
	case m, ok := <-msgs:
		if !ok {
			h.t.Fatal("inspector closed")
		}
		m.Ack()
		return m
	case <-time.After(60 * time.Second):
		h.t.Fatal("no message within 60s")
	}
	return nil
}

// eventually polls cond until it holds or 60s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// counter counts occurrences of string keys, safely.
type counter struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *counter) add(k string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]int{}
	}
	c.m[k]++
}

func (c *counter) get(k string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[k]
}

func (c *counter) total() (sum, distinct int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.m {
		sum += n
	}
	return sum, len(c.m)
}
