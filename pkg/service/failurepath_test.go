package service_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/retry"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// delayBroker is the memory broker with a Delay that records every call
// and that fail, when set, can make fail (n is 1 for the first call).
type delayBroker struct {
	*memory.Broker
	fail func(n int) error

	mu    sync.Mutex
	calls []delayCall
}

type delayCall struct {
	topic, group string
	wait         time.Duration
	attempt      string // the message's sy_attempt header
}

func (b *delayBroker) Delay(ctx context.Context, topic, group string, msg *message.Message, wait time.Duration) error {
	b.mu.Lock()
	b.calls = append(b.calls, delayCall{topic, group, wait, msg.Metadata.Get(header.Attempt)})
	n := len(b.calls)
	b.mu.Unlock()
	if b.fail != nil {
		if err := b.fail(n); err != nil {
			return err
		}
	}
	return b.Broker.Delay(ctx, topic, group, msg, wait)
}

func (b *delayBroker) delays() []delayCall {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]delayCall(nil), b.calls...)
}

// countingClock returns from Sleep at once and counts the calls: a test
// that wants every wait spent by the broker expects none.
type countingClock struct{ sleeps atomic.Int64 }

func (c *countingClock) Now() time.Time { return time.Now() }
func (c *countingClock) Sleep(ctx context.Context, _ time.Duration) error {
	c.sleeps.Add(1)
	return ctx.Err()
}

