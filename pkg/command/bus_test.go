package command_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pkg/command"
	"github.com/switchyard-go/switchyard/pkg/eventstore"
	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/retry"
	"github.com/switchyard-go/switchyard/pkg/service"
)

func TestSecondHandlerForACommandIsRefused(t *testing.T) {
	svc := newService(t)
	bus := newBus(t, svc)
	repo := newRepo(t, eventstore.NewMemory(eventstore.Encoder{}))
	if err := command.Handle(bus, "carts.add", command.OnAggregate(repo, decideAdd)); err != nil {
		t.Fatal(err)
	}
	err := command.Handle(bus, "carts.add_again", command.OnAggregate(repo, decideAdd))
	if !errors.Is(err, command.ErrDuplicateHandler) {
		t.Fatalf("second handler: %v, want ErrDuplicateHandler", err)
	}
	if !strings.Contains(err.Error(), `"carts.add"`) || !strings.Contains(err.Error(), "test.add_item") {
		t.Errorf("error %q should name the command type and the handler it has", err)
	}
	// Not even in another group or under another name through the service.
	if len(svc.Handlers()) != 1 {
		t.Errorf("service has %d handlers, want 1", len(svc.Handlers()))
	}
	// A handler the service refuses leaves the type free.
	if err := command.Handle(bus, "carts.add", command.OnAggregate(repo, decidePay)); err == nil {
		t.Fatal("a handler name used twice was accepted")
	}
	if err := command.Handle(bus, "carts.pay", command.OnAggregate(repo, decidePay)); err != nil {
		t.Fatalf("pay after a refused registration: %v", err)
	}
}

func TestSendWithoutHandlerIsRefused(t *testing.T) {
	bus := newBus(t, newService(t))
	if _, err := bus.Send(context.Background(), payCart{CartID: "c"}); !errors.Is(err, command.ErrNoHandler) {
		t.Fatalf("send: %v, want ErrNoHandler", err)
	}
	if _, err := bus.Send(context.Background(), nil); err == nil {
		t.Fatal("nil command accepted")
	}
}

// TestSendAndWaitReturnsVersionAndKeepsTheChain: a command sent from HTTP
// code becomes events whose correlation is the caller's and whose
// causation is the command; the caller learns the new version.
func TestSendAndWaitReturnsVersionAndKeepsTheChain(t *testing.T) {
	svc := newService(t)
	bus := newBus(t, svc)
	store := eventstore.NewMemory(eventstore.Encoder{Source: "carts"})
	repo := newRepo(t, store)
	if err := command.Handle(bus, "carts.add", command.OnAggregate(repo, decideAdd)); err != nil {
		t.Fatal(err)
	}
	start(t, svc)
	ctx := middleware.WithCorrelationID(waitCtx(t), "request-1")
	for want := 1; want <= 3; want++ {
		res, err := bus.SendAndWait(ctx, addItem{CartID: "cart-1"})
		if err != nil {
			t.Fatal(err)
		}
		if res.Version != want || res.ID == "" {
			t.Fatalf("result %+v, want version %d and an id", res, want)
		}
		recs, err := store.Load(ctx, "cart-1")
		if err != nil {
			t.Fatal(err)
		}
		last := recs[len(recs)-1].Envelope
		if last.CorrelationID != "request-1" || last.CausationID != res.ID {
			t.Errorf("event correlation %q causation %q, want request-1 and the command id %q", last.CorrelationID, last.CausationID, res.ID)
		}
	}
}

// TestRejectionIsAnAnswerNotAFailure: a command that breaks a rule comes
// back to the sender as a rejection, is not retried and not dead-lettered.
func TestRejectionIsAnAnswerNotAFailure(t *testing.T) {
	svc := newService(t)
	bus := newBus(t, svc)
	repo := newRepo(t, eventstore.NewMemory(eventstore.Encoder{}))
	var attempts atomic.Int32
	pay := command.OnAggregate(repo, decidePay)
	err := command.Handle(bus, "carts.pay", func(ctx context.Context, c payCart) error {
		attempts.Add(1)
		return pay(ctx, c)
	})
	if err != nil {
		t.Fatal(err)
	}
	start(t, svc)
	_, err = bus.SendAndWait(waitCtx(t), payCart{CartID: "empty"})
	if !command.IsRejected(err) || !errors.Is(err, errEmpty) {
		t.Fatalf("paying an empty cart: %v, want a rejection wrapping errEmpty", err)
	}
	if n := attempts.Load(); n != 1 {
		t.Errorf("%d attempts, want 1: a rejection is not retried", n)
	}
	eventually(t, "the rejected command acked", func() bool { return svc.Stats().Handled == 1 })
	if s := svc.Stats(); s.DeadLettered != 0 || s.Retried != 0 {
		t.Errorf("stats %+v: a rejection was dead-lettered or retried", s)
	}
}

