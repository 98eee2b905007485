package middleware

import (
	"context"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/header"
)

// TraceCarrier adapts an envelope's trace fields to OpenTelemetry's
// TextMapCarrier, so W3C trace context travels in ce_traceparent and
// ce_tracestate.
type TraceCarrier struct{ Env *event.Envelope }

func (c TraceCarrier) Get(key string) string {
	switch key {
	case "traceparent":
		return c.Env.TraceParent
	case "tracestate":
		return c.Env.TraceState
	}
	return ""
}

func (c TraceCarrier) Set(key, value string) {
	switch key {
	case "traceparent":
		c.Env.TraceParent = value
	case "tracestate":
		c.Env.TraceState = value
	}
}

func (c TraceCarrier) Keys() []string { return []string{"traceparent", "tracestate"} }

// MessagingSystem is the messaging.system attribute value for a broker
// named brokerName ([broker.Broker.Name]): OpenTelemetry's well-known
// value where there is one ("rabbitmq" for the amqp adapter), else the
// name itself ("memory").
//
// [broker.Broker.Name]: https://pkg.go.dev/github.com/switchyard-go/switchyard/pkg/broker#Broker
func MessagingSystem(brokerName string) string {
	if brokerName == "amqp" {
		return "rabbitmq"
	}
	return brokerName
}

// TracingOption adjusts [Tracing].
type TracingOption func(*tracingConfig)

type tracingConfig struct{ system string }

// WithMessagingSystem sets the messaging.system attribute of every span,
// e.g. MessagingSystem(b.Name()). Without it the attribute is left out.
func WithMessagingSystem(system string) TracingOption {
	return func(c *tracingConfig) { c.system = system }
}

// Tracing starts a consumer span per delivery, a child of the trace context
// the message carries, named "process <topic>" after OpenTelemetry's
// messaging conventions, with their attributes (see docs/observability.md).
// On Kafka, when the message carries [header.KafkaPartition] and
// [header.KafkaOffset], the span has the partition and offset. A delivery
// whose stack returns an error (the runtime nacks it) ends its span with an
// error status whose description is "nacked: " and the error; a
// dead-lettered one is marked by [DeadLetter]. A nil provider disables it.
func Tracing(tp trace.TracerProvider, opts ...TracingOption) Middleware {
	var cfg tracingConfig
	for _, o := range opts {
		o(&cfg)
	}
	return func(next Handler) Handler {
		if tp == nil {
			return next
		}
		tracer := tp.Tracer(TracerName)
		prop := propagation.TraceContext{}
		return func(ctx context.Context, d *Delivery) error {
			ctx = prop.Extract(ctx, TraceCarrier{&d.Envelope})
			attrs := make([]attribute.KeyValue, 0, 12)
			if cfg.system != "" {
				attrs = append(attrs, semconv.MessagingSystemKey.String(cfg.system))
			}
			attrs = append(attrs,
				semconv.MessagingOperationTypeProcess,
				semconv.MessagingOperationName("process"),
				semconv.MessagingDestinationName(d.Handler.Topic),
				semconv.MessagingConsumerGroupName(d.Handler.Group),
				semconv.MessagingMessageID(d.Envelope.ID),
				semconv.MessagingMessageConversationID(d.Envelope.CorrelationID),
				attribute.String(AttrHandler, d.Handler.Name),
				attribute.String(AttrEventType, d.Envelope.Type),
			)
			if cfg.system == "kafka" && d.Msg != nil {
				attrs = appendKafkaPosition(attrs, d.Msg.Metadata)
			}
			ctx, span := tracer.Start(ctx, "process "+d.Handler.Topic,
				trace.WithSpanKind(trace.SpanKindConsumer),
				trace.WithAttributes(attrs...))
			defer span.End()
			err := next(ctx, d)
			span.SetAttributes(attribute.Int(AttrAttempts, d.Attempt))
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, "nacked: "+err.Error())
			}
			return err
		}
	}
}

// appendKafkaPosition appends the partition and offset the Kafka adapter
// put in md, when they are there and well formed.
func appendKafkaPosition(attrs []attribute.KeyValue, md map[string]string) []attribute.KeyValue {
	if p, ok := md[header.KafkaPartition]; ok && p != "" {
		attrs = append(attrs, semconv.MessagingDestinationPartitionID(p))
	}
	if o, err := strconv.ParseInt(md[header.KafkaOffset], 10, 64); err == nil {
		attrs = append(attrs, semconv.MessagingKafkaOffset(int(o)))
	}
	return attrs
}

// TracerName is the instrumentation scope of Switchyard's spans.
const TracerName = "github.com/switchyard-go/switchyard"

// Span attributes Switchyard sets beyond OpenTelemetry's messaging ones.
const (
	AttrAttempts         = "switchyard.attempts"
	AttrDeadLetterReason = "switchyard.dead_letter.reason"
	AttrHandler          = "switchyard.handler"
	AttrEventType        = "cloudevents.event_type"
	// AttrPartitionKey is the event's key (ce_partitionkey) on a producer
	// span, where the broker has no convention of its own for it (Kafka's
	// is messaging.kafka.message.key).
	AttrPartitionKey = "switchyard.partition_key"
)

// markDeadLettered records on the span in ctx, if any, that the delivery
// was given up on: DeadLetter returns nil (the message is acked), but the
// delivery failed.
func markDeadLettered(ctx context.Context, reason failure.Reason, err error) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(attribute.String(AttrDeadLetterReason, string(reason)))
	span.RecordError(err)
	span.SetStatus(codes.Error, "dead-lettered: "+string(reason))
}
