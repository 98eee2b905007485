package middleware_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/retry"
)

var errTransient = errors.New("database unavailable")

// failing returns a handler that fails the first n calls with err (n < 0:
// always) and records the attempt number each call saw.
func failing(n int, err error) (middleware.Handler, func() []int) {
	var mu sync.Mutex
	var attempts []int
	h := func(_ context.Context, d *middleware.Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		attempts = append(attempts, d.Attempt)
		if n < 0 || len(attempts) <= n {
			return err
		}
		return nil
	}
	return h, func() []int {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(attempts)
	}
}

func TestRetryBackoffSequence(t *testing.T) {
	policy := retry.Policy{MaxAttempts: 6, InitialInterval: 100 * time.Millisecond, Multiplier: 2, MaxInterval: time.Second}
	cases := []struct {
		name   string
		jitter float64
		rnd    float64
		want   []time.Duration
	}{
		{"no jitter", -1, 0.7, ms(100, 200, 400, 800, 1000)},
		{"jitter low bound", 0.2, 0, ms(80, 160, 320, 640, 800)},
		{"jitter high bound", 0.5, 0.9999999, []time.Duration{149999995, 299999990, 599999980, 1000000000, 1000000000}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := newClock()
			p := policy
			p.Jitter = tc.jitter
			var retried []time.Duration
			h, attempts := failing(-1, errTransient)
			err := middleware.Chain(h, middleware.Retry(middleware.RetryConfig{
				Policy: p, Clock: clock, Rand: func() float64 { return tc.rnd },
				OnRetry: func(d *middleware.Delivery, wait time.Duration, err error) {
					if !errors.Is(err, errTransient) {
						t.Errorf("OnRetry got err %v", err)
					}
					retried = append(retried, wait)
				},
			}))(context.Background(), newDelivery())
			if !errors.Is(err, errTransient) {
				t.Fatalf("err = %v, want it to wrap the handler's error", err)
			}
			if failure.IsPermanent(err) {
				t.Errorf("exhausted retries made the error permanent: %v", err)
			}
			if got := attempts(); !slices.Equal(got, []int{1, 2, 3, 4, 5, 6}) {
				t.Errorf("handler saw attempts %v, want 1..6", got)
			}
			if got := clock.Sleeps(); !approxEqual(got, tc.want) {
				t.Errorf("sleeps = %v, want %v", got, tc.want)
			}
			if !slices.Equal(retried, clock.Sleeps()) {
				t.Errorf("OnRetry waits %v, want one per sleep %v", retried, clock.Sleeps())
			}
		})
	}
}

func approxEqual(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if d := a[i] - b[i]; d < -time.Microsecond || d > time.Microsecond {
			return false
		}
	}
	return true
}

func TestRetrySucceedsAfterFailures(t *testing.T) {
	clock := newClock()
	h, attempts := failing(2, errTransient)
	d := newDelivery()
	err := middleware.Retry(middleware.RetryConfig{Policy: retry.Policy{Jitter: -1}, Clock: clock})(h)(context.Background(), d)
	if err != nil {
		t.Fatalf("err = %v, want nil after a successful third attempt", err)
	}
	if got := attempts(); !slices.Equal(got, []int{1, 2, 3}) {
		t.Errorf("attempts = %v, want [1 2 3]", got)
	}
	if !d.FirstFailure.Equal(t0) || !d.LastFailure.Equal(t0.Add(100*time.Millisecond)) {
		t.Errorf("failure times = %v, %v", d.FirstFailure, d.LastFailure)
	}
}

func TestRetryMaxAttempts(t *testing.T) {
	for _, max := range []int{1, 2, 5} {
		clock := newClock()
		h, attempts := failing(-1, errTransient)
		err := middleware.Retry(middleware.RetryConfig{Policy: retry.Policy{MaxAttempts: max}, Clock: clock})(h)(context.Background(), newDelivery())
		if err == nil {
			t.Fatalf("max %d: err = nil", max)
		}
		if n := len(attempts()); n != max {
			t.Errorf("max %d: handler called %d times", max, n)
		}
		if n := len(clock.Sleeps()); n != max-1 {
			t.Errorf("max %d: slept %d times", max, n)
		}
	}
}

func TestRetryContinuesDelayedAttemptCount(t *testing.T) {
	// A delayed redelivery arrives with attempts already made; the policy
	// counts them.
	clock := newClock()
	h, attempts := failing(-1, errTransient)
	d := newDelivery()
	d.Attempt = 4
	_ = middleware.Retry(middleware.RetryConfig{Policy: retry.Policy{MaxAttempts: 5}, Clock: clock})(h)(context.Background(), d)
	if got := attempts(); !slices.Equal(got, []int{4, 5}) {
		t.Errorf("attempts = %v, want [4 5]", got)
	}
}

func TestRetryMaxElapsed(t *testing.T) {
	clock := newClock()
	h, attempts := failing(-1, errTransient)
	p := retry.Policy{MaxAttempts: 100, InitialInterval: 100 * time.Millisecond, Multiplier: 2, MaxInterval: time.Second,
		Jitter: -1, MaxElapsed: 500 * time.Millisecond}
	err := middleware.Retry(middleware.RetryConfig{Policy: p, Clock: clock})(h)(context.Background(), newDelivery())
	if !errors.Is(err, errTransient) {
		t.Fatalf("err = %v", err)
	}
	// Failures at 0, 100ms, 300ms and 500ms; the third wait is cut to what is left.
	if got := clock.Sleeps(); !slices.Equal(got, ms(100, 200, 200)) {
		t.Errorf("sleeps = %v, want [100ms 200ms 200ms]", got)
	}
	if n := len(attempts()); n != 4 {
		t.Errorf("handler called %d times, want 4", n)
	}
}