// TestFailedHandBackIsNackedNotDeadLettered: when the broker refuses a
// delayed retry, the message was neither handed back nor given up on: it
// is nacked, redelivered and eventually handled. It must not be
// dead-lettered as retries_exhausted after one attempt.
func TestFailedHandBackIsNackedNotDeadLettered(t *testing.T) {
	db := &delayBroker{Broker: newBroker(t), fail: func(n int) error {
		if n == 1 {
			return errFake
		}
		return nil
	}}
	svc := service.New(db)
	var mu sync.Mutex
	var attempts []int
	done := make(chan struct{})
	if err := service.Handle(svc, "charge", func(ctx context.Context, _ orderPlaced) error {
		mu.Lock()
		defer mu.Unlock()
		attempts = append(attempts, middleware.DeliveryFrom(ctx).Attempt)
		if len(attempts) < 3 {
			return errors.New("payment provider unavailable")
		}
		close(done)
		return nil
	}, service.Group("billing"), service.WithPolicy(service.Policy{
		MaxInProcessWait: time.Nanosecond, // every wait goes through the broker
		Retry:            retry.Policy{MaxAttempts: 3, InitialInterval: time.Millisecond, MaxInterval: 2 * time.Millisecond},
	})); err != nil {
		t.Fatal(err)
	}
	dead := probe(t, db.Broker, "ops", "billing.dead_letter")
	stop := start(t, svc)
	if err := svc.Publish(context.Background(), orderPlaced{OrderID: "o-1"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case m := <-dead:
		t.Fatalf("dead-lettered (reason %s, attempts %s) after the broker refused a delayed retry; want it nacked and redelivered",
			m.Metadata.Get(header.DeadLetterReason), m.Metadata.Get(header.DeadLetterAttempts))
	case <-time.After(guard):
		t.Fatal("the message was never handled")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	// 1: refused hand-back, nacked; 1 again: the redelivery, handed back;
	// 2: the delayed retry, handled.
	if !slices.Equal(attempts, []int{1, 1, 2}) {
		t.Errorf("attempts = %v, want [1 1 2]", attempts)
	}
	if n := len(db.delays()); n != 2 {
		t.Errorf("Delay called %d times, want 2", n)
	}
	if s := svc.Stats(); s.Nacked != 1 || s.DeadLettered != 0 || s.Handled != 1 {
		t.Errorf("stats = %+v, want one nack, one handled, no dead letter", s)
	}
}

// TestUndeclaredPublishDeadLettersAtOnce: publishing a type the handler did
// not declare is a programming error; retrying cannot fix it. Returned from
// the handler, it is dead-lettered on the first attempt with its own reason.
func TestUndeclaredPublishDeadLettersAtOnce(t *testing.T) {
	b := newBroker(t)
	svc := service.New(b, service.WithClock(immediateClock{}))
	var calls atomic.Int32
	if err := service.Handle(svc, "reserve", func(ctx context.Context, e orderPlaced) error {
		calls.Add(1)
		return svc.Publish(ctx, stockReserved{OrderID: e.OrderID}) // not declared
	}, service.Group("inventory")); err != nil {
		t.Fatal(err)
	}
	dead := probe(t, b, "ops", "inventory.dead_letter")
	stop := start(t, svc)
	if err := svc.Publish(context.Background(), orderPlaced{OrderID: "o-1"}); err != nil {
		t.Fatal(err)
	}
	md := recv(t, dead, "the dead letter").Metadata
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if r, a := md.Get(header.DeadLetterReason), md.Get(header.DeadLetterAttempts); r != string(failure.ReasonUndeclaredPublish) || a != "1" {
		t.Errorf("dead letter: reason %q after %s attempts, want undeclared_publish after 1", r, a)
	}
	if !strings.Contains(md.Get(header.DeadLetterError), "inventory.stock_reserved") {
		t.Errorf("dead-letter error %q does not name the undeclared type", md.Get(header.DeadLetterError))
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("handler ran %d times, want 1 (no retry)", n)
	}
	if s := svc.Stats(); s.Retried != 0 || s.DeadLettered != 1 {
		t.Errorf("stats = %+v", s)
	}
}

// TestBrokerDelayedRetryContinuesAttempts: with order_on_retry release and
// waits above max_in_process_wait, each retry is handed to the broker's
// Delayer (nothing is slept in the consumer), and the attempt count goes on
// across the hand-backs, so max_attempts still bounds the retries.
func TestBrokerDelayedRetryContinuesAttempts(t *testing.T) {
	db := &delayBroker{Broker: newBroker(t)}
	clock := &countingClock{}
	svc := service.New(db, service.WithClock(clock))
	attempts := make(chan int, 10)
	if err := service.Handle(svc, "charge", func(ctx context.Context, _ orderPlaced) error {
		n := middleware.DeliveryFrom(ctx).Attempt
		attempts <- n
		if n < 3 {
			return errors.New("payment provider unavailable")
		}
		return nil
	}, service.Group("billing"), service.WithPolicy(service.Policy{
		OrderOnRetry:     service.OrderRelease,
		MaxInProcessWait: 10 * time.Millisecond,
		Retry:            retry.Policy{MaxAttempts: 5, InitialInterval: 20 * time.Millisecond, MaxInterval: 40 * time.Millisecond, Jitter: retry.NoJitter},
	})); err != nil {
		t.Fatal(err)
	}
	stop := start(t, svc)
	if err := svc.Publish(context.Background(), orderPlaced{OrderID: "o-1"}); err != nil {
		t.Fatal(err)
	}
	var got []int
	for range 3 {
		got = append(got, recv(t, attempts, "an attempt"))
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []int{1, 2, 3}) {
		t.Errorf("attempts = %v, want [1 2 3] counted across the hand-backs", got)
	}
	want := []delayCall{
		{topic: "orders", group: "billing", wait: 20 * time.Millisecond, attempt: "1"},
		{topic: "orders", group: "billing", wait: 40 * time.Millisecond, attempt: "2"},
	}
	if d := db.delays(); !slices.Equal(d, want) {
		t.Errorf("Delay calls = %+v, want %+v", d, want)
	}
	if n := clock.sleeps.Load(); n != 0 {
		t.Errorf("slept %d times in the consumer, want every wait handed to the broker", n)
	}
	if s := svc.Stats(); s.Retried != 2 || s.DeadLettered != 0 || s.Nacked != 0 {
		t.Errorf("stats = %+v", s)
	}
}

// signalClock's Sleep reports each call on slept and sleeps a millisecond
// at most, so a delivery waiting on it polls without spinning.
type signalClock struct{ slept atomic.Int64 }

func (c *signalClock) Now() time.Time { return time.Now() }
func (c *signalClock) Sleep(ctx context.Context, d time.Duration) error {
	c.slept.Add(1)
	return middleware.SystemClock{}.Sleep(ctx, min(d, time.Millisecond))
}

// TestIdempotencyBusyKeyFollowsOrderOnRetry: a message whose idempotency
// key another instance holds waits. Under order_on_retry keep it waits in
// place, however long (a hand-back would let later messages of its key
// overtake it); under release it is handed back to the broker once the
// wait exceeds max_in_process_wait. Either way it runs once the key is free.
func TestIdempotencyBusyKeyFollowsOrderOnRetry(t *testing.T) {
	for _, order := range []string{service.OrderKeep, service.OrderRelease} {
		t.Run(order, func(t *testing.T) {
			db := &delayBroker{Broker: newBroker(t)}
			store := newIdempotencyStore(t)
			const key = "inventory/evt-1" // the default key: group and message id
			other, err := store.Claim(context.Background(), key, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			clock := &signalClock{}
			svc := service.New(db, service.WithClock(clock), service.WithIdempotency(store))
			handled := make(chan struct{}, 10)
			if err := service.Handle(svc, "reserve", func(context.Context, orderPlaced) error {
				handled <- struct{}{}
				return nil
			}, service.Group("inventory"), service.WithPolicy(service.Policy{
				OrderOnRetry:     order,
				MaxInProcessWait: 10 * time.Millisecond,
			})); err != nil {
				t.Fatal(err)
			}
			stop := start(t, svc)
			if err := svc.Publish(context.Background(), orderPlaced{OrderID: "o-1"}, service.WithID("evt-1")); err != nil {
				t.Fatal(err)
			}
			if order == service.OrderKeep {
				// Several waits of about 100ms each would have been handed
				// back long ago under release.
				waitFor(t, "the delivery to wait on the busy key", func() bool {
					return clock.slept.Load() >= 3 || len(db.delays()) > 0
				})
				if d := db.delays(); len(d) != 0 {
					t.Fatalf("handed back to the broker %d times under order_on_retry keep", len(d))
				}
			} else {
				waitFor(t, "the delivery to be handed back", func() bool { return len(db.delays()) > 0 })
				if d := db.delays()[0]; d.group != "inventory" || d.topic != "orders" {
					t.Errorf("handed back to %+v, want group inventory on orders", d)
				}
			}
			select {
			case <-handled:
				t.Fatal("the handler ran while another instance held the key")
			default:
			}
			if err := store.Release(context.Background(), key, other.Token); err != nil {
				t.Fatal(err)
			}
			recv(t, handled, "the handler once the key is free")
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			if n := len(handled); n != 0 {
				t.Errorf("handler ran %d more times", n)
			}
			if order == service.OrderKeep && len(db.delays()) != 0 {
				t.Errorf("handed back %d times under order_on_retry keep", len(db.delays()))
			}
			if s := svc.Stats(); s.Handled != 1 || s.Nacked != 0 || s.DeadLettered != 0 {
				t.Errorf("stats = %+v", s)
			}
		})
	}
}
