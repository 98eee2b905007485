package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/handlers"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/retry"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// TestScenarios runs every scenario on every broker.
func TestScenarios(t *testing.T) {
	scenarios := []struct {
		name string
		run  func(t *testing.T, h *harness)
	}{
		{"fan_out_three_groups", fanOutThreeGroups},
		{"competing_consumers_one_group", competingConsumers},
		{"order_per_key_concurrent", orderPerKey},
		{"retry_then_success", retryThenSuccess},
		{"permanent_error_dead_letter", permanentDeadLetter},
		{"correlation_causation_three_hops", correlationThreeHops},
		{"cloudevents_interop", cloudEventsInterop},
		{"graceful_shutdown_in_flight", gracefulShutdown},
		{"long_backoff_does_not_block", longBackoffDoesNotBlock},
	}
	for _, k := range kinds() {
		t.Run(k.name, func(t *testing.T) {
			for _, sc := range scenarios {
				t.Run(sc.name, func(t *testing.T) { sc.run(t, newHarness(t, k)) })
			}
		})
	}
}

func order(id string) handlers.OrderPlaced {
	items := []handlers.Item{{SKU: "sku-1", Qty: 1, PriceCents: 500}}
	return handlers.OrderPlaced{OrderID: id, CustomerID: "c-" + id, Items: items, TotalCents: handlers.Total(items), Email: id + "@example.com"}
}

func publishOrders(t *testing.T, svc *service.Service, n int) {
	t.Helper()
	for i := range n {
		if err := svc.Publish(context.Background(), order(fmt.Sprintf("o-%03d", i))); err != nil {
			t.Fatal(err)
		}
	}
}