func TestRetryPermanentSkipsRetries(t *testing.T) {
	for name, perr := range map[string]error{
		"Permanent":  failure.Permanent(errors.New("negative total")),
		"WithReason": failure.WithReason(failure.ReasonDecode, errors.New("bad json")),
		"wrapped":    errors.Join(errors.New("context"), failure.Permanent(errors.New("x"))),
	} {
		t.Run(name, func(t *testing.T) {
			clock := newClock()
			h, attempts := failing(-1, perr)
			retried := 0
			err := middleware.Retry(middleware.RetryConfig{Clock: clock, OnRetry: func(*middleware.Delivery, time.Duration, error) { retried++ }})(h)(context.Background(), newDelivery())
			if err != perr {
				t.Errorf("err = %v, want the permanent error unchanged", err)
			}
			if n := len(attempts()); n != 1 || retried != 0 || len(clock.Sleeps()) != 0 {
				t.Errorf("handler called %d times, retried %d, slept %v: want once, no retry", n, retried, clock.Sleeps())
			}
		})
	}
}

func TestRetryDelayedForLongWaits(t *testing.T) {
	clock := newClock()
	h, attempts := failing(-1, errTransient)
	type call struct {
		attempt int
		wait    time.Duration
	}
	var delayed []call
	cfg := middleware.RetryConfig{
		Policy:           retry.Policy{InitialInterval: 100 * time.Millisecond, Multiplier: 2, MaxInterval: time.Minute, Jitter: -1},
		Clock:            clock,
		MaxInProcessWait: 150 * time.Millisecond,
		Delay: func(_ context.Context, d *middleware.Delivery, wait time.Duration) error {
			delayed = append(delayed, call{d.Attempt, wait})
			if d.FirstFailure.IsZero() {
				t.Error("FirstFailure not set before Delay")
			}
			return nil
		},
	}
	err := middleware.Retry(cfg)(h)(context.Background(), newDelivery())
	if err != nil {
		t.Fatalf("err = %v, want nil (the broker holds the message now)", err)
	}
	if got := clock.Sleeps(); !slices.Equal(got, ms(100)) {
		t.Errorf("in-process sleeps = %v, want [100ms]", got)
	}
	if len(delayed) != 1 || delayed[0] != (call{2, 200 * time.Millisecond}) {
		t.Errorf("Delay calls = %v, want one after attempt 2 with 200ms", delayed)
	}
	if n := len(attempts()); n != 2 {
		t.Errorf("handler called %d times, want 2", n)
	}

	t.Run("delay fails", func(t *testing.T) {
		errStore := errors.New("broker down")
		cfg := cfg
		cfg.Clock = newClock()
		cfg.MaxInProcessWait = time.Millisecond
		cfg.Delay = func(context.Context, *middleware.Delivery, time.Duration) error { return errStore }
		h, _ := failing(-1, errTransient)
		err := middleware.Retry(cfg)(h)(context.Background(), newDelivery())
		var fpe *middleware.FailurePathError
		if !errors.As(err, &fpe) || fpe.Op != middleware.OpDelayedRetry || !errors.Is(err, errStore) || fpe.Cause != errTransient {
			t.Errorf("err = %v, want a FailurePathError with the delay and the handler error (nacked, not dead-lettered)", err)
		}
	})
	t.Run("no MaxInProcessWait sleeps every wait", func(t *testing.T) {
		cfg := cfg
		clock := newClock()
		cfg.Clock, cfg.MaxInProcessWait = clock, 0
		cfg.Delay = func(context.Context, *middleware.Delivery, time.Duration) error {
			t.Error("Delay used without MaxInProcessWait")
			return nil
		}
		h, _ := failing(-1, errTransient)
		_ = middleware.Retry(cfg)(h)(context.Background(), newDelivery())
		if n := len(clock.Sleeps()); n != retry.DefaultMaxAttempts-1 {
			t.Errorf("slept %d times", n)
		}
	})
}

func TestRetryCancelledDuringSleep(t *testing.T) {
	clock := newClock()
	clock.block, clock.sleeping = true, make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h, attempts := failing(-1, errTransient)
	errc := make(chan error, 1)
	go func() { errc <- middleware.Retry(middleware.RetryConfig{Clock: clock})(h)(ctx, newDelivery()) }()
	<-clock.sleeping
	cancel()
	err := <-errc
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want it to wrap context.Canceled", err)
	}
	if !errors.Is(err, errTransient) {
		t.Errorf("err = %v, want it to keep the handler's error", err)
	}
	if n := len(attempts()); n != 1 {
		t.Errorf("handler called %d times after shutdown, want 1", n)
	}
}

func TestSystemClock(t *testing.T) {
	c := middleware.SystemClock{}
	if err := c.Sleep(context.Background(), time.Millisecond); err != nil {
		t.Errorf("Sleep = %v", err)
	}
	if err := c.Sleep(context.Background(), 0); err != nil {
		t.Errorf("Sleep(0) = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep on a cancelled ctx = %v", err)
	}
	if c.Now().IsZero() {
		t.Error("Now is zero")
	}
}
