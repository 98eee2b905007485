package service_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pkg/breaker"
	"github.com/switchyard-go/switchyard/pkg/metrics"
	"github.com/switchyard-go/switchyard/pkg/retry"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// TestPauseLeavesBacklogOnBroker: a paused handler's subscription takes
// nothing from the broker (it holds no message, not even waiting), while
// another group's handler on the same topic gets everything; Resume
// delivers all of it, in key order.
func TestPauseLeavesBacklogOnBroker(t *testing.T) {
	b := newBroker(t)
	svc := service.New(b)
	var witness atomic.Int32
	var mu sync.Mutex
	got := map[string][]string{}
	if err := service.Handle(svc, "paused", func(_ context.Context, e orderPlaced) error {
		mu.Lock()
		defer mu.Unlock()
		k := e.OrderID[:2]
		got[k] = append(got[k], e.OrderID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := service.Handle(svc, "witness", func(context.Context, orderPlaced) error { witness.Add(1); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := svc.Pause("paused"); err != nil {
		t.Fatal(err)
	}
	if err := svc.Pause("nope"); err == nil || !strings.Contains(err.Error(), `"nope"`) || !strings.Contains(err.Error(), "paused witness") {
		t.Fatalf("Pause of an unknown handler: %v, want an error naming it and the registered ones", err)
	}
	start(t, svc)
	const n = 30
	for i := range n {
		// The event's key is its OrderID: three keys, ten messages each.
		if err := svc.Publish(context.Background(), orderPlaced{OrderID: fmt.Sprintf("k%d-%02d", i%3, i)}, service.WithKey(fmt.Sprintf("k%d", i%3))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the witness", func() bool { return witness.Load() == n })
	if held := service.HeldBy(svc, "paused"); held != 0 {
		t.Fatalf("paused subscription holds %d messages, want 0: the backlog must stay on the broker", held)
	}
	mu.Lock()
	if len(got) != 0 {
		t.Fatalf("paused handler received %v", got)
	}
	mu.Unlock()
	if h := svc.Health(); !pausedIn(h, "paused") {
		t.Fatalf("Health = %+v, want handler paused shown paused", h)
	}
	if err := svc.Resume("paused"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the resumed handler", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got["k0"])+len(got["k1"])+len(got["k2"]) == n
	})
	mu.Lock()
	defer mu.Unlock()
	for k, ids := range got {
		for i := 1; i < len(ids); i++ {
			if ids[i-1] > ids[i] {
				t.Errorf("key %s handled out of order: %v", k, ids)
				break
			}
		}
	}
}

func pausedIn(hs []service.SubscriptionHealth, name string) bool {
	for _, h := range hs {
		for _, f := range h.Flow {
			if f.Handler == name {
				return f.Paused
			}
		}
	}
	return false
}

// TestBreakerStateInReportAndHealth: the startup report describes the
// breaker; Health and Flow show it opening.
func TestBreakerStateInReportAndHealth(t *testing.T) {
	b := newBroker(t)
	svc := service.New(b)
	if err := service.Handle(svc, "failing", func(context.Context, orderPlaced) error { return errors.New("down") },
		service.Retry(retry.Policy{MaxAttempts: 100, InitialInterval: time.Millisecond, MaxInterval: time.Millisecond}),
		service.Breaker(breaker.Policy{ConsecutiveFailures: 2, OpenFor: time.Hour})); err != nil {
		t.Fatal(err)
	}
	r := svc.Report()[0]
	if !strings.Contains(r.Breaker, "opens on 2 consecutive failures") || !strings.Contains(r.Breaker, "now closed") || r.RateLimit != "none" {
		t.Fatalf("report breaker %q, rate limit %q", r.Breaker, r.RateLimit)
	}
	start(t, svc)
	if err := svc.Publish(context.Background(), orderPlaced{OrderID: "o1"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the breaker to open", func() bool {
		f := svc.Flow()
		return len(f) == 1 && f[0].Breaker == "open" && !f[0].OpenUntil.IsZero()
	})
	h := svc.Health()
	if len(h) != 1 || len(h[0].Flow) != 1 || h[0].Flow[0].Breaker != "open" {
		t.Fatalf("Health = %+v, want the breaker open", h)
	}
	if st := svc.Stats(); st.DeadLettered != 0 {
		t.Fatalf("stats %+v: nothing may be dead-lettered while the breaker is open", st)
	}
}

// TestRateLimitSpacesAttempts: at 20 attempts a second with burst 1, ten
// messages take at least 9 intervals (450ms).
func TestRateLimitSpacesAttempts(t *testing.T) {
	b := newBroker(t)
	svc := service.New(b)
	var handled atomic.Int32
	if err := service.Handle(svc, "limited", func(context.Context, orderPlaced) error { handled.Add(1); return nil },
		service.RateLimit(20, 1)); err != nil {
		t.Fatal(err)
	}
	if r := svc.Report()[0]; r.RateLimit != "20 attempts/s, burst 1" {
		t.Fatalf("report rate limit %q", r.RateLimit)
	}
	start(t, svc)
	begin := time.Now()
	for i := range 10 {
		if err := svc.Publish(context.Background(), orderPlaced{OrderID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "ten handled", func() bool { return handled.Load() == 10 })
	if took := time.Since(begin); took < 450*time.Millisecond {
		t.Fatalf("10 messages at 20/s took %s, want >= 450ms", took)
	}
}

// TestFlowPolicyValidation: bad breaker and rate-limit settings name the
// field, the value and what is allowed.
func TestFlowPolicyValidation(t *testing.T) {
	svc := service.New(newBroker(t))
	err := service.Handle(svc, "h", func(context.Context, orderPlaced) error { return nil },
		service.Breaker(breaker.Policy{FailureRate: 2, OpenFor: -time.Second}), service.RateLimit(-1, -2))
	if err == nil {
		t.Fatal("invalid flow settings accepted")
	}
	for _, want := range []string{
		"handlers.h.breaker.failure_rate: 2, want a share between 0 and 1",
		"handlers.h.breaker.open_for: -1s, want > 0",
		"handlers.h.rate_limit: -1, want > 0 attempts per second",
		"handlers.h.rate_burst: -2, want >= 1",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// TestShutdownWhileBreakerOpenNacks: messages waiting at an open breaker
// when the service stops are handed back, not dead-lettered; the next Run
// handles them.
func TestShutdownWhileBreakerOpenNacks(t *testing.T) {
	b := newBroker(t)
	var healthy atomic.Bool
	var handled atomic.Int32
	define := func() *service.Service {
		svc := service.New(b, service.WithShutdownTimeout(guard))
		if err := service.Handle(svc, "flaky", func(context.Context, orderPlaced) error {
			if !healthy.Load() {
				return errors.New("down")
			}
			handled.Add(1)
			return nil
			// Two attempts: the second waits at the breaker, and a wait
			// cut short by the shutdown must not count as its last.
		}, service.Retry(retry.Policy{MaxAttempts: 2, InitialInterval: time.Millisecond, MaxInterval: time.Millisecond}),
			service.Breaker(breaker.Policy{ConsecutiveFailures: 2, OpenFor: time.Hour})); err != nil {
			t.Fatal(err)
		}
		return svc
	}
	svc := define()
	stop := start(t, svc)
	for i := range 5 {
		if err := svc.Publish(context.Background(), orderPlaced{OrderID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the breaker to open", func() bool { return svc.Flow()[0].Breaker == "open" })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st := svc.Stats(); st.DeadLettered != 0 {
		t.Fatalf("stats after shutdown %+v: nothing may be dead-lettered", st)
	}
	healthy.Store(true)
	svc2 := define()
	start(t, svc2)
	waitFor(t, "every message handled by the next run", func() bool { return handled.Load() == 5 })
	if st := svc2.Stats(); st.DeadLettered != 0 {
		t.Fatalf("second run stats %+v", st)
	}
}

// flowRecorder records what a metrics.FlowRecorder is told.
type flowRecorder struct {
	metrics.Stats
	mu     sync.Mutex
	states []string
	paused map[string]bool
}

func (r *flowRecorder) BreakerState(h, state string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.states = append(r.states, h+"="+state)
}

func (r *flowRecorder) Paused(h string, p bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.paused[h] = p
}

func (r *flowRecorder) snapshot() ([]string, map[string]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.states), maps.Clone(r.paused)
}

// TestFlowRecorderSeesTransitions: a recorder that takes flow events gets
// the start state, every transition in order, and pauses.
func TestFlowRecorderSeesTransitions(t *testing.T) {
	rec := &flowRecorder{paused: map[string]bool{}}
	svc := service.New(newBroker(t), service.WithRecorder(rec))
	var healthy atomic.Bool
	if err := service.Handle(svc, "h", func(context.Context, orderPlaced) error {
		if !healthy.Load() {
			return errors.New("down")
		}
		return nil
	}, service.Retry(retry.Policy{MaxAttempts: 50, InitialInterval: time.Millisecond, MaxInterval: time.Millisecond}),
		service.Breaker(breaker.Policy{ConsecutiveFailures: 1, OpenFor: 20 * time.Millisecond})); err != nil {
		t.Fatal(err)
	}
	start(t, svc)
	if err := svc.Publish(context.Background(), orderPlaced{OrderID: "1"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the breaker to open", func() bool { s, _ := rec.snapshot(); return slices.Contains(s, "h=open") })
	healthy.Store(true)
	waitFor(t, "the breaker to close", func() bool { s, _ := rec.snapshot(); return len(s) > 1 && s[len(s)-1] == "h=closed" })
	states, _ := rec.snapshot()
	if states[0] != "h=closed" || states[1] != "h=open" || states[2] != "h=half_open" {
		t.Errorf("states %v, want closed (at start), open, half_open, ..., closed", states)
	}
	if err := svc.Pause("h"); err != nil {
		t.Fatal(err)
	}
	if _, p := rec.snapshot(); !p["h"] {
		t.Errorf("paused = %v, want h paused", p)
	}
}
