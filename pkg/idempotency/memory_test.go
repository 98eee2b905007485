package idempotency_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pkg/idempotency"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newStore(t *testing.T, cfg idempotency.MemoryConfig) (*idempotency.Memory, *clock) {
	t.Helper()
	c := &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	m, err := idempotency.NewMemory(cfg, idempotency.WithClock(c))
	if err != nil {
		t.Fatal(err)
	}
	return m, c
}

func claim(t *testing.T, s idempotency.Store, key string, lease time.Duration) idempotency.Claim {
	t.Helper()
	c, err := s.Claim(context.Background(), key, lease)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestMemoryDuplicateAfterComplete(t *testing.T) {
	s, _ := newStore(t, idempotency.MemoryConfig{})
	ctx := context.Background()
	c := claim(t, s, "g/1", time.Minute)
	if c.State != idempotency.Claimed {
		t.Fatalf("first claim: %v", c.State)
	}
	if got := claim(t, s, "g/1", time.Minute).State; got != idempotency.InProgress {
		t.Fatalf("claim while claimed: %v, want in_progress", got)
	}
	if err := s.Complete(ctx, "g/1", c.Token); err != nil {
		t.Fatal(err)
	}
	if got := claim(t, s, "g/1", time.Minute).State; got != idempotency.Completed {
		t.Fatalf("claim after complete: %v, want completed", got)
	}
	if got := claim(t, s, "g/2", time.Minute).State; got != idempotency.Claimed {
		t.Fatalf("other key: %v, want claimed", got)
	}
}

func TestMemoryReleaseLetsARetryClaim(t *testing.T) {
	s, _ := newStore(t, idempotency.MemoryConfig{})
	c := claim(t, s, "k", time.Minute)
	if err := s.Release(context.Background(), "k", c.Token); err != nil {
		t.Fatal(err)
	}
	if got := claim(t, s, "k", time.Minute).State; got != idempotency.Claimed {
		t.Fatalf("claim after release: %v, want claimed", got)
	}
}

func TestMemoryLeaseExpiryAndLostLease(t *testing.T) {
	s, clk := newStore(t, idempotency.MemoryConfig{})
	ctx := context.Background()
	dead := claim(t, s, "k", time.Minute)
	clk.Advance(time.Minute)
	taker := claim(t, s, "k", time.Minute)
	if taker.State != idempotency.Claimed {
		t.Fatalf("claim after lease end: %v, want claimed (holder presumed dead)", taker.State)
	}
	if err := s.Complete(ctx, "k", dead.Token); !errors.Is(err, idempotency.ErrLeaseLost) {
		t.Fatalf("complete with a lost lease: %v, want ErrLeaseLost", err)
	}
	if err := s.Release(ctx, "k", dead.Token); !errors.Is(err, idempotency.ErrLeaseLost) {
		t.Fatalf("release with a lost lease: %v, want ErrLeaseLost", err)
	}
	if got := claim(t, s, "k", time.Minute).State; got != idempotency.InProgress {
		t.Fatalf("the dead holder's release must not free the new claim: %v", got)
	}
}

func TestMemoryTTLForgetsCompletedKeys(t *testing.T) {
	s, clk := newStore(t, idempotency.MemoryConfig{TTL: time.Hour})
	c := claim(t, s, "k", time.Minute)
	if err := s.Complete(context.Background(), "k", c.Token); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour - time.Second)
	if got := claim(t, s, "k", time.Minute).State; got != idempotency.Completed {
		t.Fatalf("before TTL: %v, want completed", got)
	}
	clk.Advance(time.Second)
	if got := claim(t, s, "k", time.Minute).State; got != idempotency.Claimed {
		t.Fatalf("after TTL: %v, want claimed again", got)
	}
}

func TestMemoryBound(t *testing.T) {
	s, _ := newStore(t, idempotency.MemoryConfig{MaxEntries: 10})
	ctx := context.Background()
	for i := range 100 {
		k := fmt.Sprint(i)
		c := claim(t, s, k, time.Minute)
		if err := s.Complete(ctx, k, c.Token); err != nil {
			t.Fatal(err)
		}
		if n := s.Len(); n > 10 {
			t.Fatalf("after %d keys the store holds %d, bound 10", i+1, n)
		}
	}
	if got := claim(t, s, "99", time.Minute).State; got != idempotency.Completed {
		t.Fatalf("newest key: %v, want completed (oldest are evicted first)", got)
	}
	if got := claim(t, s, "0", time.Minute).State; got != idempotency.Claimed {
		t.Fatalf("oldest key: %v, want evicted", got)
	}
}

func TestMemoryBoundNeverEvictsLiveClaims(t *testing.T) {
	s, _ := newStore(t, idempotency.MemoryConfig{MaxEntries: 2})
	for i := range 5 {
		claim(t, s, fmt.Sprint(i), time.Minute)
	}
	for i := range 5 {
		if got := claim(t, s, fmt.Sprint(i), time.Minute).State; got != idempotency.InProgress {
			t.Fatalf("live claim %d: %v, want in_progress (never evicted)", i, got)
		}
	}
}

func TestMemoryConcurrentClaimsOnlyOneRuns(t *testing.T) {
	s, _ := newStore(t, idempotency.MemoryConfig{})
	ctx := context.Background()
	var ran atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			c, err := s.Claim(ctx, "same", time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			if c.State == idempotency.Claimed {
				ran.Add(1)
				if err := s.Complete(ctx, "same", c.Token); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	if n := ran.Load(); n != 1 {
		t.Fatalf("%d of 32 concurrent claims ran the effect, want 1", n)
	}
}

func TestMemoryConfigValidate(t *testing.T) {
	err := idempotency.MemoryConfig{MaxEntries: -1, TTL: -time.Second}.Validate()
	for _, want := range []string{"idempotency.memory.max_entries: -1", "idempotency.memory.ttl: -1s"} {
		if err == nil || !contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to name %q", err, want)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
