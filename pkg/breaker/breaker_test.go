package breaker_test

import (
	"strings"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pkg/breaker"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// attempt runs one admitted attempt with outcome o at now.
func attempt(t *testing.T, b *breaker.Breaker, now time.Time, o breaker.Outcome) breaker.State {
	t.Helper()
	ok, probe := b.Allow(now)
	if !ok {
		t.Fatalf("attempt at %s refused in state %s", now.Sub(t0), b.State(now))
	}
	_, to := b.Record(now, probe, o)
	return to
}

func TestConsecutiveFailuresOpenThenProbesClose(t *testing.T) {
	b := breaker.New(breaker.Policy{ConsecutiveFailures: 3, OpenFor: 10 * time.Second, HalfOpenProbes: 2})
	now := t0
	attempt(t, b, now, breaker.Failure)
	attempt(t, b, now, breaker.Failure)
	attempt(t, b, now, breaker.Success) // the run is broken
	attempt(t, b, now, breaker.Failure)
	attempt(t, b, now, breaker.Failure)
	if got := attempt(t, b, now, breaker.Failure); got != breaker.Open {
		t.Fatalf("after 3 failures in a row: %s, want open", got)
	}
	if ok, _ := b.Allow(now.Add(9 * time.Second)); ok {
		t.Fatal("open breaker let an attempt through before open_for passed")
	}
	now = now.Add(10 * time.Second)
	if s := b.State(now); s != breaker.HalfOpen {
		t.Fatalf("after open_for: %s, want half_open", s)
	}
	ok1, p1 := b.Allow(now)
	ok2, p2 := b.Allow(now)
	ok3, _ := b.Allow(now)
	if !ok1 || !p1 || !ok2 || !p2 || ok3 {
		t.Fatalf("half-open admitted %v/%v %v/%v %v, want two probes and a refusal", ok1, p1, ok2, p2, ok3)
	}
	if _, to := b.Record(now, true, breaker.Success); to != breaker.HalfOpen {
		t.Fatalf("one of two probes succeeded: %s, want still half_open", to)
	}
	if _, to := b.Record(now, true, breaker.Success); to != breaker.Closed {
		t.Fatalf("both probes succeeded: %s, want closed", to)
	}
	// Closed anew: the count starts again.
	attempt(t, b, now, breaker.Failure)
	if got := attempt(t, b, now, breaker.Failure); got != breaker.Closed {
		t.Fatalf("2 failures after closing: %s, want closed", got)
	}
}

func TestFailedProbeReopens(t *testing.T) {
	b := breaker.New(breaker.Policy{ConsecutiveFailures: 1, OpenFor: time.Second})
	attempt(t, b, t0, breaker.Failure)
	now := t0.Add(time.Second)
	if got := attempt(t, b, now, breaker.Failure); got != breaker.Open {
		t.Fatalf("failed probe: %s, want open", got)
	}
	if until := b.OpenUntil(); !until.Equal(now.Add(time.Second)) {
		t.Fatalf("reopened until %s, want open_for after the probe", until.Sub(t0))
	}
	// An ignored probe (a permanent error) frees its place without closing.
	now = now.Add(time.Second)
	if got := attempt(t, b, now, breaker.Ignored); got != breaker.HalfOpen {
		t.Fatalf("ignored probe: %s, want half_open", got)
	}
	if got := attempt(t, b, now, breaker.Success); got != breaker.Closed {
		t.Fatalf("successful probe: %s, want closed", got)
	}
}

func TestFailureRateOverWindow(t *testing.T) {
	b := breaker.New(breaker.Policy{FailureRate: 0.5, Window: 10 * time.Second, MinRequests: 4})
	now := t0
	// Old failures slide out of the window.
	attempt(t, b, now, breaker.Failure)
	attempt(t, b, now, breaker.Failure)
	attempt(t, b, now, breaker.Success)
	now = now.Add(11 * time.Second)
	attempt(t, b, now, breaker.Success)
	attempt(t, b, now, breaker.Success)
	if got := attempt(t, b, now, breaker.Failure); got != breaker.Closed {
		t.Fatalf("1 of 3 in the window failed (older ones slid out): %s, want closed", got)
	}
	if got := attempt(t, b, now, breaker.Failure); got != breaker.Open {
		t.Fatalf("2 of 4 in the window failed: %s, want open", got)
	}
}

func TestFailureRateNeedsMinRequests(t *testing.T) {
	b := breaker.New(breaker.Policy{FailureRate: 0.5, MinRequests: 3})
	attempt(t, b, t0, breaker.Failure)
	if got := attempt(t, b, t0, breaker.Failure); got != breaker.Closed {
		t.Fatalf("2 failures below min_requests 3: %s, want closed", got)
	}
	if got := attempt(t, b, t0, breaker.Failure); got != breaker.Open {
		t.Fatalf("3 of 3 failed: %s, want open", got)
	}
}

func TestIgnoredAndLateOutcomesAreNotCounted(t *testing.T) {
	b := breaker.New(breaker.Policy{ConsecutiveFailures: 2})
	attempt(t, b, t0, breaker.Failure)
	attempt(t, b, t0, breaker.Ignored) // neither breaks the run nor extends it
	if got := attempt(t, b, t0, breaker.Failure); got != breaker.Open {
		t.Fatalf("2 failures around an ignored attempt: %s, want open", got)
	}
	// An attempt that started while closed and ends now does not count.
	if from, to := b.Record(t0, false, breaker.Success); from != breaker.Open || to != breaker.Open {
		t.Fatalf("late success moved %s -> %s, want open -> open", from, to)
	}
}

func TestValidateNamesFieldValueAndAllowed(t *testing.T) {
	err := breaker.Policy{ConsecutiveFailures: -1, FailureRate: 1.5, Window: -time.Second, MinRequests: -2, OpenFor: -1, HalfOpenProbes: -3}.Validate("handlers.x.breaker")
	if err == nil {
		t.Fatal("invalid policy accepted")
	}
	for _, want := range []string{
		"handlers.x.breaker.consecutive_failures: -1, want >= 1",
		"handlers.x.breaker.failure_rate: 1.5, want a share between 0 and 1",
		"handlers.x.breaker.window: -1s, want > 0",
		"handlers.x.breaker.min_requests: -2, want >= 1",
		"handlers.x.breaker.open_for: -1ns, want > 0",
		"handlers.x.breaker.half_open_probes: -3, want >= 1",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if err := (breaker.Policy{}).Validate("b"); err != nil {
		t.Errorf("the zero policy (off): %v", err)
	}
}
