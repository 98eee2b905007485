package service_test

import (
	"strings"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/retry"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// TestStartupReportSaysWhatEachHandlerGets: on a broker that can delay
// redelivery, an ordered handler retries in place (its key waits), while a
// default handler whose waits exceed max_in_process_wait has them handed
// back, so later messages of the key may overtake the retried one. Report
// says so, and Run logs one "handler" line per handler saying the same.
func TestStartupReportSaysWhatEachHandlerGets(t *testing.T) {
	logger, logs := newAttrLog()
	svc := service.New(newBroker(t), service.WithLogger(logger)) // memory: a Delayer, order per key
	long := retry.Policy{MaxInterval: time.Minute}               // above the default max_in_process_wait (5s)
	if err := service.Handle(svc, "ledger", noop[orderPlaced], service.Group("ledger"),
		service.WithPolicy(service.Policy{Ordered: service.On, Retry: long})); err != nil {
		t.Fatal(err)
	}
	if err := service.Handle(svc, "mailer", noop[orderPlaced], service.Group("mailer"),
		service.WithPolicy(service.Policy{Retry: long})); err != nil {
		t.Fatal(err)
	}
	reports := map[string]service.HandlerReport{}
	for _, r := range svc.Report() {
		reports[r.Handler] = r
	}
	ledger, mailer := reports["ledger"], reports["mailer"]
	if ledger.OrderOnRetry != service.OrderKeep || !strings.Contains(ledger.Retry, "in place") || strings.Contains(ledger.Retry, "handed back") {
		t.Errorf("ordered handler: order_on_retry %q, retry %q; want keep, in place", ledger.OrderOnRetry, ledger.Retry)
	}
	if !strings.Contains(ledger.Order, string(broker.OrderPerKey)) {
		t.Errorf("ordered handler: order %q, want the broker's %q across consumers", ledger.Order, broker.OrderPerKey)
	}
	if mailer.OrderOnRetry != service.OrderRelease || !strings.Contains(mailer.Retry, "handed back") || !strings.Contains(mailer.Retry, "overtake") {
		t.Errorf("default handler: order_on_retry %q, retry %q; want release, handed back, may overtake", mailer.OrderOnRetry, mailer.Retry)
	}
	if mailer.Topic != "orders" || mailer.Group != "mailer" || mailer.MaxAttempts != retry.DefaultMaxAttempts || mailer.Delivery == "" {
		t.Errorf("default handler report = %+v", mailer)
	}

	start(t, svc)
	lines := logs.find("handler")
	if len(lines) != 2 {
		t.Fatalf("%d \"handler\" log lines, want one per handler", len(lines))
	}
	for _, l := range lines {
		name := l.attrs["handler"].String()
		r, ok := reports[name]
		if !ok {
			t.Errorf("log line for unknown handler %q", name)
			continue
		}
		for key, want := range map[string]string{
			"group": r.Group, "topic": r.Topic, "order": r.Order, "order_on_retry": r.OrderOnRetry,
			"retry": r.Retry, "dead_letter": r.DeadLetter, "delivery": r.Delivery,
		} {
			if got, ok := l.attrs[key]; !ok || got.String() != want {
				t.Errorf("handler %s: log %s = %q, want %q", name, key, got, want)
			}
		}
		if got := l.attrs["max_attempts"]; got.Int64() != int64(r.MaxAttempts) {
			t.Errorf("handler %s: log max_attempts = %v, want %d", name, got, r.MaxAttempts)
		}
	}
}

// TestRefusalOfUnhonourablePolicies: Run refuses, naming the handler, a
// policy the broker cannot keep, rather than silently doing less; the same
// handler with a policy it can keep starts.
func TestRefusalOfUnhonourablePolicies(t *testing.T) {
	long := retry.Policy{MaxInterval: 10 * time.Second} // above the default max_in_process_wait (5s)
	t.Run("waits beyond max_in_process_wait without a Delayer", func(t *testing.T) {
		svc := service.New(newFakeBroker(t))
		if err := service.Handle(svc, "mailer", noop[orderPlaced], service.WithPolicy(service.Policy{Retry: long})); err != nil {
			t.Fatal(err)
		}
		wantMentions(t, "Run", runRefused(t, svc), "handlers.mailer", "max_in_process_wait", "fake")

		keep := service.New(newFakeBroker(t))
		if err := service.Handle(keep, "mailer", noop[orderPlaced],
			service.WithPolicy(service.Policy{Retry: long, OrderOnRetry: service.OrderKeep})); err != nil {
			t.Fatal(err)
		}
		start(t, keep) // kept in the consumer: nothing to refuse
	})
	t.Run("ordered on a broker that keeps no order", func(t *testing.T) {
		b := newFakeBroker(t)
		b.ordering = broker.OrderNone
		svc := service.New(b)
		if err := service.Handle(svc, "ledger", noop[orderPlaced], service.WithPolicy(service.Policy{Ordered: service.On})); err != nil {
			t.Fatal(err)
		}
		wantMentions(t, "Run", runRefused(t, svc), "handlers.ledger.ordered")

		unordered := service.New(b)
		if err := service.Handle(unordered, "ledger", noop[orderPlaced]); err != nil {
			t.Fatal(err)
		}
		start(t, unordered)
	})
	t.Run("ordered with release", func(t *testing.T) {
		p := service.Policy{Ordered: service.On, OrderOnRetry: service.OrderRelease}
		wantMentions(t, "Validate", p.Validate("handlers.ledger"), "handlers.ledger.order_on_retry")
		svc := service.New(newBroker(t))
		wantMentions(t, "Handle", service.Handle(svc, "ledger", noop[orderPlaced], service.WithPolicy(p)), "handlers.ledger.order_on_retry")
		if err := (service.Policy{Ordered: service.On, OrderOnRetry: service.OrderKeep}).Validate("handlers.ledger"); err != nil {
			t.Errorf("ordered with keep: %v", err)
		}
	})
}
