package service_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pkg/retry"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// runRefused runs svc and returns Run's error; it fails the test if Run
// got as far as subscribing instead.
func runRefused(t *testing.T, svc *service.Service) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- svc.Run(ctx) }()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("Run = nil, want it refused")
		}
		return err
	case <-svc.Ready():
		cancel()
		t.Fatalf("Run started (then returned %v), want it refused", recv(t, errc, "Run to return"))
	case <-time.After(guard):
		t.Fatal("Run neither started nor returned")
	}
	return nil
}

func wantMentions(t *testing.T, what string, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s = nil, want an error naming %q", what, parts)
		return
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("%s = %q, want it to name %q", what, err, p)
		}
	}
}

func noop[T any](context.Context, T) error { return nil }

// TestOverrideOfUnknownHandlerIsRefused: a typo under handlers: in a file
// must not be silently ignored.
func TestOverrideOfUnknownHandlerIsRefused(t *testing.T) {
	svc := service.New(newFakeBroker(t), service.WithOverrides(map[string]service.Policy{
		"reserve": {Concurrency: 2},
		"resreve": {Concurrency: 8},
	}))
	for _, name := range []string{"reserve", "ship"} {
		if err := service.Handle(svc, name, noop[orderPlaced], service.Group(name)); err != nil {
			t.Fatal(err)
		}
	}
	err := runRefused(t, svc)
	wantMentions(t, "Run", err, "handlers.resreve", "reserve", "ship")
	if strings.Contains(err.Error(), "handlers.reserve:") {
		t.Errorf("Run = %q: the override of an existing handler is reported too", err)
	}
}

