package kafka_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-go/switchyard/internal/opstest"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// TestConsumerSpanHasKafkaPosition: on the real Kafka, the process span of
// a delivery carries the partition and offset the record had, beside the
// messaging attributes every broker gets.
func TestConsumerSpanHasKafkaPosition(t *testing.T) {
	b := newBroker(t, nil)
	ns := uniqueName(t, "ns") + "."
	cleanupTopic(t, ns+opstest.Topic, ns+"billing")
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	svc := service.New(b, service.WithTracerProvider(tp), service.WithNamespace(ns))
	handled := make(chan struct{}, 1)
	if err := service.Handle(svc, "charge", func(context.Context, opstest.Paid) error {
		handled <- struct{}{}
		return nil
	}, service.Group("billing")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	defer func() { cancel(); <-done }()
	select {
	case <-svc.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	if err := b.WaitGroup(ctx, ns+"billing", 1); err != nil {
		t.Fatal(err)
	}
	if err := svc.Publish(context.Background(), opstest.Paid{ID: "p-1"}, service.WithID("evt-kafka-1")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-handled:
	case <-time.After(waitMsg):
		t.Fatal("not handled")
	}
	var attrs map[attribute.Key]attribute.Value
	deadline := time.Now().Add(10 * time.Second)
	for attrs == nil {
		for _, s := range rec.Ended() {
			if s.SpanKind() == trace.SpanKindConsumer {
				attrs = map[attribute.Key]attribute.Value{}
				for _, kv := range s.Attributes() {
					attrs[kv.Key] = kv.Value
				}
			}
		}
		if attrs == nil && time.Now().After(deadline) {
			t.Fatal("no consumer span ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for k, want := range map[attribute.Key]string{
		"messaging.system":              "kafka",
		"messaging.destination.name":    ns + opstest.Topic,
		"messaging.consumer.group.name": ns + "billing",
		"messaging.message.id":          "evt-kafka-1",
		"messaging.operation.type":      "process",
	} {
		if got := attrs[k].AsString(); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	p, err := strconv.Atoi(attrs["messaging.destination.partition.id"].AsString())
	if err != nil || p < 0 || p >= 3 {
		t.Errorf("messaging.destination.partition.id = %q, want one of the topic's 3 partitions", attrs["messaging.destination.partition.id"].AsString())
	}
	if o, ok := attrs["messaging.kafka.offset"]; !ok || o.AsInt64() != 0 {
		t.Errorf("messaging.kafka.offset = %v (present %v), want 0: the first record of a new topic", o.AsInt64(), ok)
	}
}
