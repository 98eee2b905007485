package service_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/idempotency"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/retry"
	"github.com/switchyard-go/switchyard/pkg/service"
)

func newIdempotencyStore(t *testing.T) *idempotency.Memory {
	t.Helper()
	m, err := idempotency.NewMemory(idempotency.MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestIdempotencyBrokerRedeliveredDuplicate publishes one message id twice,
// as a broker redelivering it would: the handler runs once and the second
// copy is counted as a duplicate.
func TestIdempotencyBrokerRedeliveredDuplicate(t *testing.T) {
	b := newBroker(t)
	svc := service.New(b, service.WithIdempotency(newIdempotencyStore(t)))
	var calls atomic.Int32
	if err := service.Handle(svc, "reserve", func(ctx context.Context, e orderPlaced) error {
		calls.Add(1)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	start(t, svc)
	msg, topic, err := svc.NewMessage(context.Background(), orderPlaced{OrderID: "o-1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publisher().Publish(topic, msg, msg.Copy()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "one handled and one duplicate", func() bool {
		s := svc.Stats()
		return s.Handled == 1 && s.Duplicates == 1
	})
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}
	if s := svc.Stats(); s.Nacked != 0 || s.DeadLettered != 0 {
		t.Fatalf("stats %+v: a duplicate must be acked, not nacked or dead-lettered", s)
	}
}

// TestIdempotencyBusinessKey dedupes two messages with different ids that
// carry the same order.
func TestIdempotencyBusinessKeyOption(t *testing.T) {
	b := newBroker(t)
	svc := service.New(b, service.WithIdempotency(newIdempotencyStore(t),
		service.IdempotencyKey(func(d *middleware.Delivery) string { return "order/" + d.Envelope.Key })))
	var calls atomic.Int32
	if err := service.Handle(svc, "reserve", func(ctx context.Context, e orderPlaced) error {
		calls.Add(1)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	start(t, svc)
	for range 2 {
		if err := svc.Publish(context.Background(), orderPlaced{OrderID: "o-7"}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "one duplicate", func() bool { return svc.Stats().Duplicates == 1 })
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}
}

// TestIdempotencyDelayedRetryIsNotADuplicate: a failure handed back to the
// broker for a delayed retry releases the key, so the retry runs.
func TestIdempotencyDelayedRetryIsNotADuplicate(t *testing.T) {
	b := newBroker(t)
	svc := service.New(b, service.WithIdempotency(newIdempotencyStore(t)))
	var calls atomic.Int32
	done := make(chan struct{})
	if err := service.Handle(svc, "reserve", func(ctx context.Context, e orderPlaced) error {
		if calls.Add(1) == 1 {
			return errors.New("transient")
		}
		close(done)
		return nil
	}, service.WithPolicy(service.Policy{
		Retry:            retry.Policy{InitialInterval: 20 * time.Millisecond, Jitter: -1},
		MaxInProcessWait: time.Millisecond, // every wait goes through the broker
	})); err != nil {
		t.Fatal(err)
	}
	start(t, svc)
	if err := svc.Publish(context.Background(), orderPlaced{OrderID: "o-9"}); err != nil {
		t.Fatal(err)
	}
	recv(t, done, "the delayed retry")
	if s := svc.Stats(); s.Duplicates != 0 || s.Retried != 1 {
		t.Fatalf("stats %+v: want 1 retry and no duplicate", s)
	}
}

// TestIdempotencyConcurrentCopyWaitsForTheFirst: a copy arriving while the
// first is still being handled is handed back to the broker, not run and
// not dropped; once the first completes, it comes back as a duplicate.
func TestIdempotencyConcurrentCopyWaitsForTheFirst(t *testing.T) {
	b := newBroker(t)
	logger, logs := newLogCapture("idempotency key busy")
	svc := service.New(b, service.WithLogger(logger), service.WithIdempotency(newIdempotencyStore(t)))
	var calls atomic.Int32
	release := make(chan struct{})
	if err := service.Handle(svc, "reserve", func(ctx context.Context, e orderPlaced) error {
		calls.Add(1)
		<-release
		return nil
	}, service.Concurrency(2), service.WithPolicy(service.Policy{MaxInProcessWait: time.Millisecond})); err != nil {
		t.Fatal(err)
	}
	start(t, svc)
	msg, topic, err := svc.NewMessage(context.Background(), orderPlaced{}) // no key: the copies go to different workers
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publisher().Publish(topic, msg, msg.Copy()); err != nil {
		t.Fatal(err)
	}
	recv(t, logs.seen("idempotency key busy"), "the second copy handed back while the first runs")
	close(release)
	waitFor(t, "the handed-back copy to come back as a duplicate", func() bool { return svc.Stats().Duplicates == 1 })
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}
}

// An exactly-once handler is refused on a broker without transactions, and
// together with an idempotency store: the store records a delivery outside
// the transaction, so a delivery whose transaction aborted would be
// skipped and its output lost.
func TestExactlyOnceRefusals(t *testing.T) {
	eo := service.WithPolicy(service.Policy{ExactlyOnce: service.On})
	run := func(b broker.Broker, opts ...service.Option) error {
		svc := service.New(b, opts...)
		if err := service.Handle(svc, "reserve", func(context.Context, orderPlaced) error { return nil }, eo); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		defer cancel()
		return svc.Run(ctx)
	}
	if err := run(newBroker(t)); err == nil || !strings.Contains(err.Error(), "handlers.reserve.exactly_once: true, but broker memory has no transactions") {
		t.Errorf("Run on memory = %v, want exactly_once refused", err)
	}
	fb := newFakeBroker(t)
	fb.exactlyOnce = true
	if err := run(fb, service.WithIdempotency(newIdempotencyStore(t))); err == nil || !strings.Contains(err.Error(), "WithIdempotency") {
		t.Errorf("Run with an idempotency store = %v, want exactly_once refused", err)
	}
}
