package service_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/switchyard-go/switchyard/pkg/service"
)

// PublishAsync delivers like Publish and reports each publish once.
func TestPublishAsyncDeliversAndReportsOnce(t *testing.T) {
	b := newBroker(t)
	svc := service.New(b)
	got := make(chan orderPlaced, 100)
	if err := service.Handle(svc, "reserve", func(_ context.Context, e orderPlaced) error {
		got <- e
		return nil
	}, service.Group("inventory")); err != nil {
		t.Fatal(err)
	}
	start(t, svc)
	var (
		mu      sync.Mutex
		reports int
		errs    []error
	)
	for i := range 100 {
		svc.PublishAsync(context.Background(), orderPlaced{OrderID: string(rune('a' + i%26))}, func(err error) {
			mu.Lock()
			defer mu.Unlock()
			reports++
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	for range 100 {
		recv(t, got, "an event published with PublishAsync")
	}
	mu.Lock()
	defer mu.Unlock()
	if reports != 100 || len(errs) != 0 {
		t.Fatalf("%d reports, errors %v; want 100 reports, no error", reports, errs)
	}
}

// A refused publish is reported with the broker's error, and its producer
// span ends with an error status.
func TestPublishAsyncReportsRefusalAndEndsSpan(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	svc := service.New(refusingBroker{newBroker(t)}, service.WithTracerProvider(tp))
	var got []error
	svc.PublishAsync(context.Background(), orderPlaced{OrderID: "o-9"}, func(err error) { got = append(got, err) })
	if len(got) != 1 || !errors.Is(got[0], errFake) || !strings.Contains(got[0].Error(), "orders") {
		t.Fatalf("reports %v, want one: the broker's refusal naming the topic", got)
	}
	spans := rec.Ended()
	if len(spans) != 1 || spans[0].Status().Code != codes.Error {
		t.Fatalf("spans %v, want one producer span with an error status", spans)
	}
}
