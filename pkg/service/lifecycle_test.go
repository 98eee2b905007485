package service_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pkg/service"
)

// runAsync runs svc until the test ends and returns Run's result channel
// once the service is ready.
func runAsync(t *testing.T, svc *service.Service) <-chan error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- svc.Run(ctx) }()
	t.Cleanup(cancel)
	select {
	case <-svc.Ready():
	case err := <-errc:
		t.Fatalf("Run: %v", err)
	case <-time.After(guard):
		t.Fatal("service not ready")
	}
	return errc
}

// TestFailedSubscriptionNamesTheCause: an adapter that ends a subscription
// on an error it cannot recover from (broker.Failer) has that error in
// Run's, so the operator reads "not authorized", not "channel closed".
func TestFailedSubscriptionNamesTheCause(t *testing.T) {
	b := newFakeBroker(t)
	svc := service.New(b)
	if err := service.Handle(svc, "alpha", func(context.Context, seqEvent) error { return nil },
		service.Group("alpha")); err != nil {
		t.Fatal(err)
	}
	errc := runAsync(t, svc)
	recv(t, svc.Ready(), "the service to be ready")
	cause := errors.New("TOPIC_AUTHORIZATION_FAILED: not authorized to read seq")
	b.fail("seq", cause)
	err := recv(t, errc, "Run to return after the subscription failed")
	if !errors.Is(err, cause) {
		t.Fatalf("Run = %v, want it to wrap the adapter's failure %q", err, cause)
	}
	if !strings.Contains(err.Error(), `"alpha"`) {
		t.Errorf("Run = %q, want it to name the group", err)
	}
}