func fanOutThreeGroups(t *testing.T, h *harness) {
	b := h.broker()
	svc := h.service(b)
	var got [3]counter
	for i := range got {
		err := service.Handle(svc, fmt.Sprintf("g%d", i), func(_ context.Context, e handlers.OrderPlaced) error {
			got[i].add(e.OrderID)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	h.run(svc)
	const n = 20
	publishOrders(t, svc, n)
	for i := range got {
		eventually(t, fmt.Sprintf("group %d to see %d orders", i, n), func() bool { _, d := got[i].total(); return d == n })
	}
	for i := range got {
		if sum, _ := got[i].total(); sum != n {
			t.Errorf("group %d handled %d messages for %d orders", i, sum, n)
		}
	}
}

func competingConsumers(t *testing.T, h *harness) {
	var all counter
	var perInstance [2]atomic.Int64
	var svcs [2]*service.Service
	for i := range svcs {
		svcs[i] = h.service(h.broker())
		err := service.Handle(svcs[i], "worker", func(_ context.Context, e handlers.OrderPlaced) error {
			all.add(e.OrderID)
			perInstance[i].Add(1)
			return nil
		}, service.Group("workers"))
		if err != nil {
			t.Fatal(err)
		}
		h.run(svcs[i])
	}
	h.settled("workers", 2)
	const n = 40
	publishOrders(t, svcs[0], n)
	eventually(t, "every order handled", func() bool { _, d := all.total(); return d == n })
	time.Sleep(200 * time.Millisecond) // a duplicate would show up by now
	if sum, _ := all.total(); sum != n {
		t.Errorf("%d orders handled %d times in one group, want each once", n, sum)
	}
	t.Logf("split between instances: %d / %d", perInstance[0].Load(), perInstance[1].Load())
}

// step is a scenario-local event: one step of a keyed sequence.
type step struct {
	Key string `json:"key"`
	Seq int    `json:"seq"`
}

func (step) EventType() string  { return "e2e.step" }
func (step) EventVersion() int  { return 1 }
func (s step) EventKey() string { return s.Key }

func orderPerKey(t *testing.T, h *harness) {
	svc := h.service(h.broker())
	var mu sync.Mutex
	last := map[string]int{}
	var handled atomic.Int64
	var violations []string
	err := service.Handle(svc, "sequencer", func(_ context.Context, s step) error {
		time.Sleep(time.Duration(s.Seq%3) * time.Millisecond) // uneven work invites reordering
		mu.Lock()
		if s.Seq != last[s.Key]+1 {
			violations = append(violations, fmt.Sprintf("%s: got %d after %d", s.Key, s.Seq, last[s.Key]))
		}
		last[s.Key] = s.Seq
		mu.Unlock()
		handled.Add(1)
		return nil
	}, service.Concurrency(4))
	if err != nil {
		t.Fatal(err)
	}
	h.run(svc)
	const keys, steps = 5, 30
	for seq := 1; seq <= steps; seq++ {
		for k := range keys {
			if err := svc.Publish(context.Background(), step{Key: fmt.Sprintf("k%d", k), Seq: seq}); err != nil {
				t.Fatal(err)
			}
		}
	}
	eventually(t, "all steps", func() bool { return handled.Load() >= keys*steps })
	mu.Lock()
	defer mu.Unlock()
	if len(violations) > 0 {
		t.Fatalf("order per key broken: %v", violations)
	}
}

func retryThenSuccess(t *testing.T, h *harness) {
	svc := h.service(h.broker())
	var attempts, done atomic.Int64
	err := service.Handle(svc, "flaky", func(ctx context.Context, e handlers.OrderPlaced) error {
		attempts.Add(1)
		if d := middleware.DeliveryFrom(ctx); d.Attempt < 3 {
			return fmt.Errorf("transient failure on attempt %d", d.Attempt)
		}
		done.Add(1)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	h.run(svc)
	publishOrders(t, svc, 1)
	eventually(t, "success on the third attempt", func() bool { return done.Load() == 1 })
	if got := attempts.Load(); got != 3 {
		t.Errorf("attempts = %d, want 3", got)
	}
	if st := svc.Stats(); st.Retried != 2 || st.DeadLettered != 0 || st.Handled != 1 {
		t.Errorf("stats = %+v, want retried=2 handled=1 dead_lettered=0", st)
	}
}

func permanentDeadLetter(t *testing.T, h *harness) {
	b := h.broker()
	svc := h.service(b)
	inv := handlers.NewInventory(map[string]int{"sku-1": 100})
	pub := handlers.PublisherFunc(func(ctx context.Context, e event.Event) error {
		return svc.Publish(ctx, e)
	})
	var calls atomic.Int64
	reserve := inv.Handler(pub)
	err := service.Handle(svc, "inventory.reserve", func(ctx context.Context, e handlers.OrderPlaced) error {
		calls.Add(1)
		return reserve(ctx, e)
	}, service.Group("inventory"), service.Publishes(handlers.InventoryReserved{}, handlers.InventoryRejected{}))
	if err != nil {
		t.Fatal(err)
	}
	dlq := h.inspect(b, service.DeadLetterTopicFor("inventory"))
	h.run(svc)
	bad := order("o-bad")
	bad.Items = nil
	bad.TotalCents = 0
	if err := svc.Publish(context.Background(), bad); err != nil {
		t.Fatal(err)
	}
	m := h.next(dlq)
	want := map[string]string{
		header.DeadLetterReason:   "permanent",
		header.DeadLetterHandler:  "inventory.reserve",
		header.DeadLetterGroup:    h.ns + "inventory",
		header.DeadLetterTopic:    h.ns + handlers.TypeOrderPlaced,
		header.DeadLetterAttempts: "1",
		header.Type:               handlers.TypeOrderPlaced,
	}
	for k, v := range want {
		if got := m.Metadata.Get(k); got != v {
			t.Errorf("dead letter %s = %q, want %q", k, got, v)
		}
	}
	if e := m.Metadata.Get(header.DeadLetterError); !strings.Contains(e, "no items") {
		t.Errorf("dead letter error %q does not say what was wrong", e)
	}
	for _, k := range []string{header.DeadLetterFirstFailure, header.DeadLetterLastFailure} {
		if _, err := time.Parse(time.RFC3339Nano, m.Metadata.Get(k)); err != nil {
			t.Errorf("dead letter %s: %v", k, err)
		}
	}
	var got handlers.OrderPlaced
	if err := json.Unmarshal(m.Payload, &got); err != nil || got.OrderID != "o-bad" {
		t.Errorf("dead letter payload %q (%v), want the original", m.Payload, err)
	}
	if calls.Load() != 1 {
		t.Errorf("handler called %d times, want 1: permanent errors skip retries", calls.Load())
	}
}

func correlationThreeHops(t *testing.T, h *harness) {
	b := h.broker()
	svc := h.service(b)
	pub := handlers.PublisherFunc(func(ctx context.Context, e event.Event) error {
		return svc.Publish(ctx, e)
	})
	inv := handlers.NewInventory(map[string]int{"sku-1": 100})
	must(t, service.Handle(svc, "inventory.reserve", inv.Handler(pub),
		service.Group("inventory"), service.Publishes(handlers.InventoryReserved{}, handlers.InventoryRejected{})))
	notifier := handlers.NotifierFunc(func(context.Context, string, string, string) error { return nil })
	must(t, service.Handle(svc, "notifications.confirm", handlers.OrderConfirmation(notifier, pub),
		service.Group("notifications"), service.Publishes(handlers.NotificationSent{})))
	placed := h.inspect(b, handlers.TypeOrderPlaced)
	reserved := h.inspect(b, handlers.TypeInventoryReserved)
	sent := h.inspect(b, handlers.TypeNotificationSent)
	h.run(svc)
	publishOrders(t, svc, 1)

	m1, m2, m3 := h.next(placed), h.next(reserved), h.next(sent)
	id1 := m1.Metadata.Get(header.ID)
	if c := m1.Metadata.Get(header.CorrelationID); c != id1 {
		t.Errorf("first event correlation %q, want its own id %q", c, id1)
	}
	for i, c := range []struct {
		m         *message.Message
		causation string
		hops      int
	}{{m2, id1, 1}, {m3, m2.Metadata.Get(header.ID), 2}} {
		if got := c.m.Metadata.Get(header.CorrelationID); got != id1 {
			t.Errorf("hop %d correlation %q, want %q", i+1, got, id1)
		}
		if got := c.m.Metadata.Get(header.CausationID); got != c.causation {
			t.Errorf("hop %d causation %q, want %q", i+1, got, c.causation)
		}
		if got := c.m.Metadata.Get(header.HopCount); got != strconv.Itoa(c.hops) {
			t.Errorf("hop %d hop count %q, want %d", i+1, got, c.hops)
		}
	}
}

func cloudEventsInterop(t *testing.T, h *harness) {
	b := h.broker()
	svc := h.service(b)
	var seen counter // order id|correlation id
	must(t, service.Handle(svc, "reader", func(ctx context.Context, e handlers.OrderPlaced) error {
		seen.add(e.OrderID + "|" + middleware.CorrelationID(ctx))
		return nil
	}))
	raw := h.inspect(b, handlers.TypeOrderPlaced)
	h.run(svc)

	// Ours, read by a consumer that knows only CloudEvents binary mode.
	if err := svc.Publish(context.Background(), order("o-ce")); err != nil {
		t.Fatal(err)
	}
	m := h.next(raw)
	for k, want := range map[string]string{
		"ce_specversion": "1.0",
		"ce_type":        handlers.TypeOrderPlaced,
		"ce_source":      "e2e-" + h.kind,
		"content-type":   "application/json",
	} {
		if got := m.Metadata.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if m.Metadata.Get("ce_id") == "" {
		t.Error("ce_id missing")
	}
	if _, err := time.Parse(time.RFC3339Nano, m.Metadata.Get("ce_time")); err != nil {
		t.Errorf("ce_time: %v", err)
	}
	var data map[string]any
	if err := json.Unmarshal(m.Payload, &data); err != nil || data["order_id"] != "o-ce" {
		t.Errorf("payload %s is not the event data (%v)", m.Payload, err)
	}

	// Theirs: a producer that sets only CloudEvents attributes.
	foreign := message.NewMessage("foreign-1", []byte(`{"order_id":"o-foreign","items":[{"sku":"s","qty":1,"price_cents":1}],"total_cents":1,"email":"x@example.com"}`))
	foreign.Metadata = message.Metadata{
		"ce_id": "foreign-1", "ce_type": handlers.TypeOrderPlaced, "ce_source": "/kafkajs/checkout",
		"ce_specversion": "1.0", "content-type": "application/json",
	}
	if err := b.Publisher().Publish(h.ns+handlers.TypeOrderPlaced, foreign); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the foreign event handled", func() bool { return seen.get("o-foreign|foreign-1") == 1 })
}

func gracefulShutdown(t *testing.T, h *harness) {
	var handled counter
	var inFlight atomic.Int64
	start := func() (*service.Service, func()) {
		svc := h.service(h.broker())
		must(t, service.Handle(svc, "slow", func(ctx context.Context, e handlers.OrderPlaced) error {
			inFlight.Add(1)
			defer inFlight.Add(-1)
			select {
			case <-time.After(20 * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
			handled.add(e.OrderID)
			return nil
		}, service.Concurrency(4), service.Group("slow")))
		return svc, h.run(svc)
	}
	svc1, stop1 := start()
	const n = 60
	publishOrders(t, svc1, n)
	eventually(t, "some orders handled and some in flight", func() bool {
		_, d := handled.total()
		return d >= 8 && inFlight.Load() > 0
	})
	stop1() // graceful: in-flight handlers finish and are acked
	if st := svc1.Stats(); st.Nacked != 0 {
		t.Errorf("graceful stop nacked %d messages", st.Nacked)
	}
	_, before := handled.total()
	if before >= n {
		t.Fatalf("all %d handled before the stop; nothing was left in flight to test", n)
	}
	start()
	eventually(t, "every order handled after restart", func() bool { _, d := handled.total(); return d == n })
	time.Sleep(200 * time.Millisecond)
	sum, _ := handled.total()
	if sum != n {
		t.Errorf("%d orders handled %d times: nothing may be handled twice after a graceful stop", n, sum)
	}
	t.Logf("handled before stop: %d, after restart: %d", before, n-before)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// longBackoffDoesNotBlock: one message fails and must wait 30s before its
// retry; the messages behind it, with the same key (same partition, same
// queue), are handled meanwhile, because the wait is handed to the broker
// instead of being slept in the consumer.
func longBackoffDoesNotBlock(t *testing.T, h *harness) {
	svc := h.service(h.broker())
	var poisonAttempts, good atomic.Int64
	must(t, service.Handle(svc, "slow-retry", func(ctx context.Context, s step) error {
		if s.Seq == 0 {
			poisonAttempts.Add(1)
			return errors.New("downstream unavailable")
		}
		good.Add(1)
		return nil
	}, service.WithPolicy(service.Policy{
		Concurrency: 1, // one worker: a sleeping retry would stop everything behind it
		Retry:       retry.Policy{MaxAttempts: 3, InitialInterval: 30 * time.Second, MaxInterval: 30 * time.Second, Jitter: -1},
	})))
	h.run(svc)
	start := time.Now()
	must(t, svc.Publish(context.Background(), step{Key: "k", Seq: 0}))
	const n = 200
	for i := 1; i <= n; i++ {
		must(t, svc.Publish(context.Background(), step{Key: "k", Seq: i}))
	}
	eventually(t, "the messages behind the failing one", func() bool { return good.Load() == n })
	if waited := time.Since(start); waited >= 30*time.Second {
		t.Fatalf("the other messages took %s: they waited for the 30s backoff", waited)
	}
	if got := poisonAttempts.Load(); got != 1 {
		t.Errorf("failing message attempted %d times before its 30s backoff passed, want 1", got)
	}
	if st := svc.Stats(); st.Retried != 1 || st.Nacked != 0 {
		t.Errorf("stats = %+v, want the failure handed back for one delayed retry and nothing nacked", st)
	}
}
