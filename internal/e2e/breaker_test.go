package e2e

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pkg/breaker"
	"github.com/switchyard-go/switchyard/pkg/retry"
	"github.com/switchyard-go/switchyard/pkg/service"
	"github.com/switchyard-go/switchyard/switchyardtest/conformance"
)

// flowOf returns the named handler's pause switch and breaker.
func flowOf(svc *service.Service, name string) service.FlowState {
	for _, f := range svc.Flow() {
		if f.Handler == name {
			return f
		}
	}
	return service.FlowState{}
}

// breakerPausesConsumption: a handler whose downstream is down fails until
// a flag flips. Its breaker opens after 3 failures in a row; while it is
// open no attempt runs and the subscription takes no more messages, so the
// backlog stays on the broker; half-open probes keep failing without
// spending retries; nothing is dead-lettered. Once the flag flips, a probe
// closes the breaker and every message is handled.
func breakerPausesConsumption(t *testing.T, e *conformance.Env) {
	const name, n = "flaky", 40
	var (
		healthy      atomic.Bool
		svc          *service.Service
		openAttempts atomic.Int32 // attempts that ran while the breaker was open: must stay 0
		mu           sync.Mutex
		seen         = map[int]bool{} // messages attempted
	)
	in := e.Start(func(s *service.Service) error {
		svc = s
		return service.Handle(s, name, func(_ context.Context, st step) error {
			if flowOf(svc, name).Breaker == string(breaker.Open) {
				openAttempts.Add(1)
			}
			mu.Lock()
			seen[st.Seq] = true
			mu.Unlock()
			if !healthy.Load() {
				return errors.New("downstream unavailable")
			}
			return nil
		}, service.WithPolicy(service.Policy{
			// One worker: no attempt is between admission and its outcome
			// while another opens the breaker, so openAttempts is exact.
			Concurrency: 1,
			Prefetch:    4,
			Retry:       retry.Policy{MaxAttempts: 4, InitialInterval: 10 * time.Millisecond, MaxInterval: 20 * time.Millisecond, Jitter: retry.NoJitter},
		}), service.Breaker(breaker.Policy{ConsecutiveFailures: 3, OpenFor: 100 * time.Millisecond}))
	})
	e.SettleGroups(in, 1)
	for i := range n {
		if err := in.Svc.Publish(context.Background(), step{Key: fmt.Sprintf("k%d", i), Seq: i}); err != nil {
			t.Fatal(err)
		}
	}
	e.Eventually("the breaker open", func() bool { return flowOf(in.Svc, name).Breaker == string(breaker.Open) })
	// 3 failures opened it; then wait for 12 failed half-open probes, more
	// than the retry budgets (4 attempts) of the at most 4 messages held
	// could take: had probes spent retries, one would be dead-lettered.
	e.Eventually("failed probes", func() bool { return e.Probe.Counts(name).Attempts >= 3+12 })
	mu.Lock()
	taken := len(seen)
	mu.Unlock()
	if taken > n/4 {
		t.Errorf("%d of %d messages attempted while the downstream was down: intake did not stop", taken, n)
	}
	t.Logf("%s: %d of %d messages taken before the breaker stopped intake; %d attempts while down",
		e.BrokerName, taken, n, e.Probe.Counts(name).Attempts)
	if c := e.Probe.Counts(name); c.DeadLettered != 0 || c.Nacked != 0 {
		t.Fatalf("while the breaker was open: %+v, want nothing dead-lettered or nacked", c)
	}
	healthy.Store(true)
	e.Eventually("every message handled", func() bool { return e.Probe.Counts(name).Handled == n })
	e.Quiet()
	if got := openAttempts.Load(); got != 0 {
		t.Errorf("%d attempts ran while the breaker was open", got)
	}
	if c := e.Probe.Counts(name); c.DeadLettered != 0 || c.Handled != n {
		t.Errorf("counts %+v, want %d handled and nothing dead-lettered", c, n)
	}
	if st := flowOf(in.Svc, name); st.Breaker != string(breaker.Closed) {
		t.Errorf("breaker %q after recovery, want closed", st.Breaker)
	}
}

// pauseAndResume: a handler paused before it runs receives nothing of
// what is published, while a witness in another group on the same topic
// handles all of it; after Resume it receives every message.
func pauseAndResume(t *testing.T, e *conformance.Env) {
	const n = 20
	in := e.Start(func(s *service.Service) error {
		ok := func(context.Context, step) error { return nil }
		if err := service.Handle(s, "paused", ok, service.Group("paused")); err != nil {
			return err
		}
		if err := service.Handle(s, "witness", ok, service.Group("witness")); err != nil {
			return err
		}
		return s.Pause("paused")
	})
	e.SettleGroups(in, 1)
	for i := range n {
		if err := in.Svc.Publish(context.Background(), step{Key: fmt.Sprintf("k%d", i%3), Seq: i}); err != nil {
			t.Fatal(err)
		}
	}
	e.Eventually("the witness handled everything", func() bool { return e.Probe.Counts("witness").Handled == n })
	if c := e.Probe.Counts("paused"); c.Attempts != 0 {
		t.Fatalf("paused handler attempted %d messages, want none", c.Attempts)
	}
	if st := flowOf(in.Svc, "paused"); !st.Paused {
		t.Fatalf("Flow says %+v, want paused", st)
	}
	if err := in.Svc.Resume("paused"); err != nil {
		t.Fatal(err)
	}
	e.Eventually("the resumed handler handled everything", func() bool { return e.Probe.Counts("paused").Handled == n })
	e.Quiet()
	if c := e.Probe.Counts("paused"); c.Handled != n || c.DeadLettered != 0 || c.Attempts != n {
		t.Errorf("after resume: %+v, want each of %d handled once", c, n)
	}
}