// TestDeadSubscriptionEndsRun: when the broker adapter closes one
// subscription's channel while the service runs, Run does not go on
// silently: it shuts the other subscriptions down gracefully (their
// in-flight handler finishes with a live context and is acked) and returns
// an error naming the dead subscription's group and topic.
func TestDeadSubscriptionEndsRun(t *testing.T) {
	b := newFakeBroker(t)
	logger, logs := newLogCapture("a subscription died")
	svc := service.New(b, service.WithLogger(logger))
	if err := service.Handle(svc, "alpha", func(context.Context, seqEvent) error { return nil },
		service.Group("alpha")); err != nil {
		t.Fatal(err)
	}
	started, release := make(chan struct{}), make(chan struct{})
	betaCtxErr := make(chan error, 1)
	if err := service.Handle(svc, "beta", func(ctx context.Context, _ orderPlaced) error {
		close(started)
		<-release
		betaCtxErr <- ctx.Err()
		return nil
	}, service.Group("beta")); err != nil {
		t.Fatal(err)
	}
	errc := runAsync(t, svc)
	if err := svc.Publish(context.Background(), orderPlaced{OrderID: "o-1"}, service.WithID("evt-beta")); err != nil {
		t.Fatal(err)
	}
	recv(t, started, "beta's handler to start")

	b.end("seq") // alpha's connection dies
	recv(t, logs.seen("a subscription died"), "Run to notice the dead subscription")
	select {
	case err := <-errc:
		t.Fatalf("Run returned (%v) while beta's handler was still in flight: not a graceful shutdown", err)
	default:
	}
	close(release)

	err := recv(t, errc, "Run to return after a subscription died")
	if err == nil {
		t.Fatal("Run = nil after a subscription died")
	}
	for _, want := range []string{`"alpha"`, `"seq"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Run = %q, want it to name %s", err, want)
		}
	}
	if errors.Is(err, service.ErrShutdownTimeout) {
		t.Errorf("Run = %v: the other handlers finished in time", err)
	}
	if err := recv(t, betaCtxErr, "beta's handler to finish"); err != nil {
		t.Errorf("beta's handler context was cancelled (%v): the others must be shut down gracefully", err)
	}
	if !b.topicClosed("orders") {
		t.Error("beta's subscription is still open after Run returned")
	}
	waitFor(t, "beta's message acked", func() bool {
		acks, _ := b.settledIDs()
		return slices.Contains(acks, "evt-beta")
	})
}

// TestShutdownTimeoutBoundsRun: a handler that ignores its context cannot
// keep Run from returning for longer than the shutdown timeout plus the
// short grace after its context is cancelled; Run then reports it by name.
func TestShutdownTimeoutBoundsRun(t *testing.T) {
	b := newFakeBroker(t)
	const timeout = 50 * time.Millisecond
	svc := service.New(b, service.WithShutdownTimeout(timeout))
	started := make(chan struct{}, 1)
	stuck, returned := make(chan struct{}), make(chan struct{})
	if err := service.Handle(svc, "stubborn", func(context.Context, seqEvent) error {
		started <- struct{}{}
		<-stuck // ignores its context
		close(returned)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Registered before start's cleanup, so it runs after Run has returned:
	// release the handler and wait for it, so no goroutine outlives the test.
	t.Cleanup(func() {
		close(stuck)
		recv(t, returned, "the stuck handler to return once released")
	})
	stop := start(t, svc)
	if err := svc.Publish(context.Background(), seqEvent{Key: "k"}); err != nil {
		t.Fatal(err)
	}
	recv(t, started, "the handler to start")

	begin := time.Now()
	err := stop()
	elapsed := time.Since(begin)
	if !errors.Is(err, service.ErrShutdownTimeout) {
		t.Errorf("Run = %v, want ErrShutdownTimeout", err)
	}
	if err == nil || !strings.Contains(err.Error(), "stubborn") {
		t.Errorf("Run = %v, want it to name the stuck handler", err)
	}
	if bound := timeout + service.CancelGrace + time.Second; elapsed < timeout || elapsed > bound {
		t.Errorf("Run returned %s after its context was cancelled, want between the shutdown timeout %s and %s",
			elapsed, timeout, bound)
	}
}

// TestFailedRunCanBeRetried: a Run that fails before it subscribed
// everything leaves Ready open and the service reusable; the next Run
// succeeds and closes the Ready channel callers already hold.
func TestFailedRunCanBeRetried(t *testing.T) {
	b := newFakeBroker(t)
	var refuse atomic.Bool
	refuse.Store(true)
	b.subscribeErr = func() error {
		if refuse.Load() {
			return errFake
		}
		return nil
	}
	svc := service.New(b)
	handled := make(chan string, 1)
	if err := service.Handle(svc, "proj", func(_ context.Context, e seqEvent) error {
		handled <- e.Key
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ready := svc.Ready()
	if err := svc.Run(context.Background()); !errors.Is(err, errFake) {
		t.Fatalf("Run = %v, want the broker's subscriber error", err)
	}
	select {
	case <-ready:
		t.Fatal("Ready closed by a Run that failed: callers would publish to a service that is not consuming")
	default:
	}

	refuse.Store(false)
	start(t, svc) // fails the test unless this Run gets ready
	select {
	case <-ready:
	default:
		t.Error("the Ready channel taken before the failed Run was not closed by the Run that succeeded")
	}
	if err := svc.Publish(context.Background(), seqEvent{Key: "k"}); err != nil {
		t.Fatal(err)
	}
	if k := recv(t, handled, "a message handled by the second Run"); k != "k" {
		t.Errorf("handled %q", k)
	}
}

// TestQueuedMessagesAreNackedAtShutdown: messages the dispatcher holds but
// has not started when shutdown begins go back to the broker (nacked); none
// of them is started later, in particular not after the shutdown timeout
// with a cancelled context, and none is acked.
func TestQueuedMessagesAreNackedAtShutdown(t *testing.T) {
	b := newFakeBroker(t)
	svc := service.New(b, service.WithShutdownTimeout(50*time.Millisecond))
	var calls atomic.Int32
	first := make(chan struct{})
	late := make(chan string, 100)
	if err := service.Handle(svc, "proj", func(ctx context.Context, e seqEvent) error {
		if calls.Add(1) == 1 {
			close(first)
			<-ctx.Done() // in flight until the shutdown timeout cancels it
			return ctx.Err()
		}
		late <- fmt.Sprintf("%s#%d (context error: %v)", e.Key, e.Seq, ctx.Err())
		return nil
	}, service.Concurrency(1)); err != nil {
		t.Fatal(err)
	}
	stop := start(t, svc)
	publishSeq(t, svc, []string{"a", "b", "c"}, 3) // a#0 in flight; the rest queued, some behind it
	recv(t, first, "the first message to start")
	waitFor(t, "every message taken from the broker", func() bool { return b.unread("seq") == 0 })

	if err := stop(); err != nil {
		t.Errorf("Run = %v", err)
	}
	close(late)
	for m := range late {
		t.Errorf("queued message %s was started after shutdown began", m)
	}
	var want []string
	for _, m := range b.publishedTo("seq") {
		want = append(want, m.UUID)
	}
	waitFor(t, "every message nacked", func() bool {
		_, nacks := b.settledIDs()
		for _, id := range want {
			if !slices.Contains(nacks, id) {
				return false
			}
		}
		return true
	})
	if acks, _ := b.settledIDs(); len(acks) != 0 {
		t.Errorf("acked %v at shutdown, want every message nacked", acks)
	}
}
