package service_test

import (
	"context"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

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
		case "orders process":
			reserve = s
		case "inventory.stock_reserved process":
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
