package service_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/retry"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// TestTraceChainAcrossPublishAndHandle: publish → handle → publish →
// handle on the memory broker is one trace of four spans, each the child of
// the one before: a producer span per publish (the traceparent the message
// carries is its context) and a consumer span per delivery, with the
// messaging attributes' values.
func TestTraceChainAcrossPublishAndHandle(t *testing.T) {
	b := newBroker(t)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	svc := service.New(b, service.WithTracerProvider(tp))
	if err := service.Handle(svc, "reserve", func(ctx context.Context, e orderPlaced) error {
		return svc.Publish(ctx, stockReserved{OrderID: e.OrderID}, service.WithID("evt-2"), service.WithKey("o-1"))
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
	ctx := middleware.WithCorrelationID(context.Background(), "corr-1")
	if err := svc.Publish(ctx, orderPlaced{OrderID: "o-1"}, service.WithID("evt-1")); err != nil {
		t.Fatal(err)
	}
	md := recv(t, got, "the follow-up")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		if _, dup := byName[s.Name()]; dup {
			t.Fatalf("two spans named %q", s.Name())
		}
		byName[s.Name()] = s
	}
	chain := []struct {
		name string
		kind trace.SpanKind
		want map[attribute.Key]any
	}{
		{"send orders", trace.SpanKindProducer, map[attribute.Key]any{
			"messaging.system":                  "memory",
			"messaging.operation.type":          "send",
			"messaging.operation.name":          "send",
			"messaging.destination.name":        "orders",
			"messaging.message.id":              "evt-1",
			"messaging.message.conversation_id": "corr-1",
			middleware.AttrPartitionKey:         "o-1",
			middleware.AttrEventType:            "orders.order_placed",
		}},
		{"process orders", trace.SpanKindConsumer, map[attribute.Key]any{
			"messaging.system":                  "memory",
			"messaging.operation.type":          "process",
			"messaging.operation.name":          "process",
			"messaging.destination.name":        "orders",
			"messaging.consumer.group.name":     "inventory",
			"messaging.message.id":              "evt-1",
			"messaging.message.conversation_id": "corr-1",
			middleware.AttrHandler:              "reserve",
			middleware.AttrEventType:            "orders.order_placed",
			middleware.AttrAttempts:             int64(1),
		}},
		{"send inventory.stock_reserved", trace.SpanKindProducer, map[attribute.Key]any{
			"messaging.system":                  "memory",
			"messaging.operation.type":          "send",
			"messaging.destination.name":        "inventory.stock_reserved",
			"messaging.message.id":              "evt-2",
			"messaging.message.conversation_id": "corr-1",
			middleware.AttrPartitionKey:         "o-1",
		}},
		{"process inventory.stock_reserved", trace.SpanKindConsumer, map[attribute.Key]any{
			"messaging.destination.name":        "inventory.stock_reserved",
			"messaging.consumer.group.name":     "notifications",
			"messaging.message.id":              "evt-2",
			"messaging.message.conversation_id": "corr-1",
		}},
	}
	var parent sdktrace.ReadOnlySpan
	for _, c := range chain {
		s, ok := byName[c.name]
		if !ok {
			t.Fatalf("no span %q; spans: %v", c.name, keys(byName))
		}
		if s.SpanKind() != c.kind {
			t.Errorf("%s: kind = %v, want %v", c.name, s.SpanKind(), c.kind)
		}
		if parent == nil {
			if s.Parent().IsValid() {
				t.Errorf("%s: has a parent, want a root span", c.name)
			}
		} else if s.Parent().SpanID() != parent.SpanContext().SpanID() || s.SpanContext().TraceID() != parent.SpanContext().TraceID() {
			t.Errorf("%s: parent = %s, want %q (%s)", c.name, s.Parent().SpanID(), parent.Name(), parent.SpanContext().SpanID())
		}
		if s.Status().Code == codes.Error {
			t.Errorf("%s: status = %v", c.name, s.Status())
		}
		attrs := spanAttrs(s)
		for k, want := range c.want {
			if got := attrs[k].AsInterface(); got != want {
				t.Errorf("%s: %s = %v (%T), want %v", c.name, k, got, got, want)
			}
		}
		parent = s
	}
	// The follow-up carries the context of the span that sent it.
	send := byName["send inventory.stock_reserved"].SpanContext()
	want := "00-" + send.TraceID().String() + "-" + send.SpanID().String() + "-01"
	if tp := md.Get(header.TraceParent); tp != want {
		t.Errorf("the follow-up's %s = %q, want the producer span's %q", header.TraceParent, tp, want)
	}
}

// TestPublishSpanErrors: a publish the broker refuses ends its producer
// span with an error status; a Kafka broker's key is
// messaging.kafka.message.key.
func TestPublishSpanErrors(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	svc := service.New(refusingBroker{newBroker(t)}, service.WithTracerProvider(tp))
	if err := svc.Publish(context.Background(), orderPlaced{OrderID: "o-9"}, service.WithID("evt-9")); !errors.Is(err, errFake) {
		t.Fatalf("Publish = %v, want the broker's refusal", err)
	}
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("spans = %d, want the producer span", len(spans))
	}
	s := spans[0]
	if s.Name() != "send orders" || s.SpanKind() != trace.SpanKindProducer {
		t.Errorf("span = %q, %v", s.Name(), s.SpanKind())
	}
	if s.Status().Code != codes.Error || !strings.Contains(s.Status().Description, errFake.Error()) {
		t.Errorf("status = %+v, want Error with the broker's refusal", s.Status())
	}
	attrs := spanAttrs(s)
	for k, want := range map[attribute.Key]string{
		"messaging.system":            "kafka",
		"messaging.kafka.message.key": "o-9",
		"messaging.message.id":        "evt-9",
	} {
		if got := attrs[k].AsString(); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if _, ok := attrs[middleware.AttrPartitionKey]; ok {
		t.Errorf("a Kafka span has %s too", middleware.AttrPartitionKey)
	}
}

// refusingBroker is the memory broker named kafka, whose publisher refuses
// every message.
type refusingBroker struct{ *memory.Broker }

func (refusingBroker) Name() string                 { return "kafka" }
func (refusingBroker) Publisher() message.Publisher { return refusingPublisher{} }

type refusingPublisher struct{}

func (refusingPublisher) Publish(string, ...*message.Message) error { return errFake }
func (refusingPublisher) Close() error                              { return nil }

// TestNackedDeliverySpanIsAnError: a delivery whose stack returns an error
// (here: the broker refused the delayed retry, so it is nacked) ends its
// span with an error status that says it was nacked and why.
func TestNackedDeliverySpanIsAnError(t *testing.T) {
	db := &delayBroker{Broker: newBroker(t), fail: func(n int) error {
		if n == 1 {
			return errFake
		}
		return nil
	}}
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	svc := service.New(db, service.WithTracerProvider(tp))
	var calls atomic.Int64
	done := make(chan struct{})
	if err := service.Handle(svc, "charge", func(ctx context.Context, _ orderPlaced) error {
		if calls.Add(1) < 3 {
			return errors.New("payment provider unavailable")
		}
		close(done)
		return nil
	}, service.Group("billing"), service.WithPolicy(service.Policy{
		MaxInProcessWait: time.Nanosecond,
		Retry:            retry.Policy{MaxAttempts: 3, InitialInterval: time.Millisecond, MaxInterval: 2 * time.Millisecond},
	})); err != nil {
		t.Fatal(err)
	}
	stop := start(t, svc)
	if err := svc.Publish(context.Background(), orderPlaced{OrderID: "o-1"}); err != nil {
		t.Fatal(err)
	}
	recv(t, done, "the final attempt")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	var process []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.SpanKind() == trace.SpanKindConsumer {
			process = append(process, s)
		}
	}
	// The nacked delivery, its redelivery (handed back) and the delayed retry.
	if len(process) != 3 {
		t.Fatalf("consumer spans = %d, want 3", len(process))
	}
	var nacked int
	for _, s := range process {
		if s.Status().Code != codes.Error {
			continue
		}
		nacked++
		if d := s.Status().Description; !strings.HasPrefix(d, "nacked: ") || !strings.Contains(d, errFake.Error()) {
			t.Errorf("nacked span's status description = %q, want \"nacked: \" and the broker's refusal", d)
		}
	}
	if nacked != 1 {
		t.Errorf("error spans = %d, want the one nacked delivery", nacked)
	}
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
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
		if s.SpanKind() == trace.SpanKindConsumer { // not the producer spans of the publishes above
			spans[spanAttrs(s)["messaging.message.id"].AsString()] = s
		}
	}
	bad, ok := spans["evt-bad"]
	if !ok {
		t.Fatalf("no span for the dead-lettered delivery; spans by message id: %v", spans)
	}
	if bad.Status().Code != codes.Error || bad.Status().Description != "dead-lettered: permanent" {
		t.Errorf("dead-lettered delivery's span status = %v, want Error with the reason", bad.Status())
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

// TestPublishBatchSpans: PublishBatch gives each event the producer span
// Publish would (its traceparent is what the message carries, so the
// consumer's span is its child), ended with the event's own outcome.
func TestPublishBatchSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	b := newBroker(t)
	svc := service.New(b, service.WithTracerProvider(tp))
	got := make(chan message.Metadata, 2)
	if err := service.Handle(svc, "notify", func(ctx context.Context, _ orderPlaced) error {
		got <- middleware.DeliveryFrom(ctx).Msg.Metadata
		return nil
	}, service.Group("notifications")); err != nil {
		t.Fatal(err)
	}
	stop := start(t, svc)
	if err := svc.PublishBatch(context.Background(), orderPlaced{OrderID: "o-1"}, orderPlaced{OrderID: "o-2"}); err != nil {
		t.Fatal(err)
	}
	carried := map[string]string{} // message id → traceparent
	for range 2 {
		md := recv(t, got, "a batch event")
		carried[md.Get(header.ID)] = md.Get(header.TraceParent)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	producers := 0
	for _, s := range rec.Ended() {
		if s.SpanKind() != trace.SpanKindProducer {
			continue
		}
		producers++
		id := spanAttrs(s)["messaging.message.id"].AsString()
		tp, ok := carried[id]
		if !ok {
			t.Errorf("producer span %q for message %q, which was not delivered", s.Name(), id)
			continue
		}
		if !strings.Contains(tp, s.SpanContext().SpanID().String()) {
			t.Errorf("message %s carries traceparent %q, not its producer span %s", id, tp, s.SpanContext().SpanID())
		}
		if s.Name() != "send orders" || s.Status().Code == codes.Error {
			t.Errorf("span %q status %+v, want send orders, not an error", s.Name(), s.Status())
		}
	}
	if producers != 2 {
		t.Fatalf("%d producer spans, want one per event of the batch (2)", producers)
	}

	// A refused event's span is an error.
	rec2 := tracetest.NewSpanRecorder()
	tp2 := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec2))
	defer tp2.Shutdown(context.Background())
	refusing := service.New(refusingBroker{newBroker(t)}, service.WithTracerProvider(tp2))
	if err := refusing.PublishBatch(context.Background(), orderPlaced{OrderID: "o-9"}); !errors.Is(err, errFake) {
		t.Fatalf("PublishBatch = %v, want the broker's refusal", err)
	}
	if spans := rec2.Ended(); len(spans) != 1 || spans[0].Status().Code != codes.Error {
		t.Fatalf("spans of a refused batch: %d, want one with an error status", len(spans))
	}

	// A batch refused before sending (an event cannot be encoded) ends
	// every span with an error: none of its events went out.
	rec3 := tracetest.NewSpanRecorder()
	tp3 := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec3))
	defer tp3.Shutdown(context.Background())
	invalid := service.New(newBroker(t), service.WithTracerProvider(tp3))
	var berr *service.PublishBatchError
	if err := invalid.PublishBatch(context.Background(), orderPlaced{OrderID: "o-1"}, unencodable{}); !errors.As(err, &berr) || berr.Sent {
		t.Fatalf("PublishBatch = %v, want it refused before sending", err)
	}
	spans := rec3.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans ended, want 2 (one per event)", len(spans))
	}
	for _, s := range spans {
		if s.Status().Code != codes.Error {
			t.Errorf("span %q of a refused batch: status %+v, want an error", s.Name(), s.Status())
		}
	}
}

// unencodable cannot be encoded as JSON.
type unencodable struct {
	F func() `json:"f"`
}

func (unencodable) EventType() string { return "test.unencodable" }
func (unencodable) EventVersion() int { return 1 }
