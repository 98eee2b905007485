package service_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/retry"
	"github.com/switchyard-go/switchyard/pkg/service"
)

func TestTypedHandlerReceivesEvent(t *testing.T) {
	b := newBroker(t)
	svc := service.New(b)
	got := make(chan orderPlaced, 1)
	if err := service.Handle(svc, "reserve", func(_ context.Context, e orderPlaced) error {
		got <- e
		return nil
	}, service.Group("inventory")); err != nil {
		t.Fatal(err)
	}
	start(t, svc)
	if err := svc.Publish(context.Background(), orderPlaced{OrderID: "o-1"}); err != nil {
		t.Fatal(err)
	}
	if e := recv(t, got, "the event"); e != (orderPlaced{OrderID: "o-1"}) {
		t.Errorf("handler got %+v", e)
	}
}

func TestPublishFromHandlerContinuesChain(t *testing.T) {
	b := newBroker(t)
	svc := service.New(b, service.WithSource("inventory-service"))
	if err := service.Handle(svc, "reserve", func(ctx context.Context, e orderPlaced) error {
		return svc.Publish(ctx, stockReserved{OrderID: e.OrderID})
	}, service.Group("inventory"), service.Publishes(stockReserved{})); err != nil {
		t.Fatal(err)
	}
	type seen struct {
		e  stockReserved
		md message.Metadata
	}
	got := make(chan seen, 1)
	if err := service.Handle(svc, "notify", func(ctx context.Context, e stockReserved) error {
		got <- seen{e, middleware.DeliveryFrom(ctx).Msg.Metadata}
		return nil
	}, service.Group("notifications")); err != nil {
		t.Fatal(err)
	}
	start(t, svc)
	ctx := middleware.WithCorrelationID(context.Background(), "req-7")
	if err := svc.Publish(ctx, orderPlaced{OrderID: "o-1"}, service.WithID("evt-1")); err != nil {
		t.Fatal(err)
	}
	s := recv(t, got, "the follow-up event")
	if s.e.OrderID != "o-1" {
		t.Errorf("follow-up = %+v", s.e)
	}
	for k, want := range map[string]string{
		header.CorrelationID: "req-7",
		header.CausationID:   "evt-1",
		header.HopCount:      "1",
		header.Type:          "inventory.stock_reserved",
		header.Source:        "inventory-service",
		header.Key:           "",
	} {
		if got := s.md.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if id := s.md.Get(header.ID); id == "" || id == "evt-1" {
		t.Errorf("follow-up id = %q, want a new id", id)
	}
}

func TestUndeclaredPublish(t *testing.T) {
	b := newBroker(t)
	svc := service.New(b)
	errc := make(chan error, 1)
	if err := service.Handle(svc, "reserve", func(ctx context.Context, e orderPlaced) error {
		errc <- svc.Publish(ctx, stockReserved{OrderID: e.OrderID})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	start(t, svc)
	if err := svc.Publish(context.Background(), orderPlaced{OrderID: "o-1"}); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, errc, "the handler's publish"); !errors.Is(err, service.ErrUndeclaredPublish) {
		t.Errorf("publish of an undeclared type = %v, want ErrUndeclaredPublish", err)
	}
}

func TestTwoGroupsEachGetEveryEvent(t *testing.T) {
	b := newBroker(t)
	svc := service.New(b)
	got := map[string]chan string{"billing": make(chan string, 10), "shipping": make(chan string, 10)}
	for group, ch := range got {
		if err := service.Handle(svc, group+".on_placed", func(_ context.Context, e orderPlaced) error {
			ch <- e.OrderID
			return nil
		}, service.Group(group)); err != nil {
			t.Fatal(err)
		}
	}
	start(t, svc)
	want := []string{"o-1", "o-2", "o-3"}
	for _, id := range want {
		if err := svc.Publish(context.Background(), orderPlaced{OrderID: id}); err != nil {
			t.Fatal(err)
		}
	}
	for group, ch := range got {
		var ids []string
		for range want {
			ids = append(ids, recv(t, ch, group))
		}
		slices.Sort(ids)
		if !slices.Equal(ids, want) {
			t.Errorf("group %s got %v, want %v", group, ids, want)
		}
	}
}

func TestSameGroupDispatchByType(t *testing.T) {
	b := newBroker(t)
	svc := service.New(b)
	placed, cancelled := make(chan string, 10), make(chan string, 10)
	if err := service.Handle(svc, "on_placed", func(_ context.Context, e orderPlaced) error {
		placed <- e.OrderID
		return nil
	}, service.Group("projection")); err != nil {
		t.Fatal(err)
	}
	if err := service.Handle(svc, "on_cancelled", func(_ context.Context, e orderCancelled) error {
		cancelled <- e.OrderID
		return nil
	}, service.Group("projection")); err != nil {
		t.Fatal(err)
	}
	stop := start(t, svc)
	ctx := context.Background()
	if err := svc.Publish(ctx, orderPlaced{OrderID: "p-1"}); err != nil {
		t.Fatal(err)
	}
	if err := svc.Publish(ctx, orderCancelled{OrderID: "c-1"}); err != nil {
		t.Fatal(err)
	}
	if id := recv(t, placed, "placed"); id != "p-1" {
		t.Errorf("on_placed got %s", id)
	}
	if id := recv(t, cancelled, "cancelled"); id != "c-1" {
		t.Errorf("on_cancelled got %s", id)
	}
	if err := stop(); err != nil { // in-flight work and its accounting are done
		t.Fatal(err)
	}
	svcStats := svc.Stats()
	if svcStats.Handled != 2 || len(placed) != 0 || len(cancelled) != 0 {
		t.Errorf("handled %d, extra deliveries placed=%d cancelled=%d", svcStats.Handled, len(placed), len(cancelled))
	}
}

func TestUnknownTypeAndInvalidEnvelopeAreDeadLettered(t *testing.T) {
	b := newBroker(t)
	svc := service.New(b)
	got := make(chan string, 10)
	if err := service.Handle(svc, "reserve", func(_ context.Context, e orderPlaced) error {
		got <- e.OrderID
		return nil
	}, service.Group("inventory")); err != nil {
		t.Fatal(err)
	}
	dead := probe(t, b, "ops", service.DeadLetterTopicFor("inventory"))
	stop := start(t, svc)

	unknown := message.NewMessage("m-unknown", []byte(`{}`))
	unknown.Metadata.Set(header.Type, "orders.order_teleported")
	noType := message.NewMessage("m-invalid", []byte(`{}`))
	noType.Metadata.Set(header.ID, "m-invalid")
	if err := b.Publisher().Publish("orders", unknown, noType); err != nil {
		t.Fatal(err)
	}
	if err := svc.Publish(context.Background(), orderPlaced{OrderID: "o-after"}); err != nil {
		t.Fatal(err)
	}
	if id := recv(t, got, "the valid event after the bad ones"); id != "o-after" {
		t.Errorf("handler got %s", id)
	}
	reasons := map[string]string{}
	for range 2 {
		m := recv(t, dead, "a dead letter")
		reasons[m.UUID] = m.Metadata.Get(header.DeadLetterReason)
		if h := m.Metadata.Get(header.DeadLetterHandler); h != "inventory/dispatch" {
			t.Errorf("dead letter %s handler = %q", m.UUID, h)
		}
		if topic := m.Metadata.Get(header.DeadLetterTopic); topic != "orders" {
			t.Errorf("dead letter %s topic = %q", m.UUID, topic)
		}
	}
	if reasons["m-unknown"] != string(failure.ReasonUnknownType) || reasons["m-invalid"] != string(failure.ReasonInvalidEnvelope) {
		t.Errorf("dead-letter reasons = %v", reasons)
	}
	if err := stop(); err != nil { // in-flight work and its accounting are done
		t.Fatal(err)
	}
	if s := svc.Stats(); s.DeadLettered != 2 || s.Handled != 1 || s.Nacked != 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestPermanentErrorDeadLettersAtOnce(t *testing.T) {
	b := newBroker(t)
	svc := service.New(b, service.WithClock(immediateClock{}))
	calls := make(chan struct{}, 10)
	if err := service.Handle(svc, "charge", func(context.Context, orderPlaced) error {
		calls <- struct{}{}
		return failure.Permanent(errors.New("negative total"))
	}, service.Group("billing")); err != nil {
		t.Fatal(err)
	}
	dead := probe(t, b, "ops", "billing.dead_letter")
	stop := start(t, svc)
	if err := svc.Publish(context.Background(), orderPlaced{OrderID: "o-1"}); err != nil {
		t.Fatal(err)
	}
	m := recv(t, dead, "the dead letter")
	md := m.Metadata
	if md.Get(header.DeadLetterReason) != "permanent" || md.Get(header.DeadLetterAttempts) != "1" ||
		md.Get(header.DeadLetterHandler) != "charge" || md.Get(header.DeadLetterGroup) != "billing" {
		t.Errorf("dead-letter metadata = %v", md)
	}
	if string(m.Payload) != `{"order_id":"o-1"}` {
		t.Errorf("payload = %s", m.Payload)
	}
	if n := len(calls); n != 1 {
		t.Errorf("handler called %d times, want 1", n)
	}
	if err := stop(); err != nil { // in-flight work and its accounting are done
		t.Fatal(err)
	}
	if s := svc.Stats(); s.Retried != 0 || s.DeadLettered != 1 || s.Published != 1 {
		t.Errorf("stats = %+v", s)
	}
}

func TestTransientErrorRetriedThenDeadLettered(t *testing.T) {
	b := newBroker(t)
	svc := service.New(b, service.WithClock(immediateClock{}))
	calls := make(chan int, 10)
	if err := service.Handle(svc, "charge", func(ctx context.Context, _ orderPlaced) error {
		calls <- middleware.DeliveryFrom(ctx).Attempt
		return errors.New("payment provider unavailable")
	}, service.Group("billing"), service.Retry(retry.Policy{MaxAttempts: 3})); err != nil {
		t.Fatal(err)
	}
	dead := probe(t, b, "ops", "billing.dead_letter")
	stop := start(t, svc)
	if err := svc.Publish(context.Background(), orderPlaced{OrderID: "o-1"}); err != nil {
		t.Fatal(err)
	}
	md := recv(t, dead, "the dead letter").Metadata
	if md.Get(header.DeadLetterReason) != "retries_exhausted" || md.Get(header.DeadLetterAttempts) != "3" {
		t.Errorf("reason %q attempts %q", md.Get(header.DeadLetterReason), md.Get(header.DeadLetterAttempts))
	}
	var attempts []int
	for range 3 {
		attempts = append(attempts, recv(t, calls, "an attempt"))
	}
	if !slices.Equal(attempts, []int{1, 2, 3}) {
		t.Errorf("attempts = %v", attempts)
	}
	if err := stop(); err != nil { // in-flight work and its accounting are done
		t.Fatal(err)
	}
	if s := svc.Stats(); s.Retried != 2 || s.DeadLettered != 1 || s.Handled != 0 || s.Nacked != 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestRegistrationErrors(t *testing.T) {
	b := newBroker(t)
	svc := service.New(b)
	noop := func(context.Context, orderPlaced) error { return nil }
	if err := service.Handle(svc, "", noop); err == nil {
		t.Error("empty name accepted")
	}
	if err := service.Handle(svc, "a", noop, service.Group("g")); err != nil {
		t.Fatal(err)
	}
	if err := service.Handle(svc, "a", noop, service.Group("other")); err == nil {
		t.Error("duplicate name accepted")
	}
	if err := service.Handle(svc, "b", noop, service.Group("g")); err == nil {
		t.Error("two handlers of one type in one group accepted")
	}
	if err := service.Handle(svc, "c", noop, service.Concurrency(-1), service.Retry(retry.Policy{MaxAttempts: -2})); err == nil {
		t.Error("invalid policy accepted")
	}
	if p, ok := svc.PolicyOf("a"); !ok || p.Group != "g" || p.DeadLetterTopic != "g.dead_letter" || p.Concurrency != service.DefaultConcurrency {
		t.Errorf("PolicyOf(a) = %+v, %v", p, ok)
	}
	start(t, svc)
	if err := svc.Run(context.Background()); !errors.Is(err, service.ErrAlreadyRunning) {
		t.Errorf("second Run = %v", err)
	}
	if err := service.Handle(svc, "late", func(context.Context, orderCancelled) error { return nil }); !errors.Is(err, service.ErrAlreadyRunning) {
		t.Errorf("Handle after Run = %v", err)
	}
	if got := svc.Handlers(); len(got) != 1 || got[0].Name != "a" {
		t.Errorf("Handlers = %+v", got)
	}
}

func TestRunWithoutHandlers(t *testing.T) {
	if err := service.New(newBroker(t)).Run(context.Background()); !errors.Is(err, service.ErrNothingToRun) {
		t.Errorf("Run without handlers or companions = %v, want ErrNothingToRun", err)
	}
}
