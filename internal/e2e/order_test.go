package e2e

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pkg/retry"
	"github.com/switchyard-go/switchyard/pkg/service"
	"github.com/switchyard-go/switchyard/switchyardtest/conformance"
)

// orderPerKeyOnRetry: a handler fails the 2nd message of one key once with
// a transient error; with order_on_retry keep the retry happens in place,
// so every key is still handled in publish order and nothing is lost or
// dead-lettered. Run for an ordered handler (keep by default; on RabbitMQ a
// single-active-consumer queue with prefetch 1) and for an unordered keyed
// handler (concurrency 4) that asks for keep. A retry handed back to the
// broker instead (order_on_retry release: RabbitMQ's delay tiers re-enqueue
// at the tail) lets the key's later messages overtake it, which this
// catches.
func orderPerKeyOnRetry(t *testing.T, e *conformance.Env) {
	const (
		keys, perKey = 4, 10
		failKey      = "key-0"
		failSeq      = 2
	)
	// The backoff is long against the handling of a message, so that
	// messages behind the failed one would be handled meanwhile if the
	// retry left its place.
	backoff := retry.Policy{MaxAttempts: 3, InitialInterval: 300 * time.Millisecond, MaxInterval: 300 * time.Millisecond, Jitter: retry.NoJitter}
	handlers := map[string]service.Policy{
		"ordered": {Ordered: service.On, Retry: backoff},
		"keyed":   {OrderOnRetry: service.OrderKeep, Concurrency: 4, Retry: backoff},
	}
	var mu sync.Mutex
	handled := map[string]map[string][]int{} // handler -> key -> seqs, as handled successfully
	failed := map[string]*atomic.Bool{}
	for name := range handlers {
		handled[name] = map[string][]int{}
		failed[name] = &atomic.Bool{}
	}
	in := e.Start(func(svc *service.Service) error {
		for _, name := range slices.Sorted(maps.Keys(handlers)) {
			err := service.Handle(svc, name, func(_ context.Context, s step) error {
				if s.Key == failKey && s.Seq == failSeq && !failed[name].Swap(true) {
					return errors.New("downstream unavailable, once")
				}
				mu.Lock()
				handled[name][s.Key] = append(handled[name][s.Key], s.Seq)
				mu.Unlock()
				return nil
			}, service.Group("order-retry-"+name), service.WithPolicy(handlers[name]))
			if err != nil {
				return err
			}
		}
		return nil
	})
	for _, name := range slices.Sorted(maps.Keys(handlers)) {
		p, _ := in.Svc.PolicyOf(name)
		if p.OrderOnRetry != service.OrderKeep {
			t.Fatalf("%s: order_on_retry %q, want keep", name, p.OrderOnRetry)
		}
	}
	want := make([]int, perKey)
	for i := range want {
		want[i] = i + 1
	}
	for _, seq := range want {
		for k := range keys {
			if err := in.Svc.Publish(context.Background(), step{Key: fmt.Sprintf("key-%d", k), Seq: seq}); err != nil {
				t.Fatal(err)
			}
		}
	}
	count := func(name string) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, seqs := range handled[name] {
			n += len(seqs)
		}
		return n
	}
	e.Eventually("every message handled by both handlers", func() bool {
		return count("ordered") >= keys*perKey && count("keyed") >= keys*perKey
	})
	e.Quiet() // redeliveries and duplicates have shown up
	mu.Lock()
	defer mu.Unlock()
	for _, name := range slices.Sorted(maps.Keys(handlers)) {
		if !failed[name].Load() {
			t.Errorf("%s: the injected failure never happened", name)
		}
		for k := range keys {
			key := fmt.Sprintf("key-%d", k)
			if got := handled[name][key]; !slices.Equal(got, want) {
				t.Errorf("%s, %s: handled %v, want %v: each message once, in publish order, across the retry of %s/%d",
					name, key, got, want, failKey, failSeq)
			}
		}
		c := e.Probe.Counts(name)
		if c.Retried != 1 || c.DeadLettered != 0 {
			t.Errorf("%s: retried=%d dead_lettered=%d, want the one failure retried and nothing dead-lettered", name, c.Retried, c.DeadLettered)
		}
		t.Logf("%s: %d messages, %d retries, %d nacked", name, keys*perKey, c.Retried, c.Nacked)
	}
}
