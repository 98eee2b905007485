package service_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/service"
)

func TestTraceContinuesAcrossPublish(t *testing.T) {
	b := newBroker(t)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	svc := service.New(b, service.WithTracerProvider(tp))
	if err := service.Handle(svc, "reserve", func(ctx context.Context, e orderPlaced) error {
		return svc.Publish(ctx, stockReserved{OrderID: e.OrderID})
	}, service.Group("inventory"), service.Publishes(stockReserved{})); err != nil {
		t.Fatal(err)
	}
	got := make(chan message.Metadata, 1)
	if err := service.Handle(svc, "notify", func(ctx context.Context, _ stockReserved) error {
		got <- middleware.DeliveryFrom(ctx).Msg.Metadata
		return nil
	}, service.Group("notifications")); err != nil {
		t.Fatal(err)
	}
	stop := start(t, svc)
	if err := svc.Publish(context.Background(), orderPlaced{OrderID: "o-1"}); err != nil {
		t.Fatal(err)
	}
	md := recv(t, got, "the follow-up")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if md.Get(header.TraceParent) == "" {
		t.Fatal("the follow-up event carries no trace context")
	}
	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("spans = %d, want one per handled message", len(spans))
	}
	var reserve, notify sdktrace.ReadOnlySpan
	for _, s := range spans {
		switch s.Name() {
		case "process orders":
			reserve = s
		case "process inventory.stock_reserved":
			notify = s
		}
	}
	if reserve == nil || notify == nil {
		t.Fatalf("span names: %q, %q", spans[0].Name(), spans[1].Name())
	}
	if notify.Parent().SpanID() != reserve.SpanContext().SpanID() || notify.SpanContext().TraceID() != reserve.SpanContext().TraceID() {
		t.Errorf("the second handler's span is not a child of the first's")
	}
	if notify.SpanKind() != trace.SpanKindConsumer {
		t.Errorf("kind = %v", notify.SpanKind())
	}
}

func spanAttrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

// TestSpansTellFailureFromSuccess: a dead-lettered delivery is acked, but
// it failed, and its span says so (error status and the reason); a delivery
// that succeeded after a retry has a successful span with its attempts and
// the messaging attributes that tracing backends index.
func TestSpansTellFailureFromSuccess(t *testing.T) {
	b := newBroker(t)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	svc := service.New(b, service.WithTracerProvider(tp), service.WithClock(immediateClock{}))
	var flaked atomic.Bool
	handled := make(chan struct{})
	if err := service.Handle(svc, "charge", func(_ context.Context, e orderPlaced) error {
		switch {
		case e.OrderID == "bad":
			return failure.Permanent(errors.New("negative total"))
		case flaked.CompareAndSwap(false, true):
			return errors.New("payment provider unavailable")
		}
		close(handled)
		return nil
	}, service.Group("billing")); err != nil {
		t.Fatal(err)
	}
	dead := probe(t, b, "ops", "billing.dead_letter")
	stop := start(t, svc)
	for id, order := range map[string]string{"evt-bad": "bad", "evt-ok": "ok"} {
		if err := svc.Publish(context.Background(), orderPlaced{OrderID: order}, service.WithID(id)); err != nil {
			t.Fatal(err)
		}
	}
	recv(t, dead, "the dead letter")
	recv(t, handled, "the successful retry")
	if err := stop(); err != nil { // every span has ended
		t.Fatal(err)
	}
	spans := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		spans[spanAttrs(s)["messaging.message.id"].AsString()] = s
	}
	bad, ok := spans["evt-bad"]
	if !ok {
		t.Fatalf("no span for the dead-lettered delivery; spans by message id: %v", spans)
	}
	if bad.Status().Code != codes.Error {
		t.Errorf("dead-lettered delivery's span status = %v, want Error", bad.Status())
	}
	if r := spanAttrs(bad)[middleware.AttrDeadLetterReason].AsString(); r != string(failure.ReasonPermanent) {
		t.Errorf("dead-lettered delivery's span %s = %q, want permanent", middleware.AttrDeadLetterReason, r)
	}
	good, ok := spans["evt-ok"]
	if !ok {
		t.Fatalf("no span for the successful delivery; spans by message id: %v", spans)
	}
	if good.Status().Code == codes.Error {
		t.Errorf("successful delivery's span status = %v", good.Status())
	}
	attrs := spanAttrs(good)
	if n := attrs[middleware.AttrAttempts].AsInt64(); n != 2 {
		t.Errorf("span %s = %d, want 2", middleware.AttrAttempts, n)
	}
	for k, want := range map[attribute.Key]string{
		"messaging.destination.name":    "orders",
		"messaging.consumer.group.name": "billing",
		"messaging.message.id":          "evt-ok",
	} {
		if got := attrs[k].AsString(); got != want {
			t.Errorf("span %s = %q, want %q", k, got, want)
		}
	}
	if _, ok := attrs[middleware.AttrDeadLetterReason]; ok {
		t.Errorf("successful delivery's span has %s", middleware.AttrDeadLetterReason)
	}
}