// TestSharedSubscriptionWithDifferentConcurrencyIsRefused: two handlers of
// one group on one topic share one subscription; different concurrencies
// cannot both be honoured, and merging them silently would change one.
func TestSharedSubscriptionWithDifferentConcurrencyIsRefused(t *testing.T) {
	svc := service.New(newFakeBroker(t))
	if err := service.Handle(svc, "on_placed", noop[orderPlaced], service.Group("projection"), service.Concurrency(1)); err != nil {
		t.Fatal(err)
	}
	if err := service.Handle(svc, "on_cancelled", noop[orderCancelled], service.Group("projection"), service.Concurrency(8)); err != nil {
		t.Fatal(err)
	}
	wantMentions(t, "Run", runRefused(t, svc), "on_placed", "on_cancelled", "concurrency")

	same := service.New(newFakeBroker(t))
	for name, h := range map[string]func(*service.Service) error{
		"on_placed": func(s *service.Service) error {
			return service.Handle(s, "on_placed", noop[orderPlaced], service.Group("projection"), service.Concurrency(2))
		},
		"on_cancelled": func(s *service.Service) error {
			return service.Handle(s, "on_cancelled", noop[orderCancelled], service.Group("projection"), service.Concurrency(2))
		},
	} {
		if err := h(same); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	start(t, same) // equal settings share the subscription
}

// TestOverrideTurnsOrderedOff: `ordered: false` in a file turns off what
// the code turned on; the order-on-retry default follows.
func TestOverrideTurnsOrderedOff(t *testing.T) {
	svc := service.New(newBroker(t), service.WithOverrides(map[string]service.Policy{"ledger": {Ordered: service.Off}}))
	if err := service.Handle(svc, "ledger", noop[orderPlaced], service.WithPolicy(service.Policy{Ordered: service.On})); err != nil {
		t.Fatal(err)
	}
	if err := service.Handle(svc, "audit", noop[orderPlaced], service.WithPolicy(service.Policy{Ordered: service.On})); err != nil {
		t.Fatal(err)
	}
	p, _ := svc.PolicyOf("ledger")
	if p.Ordered == nil || *p.Ordered || p.OrderOnRetry != service.OrderRelease {
		t.Errorf("ledger: ordered %v, order_on_retry %q; want the override's false, and release", p.IsOrdered(), p.OrderOnRetry)
	}
	if p, _ := svc.PolicyOf("audit"); !p.IsOrdered() || p.OrderOnRetry != service.OrderKeep {
		t.Errorf("audit (no override): ordered %v, order_on_retry %q; want true and keep", p.IsOrdered(), p.OrderOnRetry)
	}
}

// TestNewReportsEveryInvalidOption: New validates its options; Err, Handle
// and Run all report every problem at once, so one fix-and-retry cycle
// suffices.
func TestNewReportsEveryInvalidOption(t *testing.T) {
	svc := service.New(newBroker(t),
		service.WithShutdownTimeout(-time.Second),
		service.WithFailurePathTimeout(-time.Second),
		service.WithDefaults(service.Policy{Concurrency: -1, Timeout: -5 * time.Second, Retry: retry.Policy{Jitter: -0.5}}),
		service.WithOverrides(map[string]service.Policy{"reserve": {HopLimit: -2}}),
	)
	fields := []string{"shutdown_timeout", "failure_path_timeout", "defaults.concurrency", "defaults.timeout",
		"defaults.retry.jitter", "handlers.reserve.hop_limit"}
	wantMentions(t, "Err", svc.Err(), fields...)
	wantMentions(t, "Handle", service.Handle(svc, "reserve", noop[orderPlaced]), fields...)
	if len(svc.Handlers()) != 0 {
		t.Error("Handle registered a handler on a service with invalid options")
	}
	wantMentions(t, "Run", svc.Run(context.Background()), fields...)

	wantMentions(t, "New(nil).Err", service.New(nil).Err(), "broker")
}

// TestZeroShutdownTimeoutMeansTheDefault: WithShutdownTimeout(0), as a
// configuration file's 0, is the 30s default, not "cancel at once".
func TestZeroShutdownTimeoutMeansTheDefault(t *testing.T) {
	logger, logs := newAttrLog()
	svc := service.New(newBroker(t), service.WithLogger(logger), service.WithShutdownTimeout(0))
	if err := svc.Err(); err != nil {
		t.Fatalf("Err = %v, want 0 accepted", err)
	}
	started, release := make(chan struct{}), make(chan struct{})
	ctxErr := make(chan error, 1)
	if err := service.Handle(svc, "reserve", func(ctx context.Context, _ orderPlaced) error {
		close(started)
		select {
		case <-release:
		case <-ctx.Done():
		}
		ctxErr <- ctx.Err()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	stop := start(t, svc)
	if err := svc.Publish(context.Background(), orderPlaced{OrderID: "o-1"}); err != nil {
		t.Fatal(err)
	}
	recv(t, started, "the handler to start")
	runErr := make(chan error, 1)
	go func() { runErr <- stop() }()
	waitFor(t, "the shutdown log", func() bool {
		return len(logs.find("shutting down: intake stopped, waiting for in-flight handlers")) > 0
	})
	close(release)
	if err := recv(t, runErr, "Run to return"); err != nil {
		t.Errorf("Run = %v", err)
	}
	if err := recv(t, ctxErr, "the handler to return"); err != nil {
		t.Errorf("the in-flight handler's context was cancelled (%v): a zero shutdown timeout cancelled at once", err)
	}
	rec := logs.find("shutting down: intake stopped, waiting for in-flight handlers")[0]
	if got := rec.attrs["timeout"].Duration(); got != service.DefaultShutdownTimeout {
		t.Errorf("shutdown timeout = %s, want the default %s", got, service.DefaultShutdownTimeout)
	}
}

// TestPolicySentinels: the documented "off" values are valid, other
// negative values are not.
func TestPolicySentinels(t *testing.T) {
	for _, tc := range []struct {
		name  string
		p     service.Policy
		field string // "" means valid
	}{
		{"no jitter", service.Policy{Retry: retry.Policy{Jitter: retry.NoJitter}}, ""},
		{"negative jitter", service.Policy{Retry: retry.Policy{Jitter: -0.5}}, "handlers.x.retry.jitter"},
		{"jitter above 1", service.Policy{Retry: retry.Policy{Jitter: 1.5}}, "handlers.x.retry.jitter"},
		{"no timeout", service.Policy{Timeout: service.NoTimeout}, ""},
		{"negative timeout", service.Policy{Timeout: -5 * time.Second}, "handlers.x.timeout"},
		{"no hop limit", service.Policy{HopLimit: service.NoHopLimit}, ""},
		{"negative hop limit", service.Policy{HopLimit: -2}, "handlers.x.hop_limit"},
		{"no max in-process wait", service.Policy{MaxInProcessWait: service.NoMaxInProcessWait}, ""},
		{"negative max in-process wait", service.Policy{MaxInProcessWait: -time.Second}, "handlers.x.max_in_process_wait"},
		{"unknown order_on_retry", service.Policy{OrderOnRetry: "later"}, "handlers.x.order_on_retry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.Validate("handlers.x")
			if tc.field == "" {
				if err != nil {
					t.Errorf("Validate = %v, want valid", err)
				}
				if err := service.New(newFakeBroker(t), service.WithDefaults(tc.p)).Err(); err != nil {
					t.Errorf("New with it as defaults: Err = %v, want valid", err)
				}
				return
			}
			wantMentions(t, "Validate", err, tc.field)
			wantMentions(t, "New with it as defaults: Err", service.New(newFakeBroker(t), service.WithDefaults(tc.p)).Err(),
				"defaults"+strings.TrimPrefix(tc.field, "handlers.x"))
		})
	}
}

type neverPublished struct{}

func (neverPublished) EventType() string { return "svc-test.never_published" }
func (neverPublished) EventVersion() int { return 1 }

type lateEvent struct{}

func (lateEvent) EventType() string { return "svc-test.late" }
func (lateEvent) EventVersion() int { return 1 }

// TestFailedHandleChangesNothing: a Handle that is refused registers none of
// its event types, so the registry does not claim to know events no handler
// consumes or may publish.
func TestFailedHandleChangesNothing(t *testing.T) {
	b := newBroker(t)
	svc := service.New(b)
	if err := service.Handle(svc, "a", noop[orderPlaced]); err != nil {
		t.Fatal(err)
	}
	if err := service.Handle(svc, "a", noop[lateEvent], service.Publishes(neverPublished{})); err == nil {
		t.Fatal("duplicate name accepted")
	}
	if err := service.Handle(svc, "b", noop[lateEvent], service.Concurrency(-1), service.Publishes(neverPublished{})); err == nil {
		t.Fatal("invalid policy accepted")
	}
	start(t, svc)
	err := service.Handle(svc, "late", noop[lateEvent], service.Publishes(neverPublished{}))
	if !errors.Is(err, service.ErrAlreadyRunning) {
		t.Fatalf("Handle on a running service = %v, want ErrAlreadyRunning", err)
	}
	for _, typ := range []string{"svc-test.never_published", "svc-test.late"} {
		if svc.Registry().Known(typ) {
			t.Errorf("a refused Handle registered %s", typ)
		}
	}
	if got := svc.Handlers(); len(got) != 1 || got[0].Name != "a" {
		t.Errorf("Handlers = %+v, want only a", got)
	}
}
