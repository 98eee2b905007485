package middleware_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pkg/idempotency"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/retry"
)

// flakyStore fails the next `fails` calls to Claim, then behaves like Memory.
type flakyStore struct {
	*idempotency.Memory
	fails atomic.Int32
}

var errStoreDown = errors.New("store down")

func (s *flakyStore) Claim(ctx context.Context, key string, lease time.Duration) (idempotency.Claim, error) {
	if s.fails.Add(-1) >= 0 {
		return idempotency.Claim{}, errStoreDown
	}
	return s.Memory.Claim(ctx, key, lease)
}

func newIdemStore(t *testing.T, clk idempotency.Clock) *idempotency.Memory {
	t.Helper()
	m, err := idempotency.NewMemory(idempotency.MemoryConfig{}, idempotency.WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

type requeue struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (r *requeue) fn(_ context.Context, _ *middleware.Delivery, wait time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.waits = append(r.waits, wait)
	return nil
}

func TestIdempotencyDuplicateAckedWithoutHandler(t *testing.T) {
	clk := newClock()
	store := newIdemStore(t, clk)
	var dups atomic.Int32
	var calls int
	h := middleware.Chain(func(context.Context, *middleware.Delivery) error { calls++; return nil },
		middleware.Idempotency(middleware.IdempotencyConfig{Store: store, Clock: clk,
			OnDuplicate: func(*middleware.Delivery) { dups.Add(1) }}))
	for i := range 3 {
		if err := h(context.Background(), newDelivery()); err != nil {
			t.Fatalf("delivery %d: %v, want nil (acked)", i+1, err)
		}
	}
	if calls != 1 || dups.Load() != 2 {
		t.Fatalf("handler ran %d times, %d duplicates; want 1 and 2", calls, dups.Load())
	}
}

func TestIdempotencyKeyIsGroupAndMessageIDByDefault(t *testing.T) {
	clk := newClock()
	store := newIdemStore(t, clk)
	var calls int
	h := middleware.Chain(func(context.Context, *middleware.Delivery) error { calls++; return nil },
		middleware.Idempotency(middleware.IdempotencyConfig{Store: store, Clock: clk}))
	other := newDelivery()
	other.Handler = &middleware.Info{Name: "notify", Group: "notifications"}
	for _, d := range []*middleware.Delivery{newDelivery(), other} {
		if err := h(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	if calls != 2 {
		t.Fatalf("handler ran %d times; each group must handle the message once", calls)
	}
	if got := middleware.IdempotencyKey(newDelivery()); got != "inventory/msg-1" {
		t.Fatalf("IdempotencyKey = %q", got)
	}
}

func TestIdempotencyBusinessKey(t *testing.T) {
	clk := newClock()
	store := newIdemStore(t, clk)
	var calls int
	h := middleware.Chain(func(context.Context, *middleware.Delivery) error { calls++; return nil },
		middleware.Idempotency(middleware.IdempotencyConfig{Store: store, Clock: clk,
			Key: func(d *middleware.Delivery) string { return "order/" + d.Envelope.Key }}))
	for _, id := range []string{"a", "b"} {
		d := newDelivery()
		d.Envelope.ID, d.Envelope.Key = id, "o-1"
		if err := h(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	if calls != 1 {
		t.Fatalf("two messages for one order ran %d times, want 1", calls)
	}
}

func TestIdempotencyFailureReleasesForRetry(t *testing.T) {
	clk := newClock()
	store := newIdemStore(t, clk)
	fail := errors.New("boom")
	var calls int
	h := middleware.Chain(func(context.Context, *middleware.Delivery) error {
		calls++
		if calls == 1 {
			return fail
		}
		return nil
	}, middleware.Idempotency(middleware.IdempotencyConfig{Store: store, Clock: clk}))
	if err := h(context.Background(), newDelivery()); !errors.Is(err, fail) {
		t.Fatalf("first delivery: %v, want the handler's error", err)
	}
	if err := h(context.Background(), newDelivery()); err != nil {
		t.Fatalf("redelivery: %v", err)
	}
	if calls != 2 || len(clk.Sleeps()) != 0 {
		t.Fatalf("handler ran %d times after %v waits; the redelivery must run at once", calls, clk.Sleeps())
	}
}

// claimElsewhere makes another instance hold the delivery's key.
func claimElsewhere(t *testing.T, store idempotency.Store, lease time.Duration) idempotency.Claim {
	t.Helper()
	c, err := store.Claim(context.Background(), middleware.IdempotencyKey(newDelivery()), lease)
	if err != nil || c.State != idempotency.Claimed {
		t.Fatalf("claim: %v %v", c.State, err)
	}
	return c
}

func TestIdempotencyClaimedElsewhereIsRequeued(t *testing.T) {
	clk := newClock()
	store := newIdemStore(t, clk)
	claimElsewhere(t, store, time.Minute)
	rq := &requeue{}
	var calls int
	h := middleware.Chain(func(context.Context, *middleware.Delivery) error { calls++; return nil },
		middleware.Idempotency(middleware.IdempotencyConfig{Store: store, Clock: clk, Requeue: rq.fn,
			MaxInProcessWait: time.Second, Backoff: retry.Policy{Jitter: -1}}))
	if err := h(context.Background(), newDelivery()); err != nil {
		t.Fatalf("err = %v, want nil (handed back, then acked)", err)
	}
	if calls != 0 {
		t.Fatal("the handler ran while another instance held the key")
	}
	if len(rq.waits) != 1 {
		t.Fatalf("requeued %d times, want 1", len(rq.waits))
	}
	var slept time.Duration
	for _, s := range clk.Sleeps() {
		slept += s
	}
	if slept > time.Second || rq.waits[0] < time.Second/2 || rq.waits[0] > time.Minute {
		t.Fatalf("slept %s in-process (max 1s), requeued for %s (want about MaxInProcessWait, within the other's lease)", slept, rq.waits[0])
	}
}

func TestIdempotencyClaimedElsewhereWaitsWithoutRequeue(t *testing.T) {
	t.Run("other completes: duplicate", func(t *testing.T) {
		clk := newClock()
		store := newIdemStore(t, clk)
		other := claimElsewhere(t, store, time.Minute)
		var calls, dups int
		h := middleware.Chain(func(context.Context, *middleware.Delivery) error { calls++; return nil },
			middleware.Idempotency(middleware.IdempotencyConfig{Store: store,
				Clock: &hookClock{fakeClock: clk, after: 3, fn: func() {
					_ = store.Complete(context.Background(), middleware.IdempotencyKey(newDelivery()), other.Token)
				}},
				OnDuplicate: func(*middleware.Delivery) { dups++ }}))
		if err := h(context.Background(), newDelivery()); err != nil {
			t.Fatal(err)
		}
		if calls != 0 || dups != 1 {
			t.Fatalf("handler ran %d times, %d duplicates; want 0 and 1", calls, dups)
		}
	})
	t.Run("other's lease ends: taken over", func(t *testing.T) {
		clk := newClock()
		store := newIdemStore(t, clk)
		claimElsewhere(t, store, 10*time.Second)
		var calls int
		h := middleware.Chain(func(context.Context, *middleware.Delivery) error { calls++; return nil },
			middleware.Idempotency(middleware.IdempotencyConfig{Store: store, Clock: clk}))
		if err := h(context.Background(), newDelivery()); err != nil {
			t.Fatal(err)
		}
		if calls != 1 || clk.Now().Sub(t0) < 10*time.Second {
			t.Fatalf("handler ran %d times at %s; want once, after the other's lease", calls, clk.Now().Sub(t0))
		}
	})
	t.Run("shutdown while waiting: error, so the message is nacked", func(t *testing.T) {
		clk := newClock()
		store := newIdemStore(t, clk)
		claimElsewhere(t, store, time.Hour)
		ctx, cancel := context.WithCancel(context.Background())
		h := middleware.Chain(func(context.Context, *middleware.Delivery) error { t.Error("handler ran"); return nil },
			middleware.Idempotency(middleware.IdempotencyConfig{Store: store,
				Clock: &hookClock{fakeClock: clk, after: 2, fn: cancel}}))
		if err := h(ctx, newDelivery()); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want one wrapping context.Canceled", err)
		}
	})
}

func TestIdempotencyStoreErrorIsNeverHandledNorDropped(t *testing.T) {
	t.Run("store recovers", func(t *testing.T) {
		clk := newClock()
		store := &flakyStore{Memory: newIdemStore(t, clk)}
		store.fails.Store(3)
		var calls int
		h := middleware.Chain(func(context.Context, *middleware.Delivery) error { calls++; return nil },
			middleware.Idempotency(middleware.IdempotencyConfig{Store: store, Clock: clk}))
		if err := h(context.Background(), newDelivery()); err != nil {
			t.Fatal(err)
		}
		if calls != 1 || len(clk.Sleeps()) != 3 {
			t.Fatalf("handler ran %d times after %d waits; want once, after 3", calls, len(clk.Sleeps()))
		}
	})
	t.Run("store stays down: requeued", func(t *testing.T) {
		clk := newClock()
		store := &flakyStore{Memory: newIdemStore(t, clk)}
		store.fails.Store(1 << 30)
		rq := &requeue{}
		h := middleware.Chain(func(context.Context, *middleware.Delivery) error { t.Error("handler ran without a claim"); return nil },
			middleware.Idempotency(middleware.IdempotencyConfig{Store: store, Clock: clk, Requeue: rq.fn}))
		if err := h(context.Background(), newDelivery()); err != nil {
			t.Fatal(err)
		}
		if len(rq.waits) != 1 {
			t.Fatalf("requeued %d times, want 1", len(rq.waits))
		}
	})
	t.Run("store stays down, shutdown: error", func(t *testing.T) {
		clk := newClock()
		store := &flakyStore{Memory: newIdemStore(t, clk)}
		store.fails.Store(1 << 30)
		ctx, cancel := context.WithCancel(context.Background())
		h := middleware.Chain(func(context.Context, *middleware.Delivery) error { t.Error("handler ran without a claim"); return nil },
			middleware.Idempotency(middleware.IdempotencyConfig{Store: store, Clock: &hookClock{fakeClock: clk, after: 2, fn: cancel}}))
		err := h(ctx, newDelivery())
		if !errors.Is(err, context.Canceled) || !errors.Is(err, errStoreDown) {
			t.Fatalf("err = %v, want context.Canceled and the store error", err)
		}
	})
}

func TestIdempotencyDelayedRetryReleasesClaim(t *testing.T) {
	clk := newClock()
	store := newIdemStore(t, clk)
	rq := &requeue{}
	var calls int
	h := middleware.Chain(func(context.Context, *middleware.Delivery) error {
		calls++
		if calls == 1 {
			return errors.New("transient")
		}
		return nil
	},
		middleware.Idempotency(middleware.IdempotencyConfig{Store: store, Clock: clk}),
		middleware.Retry(middleware.RetryConfig{Clock: clk, Delay: middleware.IdempotentDelay(rq.fn), MaxInProcessWait: time.Nanosecond}))
	if err := h(context.Background(), newDelivery()); err != nil {
		t.Fatal(err)
	}
	if len(rq.waits) != 1 {
		t.Fatalf("handed back %d times, want 1", len(rq.waits))
	}
	// The delayed redelivery arrives: it must run, not be taken for a duplicate.
	d := newDelivery()
	d.Attempt = 2
	if err := h(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	if calls != 2 {
		t.Fatalf("handler ran %d times, want 2 (the delayed retry was skipped as a duplicate)", calls)
	}
	if middleware.IdempotentDelay(nil) != nil {
		t.Fatal("IdempotentDelay(nil) must stay nil so that Retry sleeps in-process")
	}
}

// hookClock calls fn once, on its after-th Sleep.
type hookClock struct {
	*fakeClock
	after int
	n     int
	fn    func()
}

func (c *hookClock) Sleep(ctx context.Context, d time.Duration) error {
	c.n++
	if c.n == c.after {
		c.fn()
	}
	return c.fakeClock.Sleep(ctx, d)
}

// A handler that runs longer than its lease keeps its claim: the lease is
// renewed while it runs, so a second copy of the message finds the key in
// progress rather than taking it over.
func TestIdempotencyLeaseRenewedWhileHandlerRuns(t *testing.T) {
	store, err := idempotency.NewMemory(idempotency.MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	const lease = 40 * time.Millisecond
	release := make(chan struct{})
	running := make(chan struct{})
	mw := middleware.Idempotency(middleware.IdempotencyConfig{Store: store, Lease: lease})
	done := make(chan error, 1)
	d := newDelivery()
	go func() {
		done <- mw(func(ctx context.Context, _ *middleware.Delivery) error {
			close(running)
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		})(context.Background(), d)
	}()
	<-running
	key := middleware.IdempotencyKey(d)
	deadline := time.Now().Add(5 * lease)
	for time.Now().Before(deadline) { // five leases' time: each must have been renewed
		c, err := store.Claim(context.Background(), key, lease)
		if err != nil || c.State != idempotency.InProgress {
			t.Fatalf("while the handler runs, a second claim got %v, %v: want in_progress", c.State, err)
		}
		time.Sleep(lease / 4) // sampling the claim over time, not synchronising
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("handler: %v", err)
	}
	if c, _ := store.Claim(context.Background(), key, lease); c.State != idempotency.Completed {
		t.Errorf("after the handler: %v, want completed", c.State)
	}
}

// lostStore's claims cannot be extended: someone took them over.
type lostStore struct{ *idempotency.Memory }

func (lostStore) Extend(_ context.Context, key, _ string, _ time.Duration) (time.Time, error) {
	return time.Time{}, idempotency.ErrLeaseLost
}

// A claim lost while the handler runs cancels the handler's context with
// ErrLeaseLost: another copy may run now.
func TestIdempotencyLostClaimCancelsHandler(t *testing.T) {
	mem, err := idempotency.NewMemory(idempotency.MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	mw := middleware.Idempotency(middleware.IdempotencyConfig{Store: lostStore{mem}, Lease: 20 * time.Millisecond})
	err = mw(func(ctx context.Context, _ *middleware.Delivery) error {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(10 * time.Second):
			return errors.New("context never cancelled")
		}
	})(context.Background(), newDelivery())
	if !errors.Is(err, middleware.ErrLeaseLost) {
		t.Fatalf("handler ended with %v, want ErrLeaseLost", err)
	}
}
