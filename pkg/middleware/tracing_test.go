package middleware_test

import (
	"context"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/middleware"
)

// TestTracingKafkaPosition: on Kafka the consumer span has the partition
// and offset the adapter put in the message's metadata; elsewhere, or when
// they are missing, it has neither.
func TestTracingKafkaPosition(t *testing.T) {
	for _, tc := range []struct {
		name, system     string
		md               message.Metadata
		partition        string
		offset           int64
		hasPart, hasOffs bool
	}{
		{"kafka", "kafka", message.Metadata{header.KafkaPartition: "3", header.KafkaOffset: "42"}, "3", 42, true, true},
		{"kafka without position", "kafka", message.Metadata{}, "", 0, false, false},
		{"memory", "memory", message.Metadata{header.KafkaPartition: "3", header.KafkaOffset: "42"}, "", 0, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			defer tp.Shutdown(context.Background())
			h := middleware.Tracing(tp, middleware.WithMessagingSystem(tc.system))(func(context.Context, *middleware.Delivery) error { return nil })
			msg := message.NewMessage("m-1", nil)
			msg.Metadata = tc.md
			d := &middleware.Delivery{
				Msg:      msg,
				Envelope: event.Envelope{ID: "m-1"},
				Handler:  &middleware.Info{Name: "h", Topic: "orders", Group: "g"},
				Attempt:  1,
			}
			if err := h(context.Background(), d); err != nil {
				t.Fatal(err)
			}
			spans := rec.Ended()
			if len(spans) != 1 {
				t.Fatalf("spans = %d", len(spans))
			}
			attrs := map[attribute.Key]attribute.Value{}
			for _, kv := range spans[0].Attributes() {
				attrs[kv.Key] = kv.Value
			}
			if got := attrs["messaging.system"].AsString(); got != tc.system {
				t.Errorf("messaging.system = %q, want %q", got, tc.system)
			}
			p, ok := attrs["messaging.destination.partition.id"]
			if ok != tc.hasPart || p.AsString() != tc.partition {
				t.Errorf("partition = %q (present %v), want %q (present %v)", p.AsString(), ok, tc.partition, tc.hasPart)
			}
			o, ok := attrs["messaging.kafka.offset"]
			if ok != tc.hasOffs || o.AsInt64() != tc.offset {
				t.Errorf("offset = %d (present %v), want %d (present %v)", o.AsInt64(), ok, tc.offset, tc.hasOffs)
			}
		})
	}
}

func TestMessagingSystem(t *testing.T) {
	for name, want := range map[string]string{"amqp": "rabbitmq", "kafka": "kafka", "memory": "memory"} {
		if got := middleware.MessagingSystem(name); got != want {
			t.Errorf("MessagingSystem(%q) = %q, want %q", name, got, want)
		}
	}
}
