package retry_test

import (
	"strings"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pkg/retry"
)

func TestBackoffWithoutJitter(t *testing.T) {
	p := retry.Policy{InitialInterval: 100 * time.Millisecond, Multiplier: 2, MaxInterval: time.Second, Jitter: -1}.WithDefaults()
	want := []time.Duration{100, 200, 400, 800, 1000, 1000, 1000}
	for i, w := range want {
		if got := p.Backoff(i+1, nil); got != w*time.Millisecond {
			t.Errorf("Backoff(%d) = %s, want %s", i+1, got, w*time.Millisecond)
		}
	}
	if got := p.Backoff(0, nil); got != 100*time.Millisecond {
		t.Errorf("Backoff(0) = %s, want the initial interval", got)
	}
	if got := p.Backoff(10000, nil); got != time.Second {
		t.Errorf("Backoff(10000) = %s, want the cap (no overflow)", got)
	}
}

func TestBackoffJitterBounds(t *testing.T) {
	p := retry.Policy{InitialInterval: 100 * time.Millisecond, Multiplier: 2, MaxInterval: time.Second, Jitter: 0.2}.WithDefaults()
	cases := []struct {
		attempt int
		rnd     float64
		want    time.Duration
	}{
		{1, 0, 80 * time.Millisecond},
		{1, 0.5, 100 * time.Millisecond},
		{1, 0.999999, 119999980 * time.Nanosecond},
		{3, 0, 320 * time.Millisecond},
		{5, 0, 800 * time.Millisecond}, // capped at 1s, then jittered down
		{5, 0.999999, time.Second},     // never above the cap
	}
	for _, tc := range cases {
		got := p.Backoff(tc.attempt, func() float64 { return tc.rnd })
		if d := got - tc.want; d < -time.Microsecond || d > time.Microsecond {
			t.Errorf("Backoff(%d, rnd=%g) = %s, want %s", tc.attempt, tc.rnd, got, tc.want)
		}
	}
	// With the real random source every wait stays within the bounds.
	for range 1000 {
		if got := p.Backoff(2, nil); got < 160*time.Millisecond || got > 240*time.Millisecond {
			t.Fatalf("Backoff(2) = %s, want within [160ms, 240ms]", got)
		}
	}
}

func TestWithDefaults(t *testing.T) {
	got := retry.Policy{}.WithDefaults()
	want := retry.Policy{MaxAttempts: 5, InitialInterval: 100 * time.Millisecond, MaxInterval: 5 * time.Second, Multiplier: 2, Jitter: 0.2}
	if got != want {
		t.Errorf("zero policy with defaults = %+v, want %+v", got, want)
	}
	// Defaults applied twice, as the runtime and the Retry middleware do,
	// must not turn "no jitter" into the default jitter.
	none := retry.Policy{InitialInterval: time.Second, MaxInterval: time.Second, Jitter: retry.NoJitter}.WithDefaults().WithDefaults()
	for range 20 {
		if got := none.Backoff(1, nil); got != time.Second {
			t.Fatalf("no jitter after defaults twice: Backoff(1) = %s, want exactly 1s", got)
		}
	}
	for _, p := range []retry.Policy{{}, {Jitter: retry.NoJitter}, {Jitter: 0.5, MaxAttempts: 2}} {
		if once, twice := p.WithDefaults(), p.WithDefaults().WithDefaults(); once != twice {
			t.Errorf("%+v: defaults once %+v, twice %+v: not idempotent", p, once, twice)
		}
	}
	custom := retry.Policy{MaxAttempts: 1, InitialInterval: time.Second, MaxInterval: time.Minute, Multiplier: 3, Jitter: 0.5, MaxElapsed: time.Hour}
	if got := custom.WithDefaults(); got != custom {
		t.Errorf("set fields changed by defaults: %+v", got)
	}
}

func TestValidate(t *testing.T) {
	if err := (retry.Policy{}).Validate("r"); err != nil {
		t.Errorf("zero policy: %v", err)
	}
	bad := retry.Policy{MaxAttempts: -1, InitialInterval: -1, MaxInterval: -1, Multiplier: 0.5, Jitter: 2, MaxElapsed: -1}
	err := bad.Validate("handlers.x.retry")
	for _, field := range []string{"max_attempts", "initial_interval", "max_interval", "multiplier", "jitter", "max_elapsed"} {
		if err == nil || !strings.Contains(err.Error(), "handlers.x.retry."+field) {
			t.Errorf("Validate does not report %s: %v", field, err)
		}
	}
	err = retry.Policy{InitialInterval: time.Second, MaxInterval: time.Millisecond}.Validate("r")
	if err == nil || !strings.Contains(err.Error(), "r.max_interval") {
		t.Errorf("max_interval < initial_interval not reported: %v", err)
	}
}