// TestSendFromAHandlerContinuesTheChain: a handler of an event sends a
// command; the events the command causes keep the event's correlation id
// and name the command as their cause, and the command names the event.
func TestSendFromAHandlerContinuesTheChain(t *testing.T) {
	svc := newService(t)
	bus := newBus(t, svc)
	store := eventstore.NewMemory(eventstore.Encoder{})
	repo := newRepo(t, store)
	var cmdCause atomic.Value
	add := command.OnAggregate(repo, decideAdd)
	err := command.Handle(bus, "carts.add", func(ctx context.Context, c addItem) error {
		cmdCause.Store(middleware.DeliveryFrom(ctx).Envelope.CausationID)
		return add(ctx, c)
	})
	if err != nil {
		t.Fatal(err)
	}
	err = service.Handle(svc, "carts.on_checkout", func(ctx context.Context, e checkedOut) error {
		_, err := bus.Send(ctx, addItem{CartID: e.CartID})
		return err
	}, service.Publishes(addItem{}))
	if err != nil {
		t.Fatal(err)
	}
	start(t, svc)
	ctx := middleware.WithCorrelationID(waitCtx(t), "checkout-7")
	if err := svc.Publish(ctx, checkedOut{CartID: "cart-7"}, service.WithID("event-7")); err != nil {
		t.Fatal(err)
	}
	var recs []eventstore.Record
	eventually(t, "the command's event", func() bool {
		recs, _ = store.Load(ctx, "cart-7")
		return len(recs) == 1
	})
	env := recs[0].Envelope
	if env.CorrelationID != "checkout-7" {
		t.Errorf("event correlation %q, want checkout-7", env.CorrelationID)
	}
	if cause, _ := cmdCause.Load().(string); cause != "event-7" {
		t.Errorf("command causation %q, want event-7 (the event whose handler sent it)", cause)
	}
	if env.CausationID == "" || env.CausationID == "event-7" || env.HopCount != 2 {
		t.Errorf("event causation %q hop %d, want the command's id and hop 2", env.CausationID, env.HopCount)
	}
}

// TestUndeclaredSendFromAHandlerFails: like Publish, Send from a handler
// checks the handler's declared flow.
func TestUndeclaredSendFromAHandlerFails(t *testing.T) {
	svc := newService(t)
	bus := newBus(t, svc)
	repo := newRepo(t, eventstore.NewMemory(eventstore.Encoder{}))
	if err := command.Handle(bus, "carts.add", command.OnAggregate(repo, decideAdd)); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	err := service.Handle(svc, "carts.on_checkout", func(ctx context.Context, e checkedOut) error {
		_, err := bus.Send(ctx, addItem{CartID: e.CartID})
		select {
		case got <- err:
		default:
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	start(t, svc)
	if err := svc.Publish(waitCtx(t), checkedOut{CartID: "c"}); err != nil {
		t.Fatal(err)
	}
	if err := <-got; !errors.Is(err, service.ErrUndeclaredPublish) {
		t.Fatalf("undeclared send: %v, want ErrUndeclaredPublish", err)
	}
}

// TestPermanentFailureIsReportedAndDeadLettered: a handler error that is
// not a rejection takes the failure path, and the waiting sender hears of
// it.
func TestPermanentFailureIsReportedAndDeadLettered(t *testing.T) {
	svc := newService(t)
	bus := newBus(t, svc)
	boom := errors.New("boom")
	if err := command.Handle(bus, "carts.pay", func(context.Context, payCart) error { return failure.Permanent(boom) }); err != nil {
		t.Fatal(err)
	}
	start(t, svc)
	_, err := bus.SendAndWait(waitCtx(t), payCart{CartID: "c"})
	if !errors.Is(err, boom) || command.IsRejected(err) {
		t.Fatalf("send: %v, want boom, not a rejection", err)
	}
	eventually(t, "the dead letter", func() bool { return svc.Stats().DeadLettered == 1 })
}

// TestGivingUpByTimeIsReported: a handler whose retries end by
// max_elapsed, not by attempts, still reports its failure to the sender.
func TestGivingUpByTimeIsReported(t *testing.T) {
	svc := newService(t)
	bus := newBus(t, svc)
	flaky := errors.New("downstream unavailable")
	err := command.Handle(bus, "carts.pay", func(context.Context, payCart) error { return flaky },
		service.Retry(retry.Policy{MaxAttempts: 1000, InitialInterval: 5 * time.Millisecond, MaxInterval: 5 * time.Millisecond, MaxElapsed: 50 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	start(t, svc)
	_, err = bus.SendAndWait(waitCtx(t), payCart{CartID: "c"})
	if !errors.Is(err, flaky) || errors.Is(err, command.ErrNoOutcome) {
		t.Fatalf("send: %v, want the handler's error once it gave up", err)
	}
	eventually(t, "the dead letter", func() bool { return svc.Stats().DeadLettered == 1 })
}
