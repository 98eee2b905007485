package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/config"
	"github.com/switchyard-go/switchyard/handlers"
	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/idempotency"
	"github.com/switchyard-go/switchyard/pkg/retry"
	"github.com/switchyard-go/switchyard/pkg/service"
	"github.com/switchyard-go/switchyard/switchyardtest/conformance"
)

// configs are the broker configurations the suite runs on, by name, as an
// application (and the operator CLI) would open them.
var configs = map[string]func(testing.TB) config.Config{
	"memory": func(testing.TB) config.Config { return config.Defaults() },
	"amqp": func(tb testing.TB) config.Config {
		c := config.Defaults()
		c.Broker.Type = config.BrokerAMQP
		c.Broker.AMQP.URL = brokertest.AMQPURL(tb)
		return c
	},
	"kafka": func(tb testing.TB) config.Config {
		c := config.Defaults()
		c.Broker.Type = config.BrokerKafka
		c.Broker.Kafka.Brokers = strings.Split(brokertest.KafkaBrokers(tb), ",")
		return c
	},
}

func brokers() []conformance.Broker {
	var out []conformance.Broker
	for _, name := range []string{"memory", "amqp", "kafka"} {
		out = append(out, conformance.FromConfig(name, configs[name]))
	}
	return out
}

// fastRetry keeps retry scenarios quick on every broker.
var fastRetry = retry.Policy{MaxAttempts: 4, InitialInterval: 10 * time.Millisecond, MaxInterval: 50 * time.Millisecond, Jitter: retry.NoJitter}

// defineOrders registers the order flow of package handlers: inventory,
// notifications, analytics and the status view (three groups consume
// OrderPlaced; placed → reserved → notified is two hops).
func defineOrders(svc *service.Service) error {
	pub := handlers.PublisherFunc(func(ctx context.Context, e event.Event) error { return svc.Publish(ctx, e) })
	inv := handlers.NewInventory(map[string]int{"sku-1": 1_000_000})
	analytics := handlers.NewAnalytics()
	status := handlers.NewOrderStatus()
	notifier := handlers.NotifierFunc(func(context.Context, string, string, string) error { return nil })
	for _, err := range []error{
		service.Handle(svc, "inventory.reserve", inv.Handler(pub),
			service.Group("inventory"), service.Publishes(handlers.InventoryReserved{}, handlers.InventoryRejected{})),
		service.Handle(svc, "notifications.confirm", handlers.OrderConfirmation(notifier, pub),
			service.Group("notifications"), service.Publishes(handlers.NotificationSent{})),
		service.Handle(svc, "analytics.order_placed", handlers.Count[handlers.OrderPlaced](analytics), service.Group("analytics")),
		service.Handle(svc, "analytics.inventory_reserved", handlers.Count[handlers.InventoryReserved](analytics), service.Group("analytics")),
		service.Handle(svc, "order_status.placed", status.Placed, service.Group("order-status")),
		service.Handle(svc, "order_status.reserved", status.Reserved, service.Group("order-status")),
		service.Handle(svc, "order_status.notified", status.Notified, service.Group("order-status")),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

func order(id string) handlers.OrderPlaced {
	items := []handlers.Item{{SKU: "sku-1", Qty: 1, PriceCents: 500}}
	return handlers.OrderPlaced{OrderID: id, CustomerID: "c-" + id, Items: items, TotalCents: handlers.Total(items), Email: id + "@example.com"}
}

// TestScenarios runs the conformance suite on the order handlers, and the
// scenarios of this package, on every broker.
func TestScenarios(t *testing.T) {
	bad := order("o-bad")
	bad.Items, bad.TotalCents = nil, 0
	conformance.Run(t, conformance.Suite{
		Define: defineOrders,
		Options: func() []service.Option {
			store, err := idempotency.NewMemory(idempotency.MemoryConfig{})
			if err != nil {
				t.Fatal(err)
			}
			return []service.Option{
				service.WithDefaults(service.Policy{Retry: fastRetry}),
				// Instances of a scenario share the store, as they would
				// share a database: redeliveries are skipped.
				service.WithIdempotency(store),
			}
		},
		Input: func(key string, n int) event.Event { return order(fmt.Sprintf("%s-%d", key, n)) },
		Poison: []conformance.Poison{{
			Name: "order without items", Event: bad, Handler: "inventory.reserve", ErrorContains: "no items",
		}},
		MinChainDepth: 2,
		Brokers:       brokers(),
		Extra: []conformance.Scenario{
			{Name: "long_backoff_does_not_block", Run: longBackoffDoesNotBlock},
			{Name: "order_per_key_on_retry", Run: orderPerKeyOnRetry},
			{Name: "breaker_pauses_consumption", Run: breakerPausesConsumption},
			{Name: "pause_and_resume", Run: pauseAndResume},
			{Name: "batch_partial_failure", Run: batchPartialFailure},
			{Name: "batch_shutdown_mid_batch", Run: batchShutdownMidBatch},
			// The CLI is another process: the in-memory broker lives in this one.
			{Name: "cli_replays_dead_letters", Run: cliReplaysDeadLetters, Brokers: []string{"amqp", "kafka"}},
		},
	})
}

// step is a scenario-local event: one step of a keyed sequence.
type step struct {
	Key string `json:"key"`
	Seq int    `json:"seq"`
}

func (step) EventType() string  { return "e2e.step" }
func (step) EventVersion() int  { return 1 }
func (s step) EventKey() string { return s.Key }

// longBackoffDoesNotBlock: one message fails and must wait 30s before its
// retry; the messages behind it, with the same key (same partition, same
// queue), are handled meanwhile, because the wait is handed to the broker
// instead of being slept in the consumer.
func longBackoffDoesNotBlock(t *testing.T, e *conformance.Env) {
	in := e.Start(func(svc *service.Service) error {
		return service.Handle(svc, "slow-retry", func(_ context.Context, s step) error {
			if s.Seq == 0 {
				return fmt.Errorf("downstream unavailable")
			}
			return nil
		}, service.WithPolicy(service.Policy{
			Concurrency: 1, // one worker: a sleeping retry would stop everything behind it
			Retry:       retry.Policy{MaxAttempts: 3, InitialInterval: 30 * time.Second, MaxInterval: 30 * time.Second, Jitter: retry.NoJitter},
		}))
	})
	start := time.Now()
	const n = 200
	for i := 0; i <= n; i++ {
		if err := in.Svc.Publish(context.Background(), step{Key: "k", Seq: i}); err != nil {
			t.Fatal(err)
		}
	}
	e.Eventually("the messages behind the failing one", func() bool { return e.Probe.Counts("slow-retry").Handled == n })
	if waited := time.Since(start); waited >= 30*time.Second {
		t.Fatalf("the other messages took %s: they waited for the 30s backoff", waited)
	}
	if got := len(e.Probe.Attempts("slow-retry")) - n; got != 1 {
		t.Errorf("failing message attempted %d times before its 30s backoff passed, want 1", got)
	}
	if st := in.Svc.Stats(); st.Retried != 1 || st.Nacked != 0 {
		t.Errorf("stats = %+v, want the failure handed back for one delayed retry and nothing nacked", st)
	}
}
