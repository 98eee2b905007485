package middleware

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/failure"
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

// Tracing starts a consumer span per delivery, a child of the trace context
// the message carries, named "<topic> process" after OpenTelemetry's
// messaging conventions. A nil provider disables it.
func Tracing(tp trace.TracerProvider) Middleware {
	return func(next Handler) Handler {
		if tp == nil {
			return next
		}
		tracer := tp.Tracer("github.com/switchyard-go/switchyard")
		prop := propagation.TraceContext{}
		return func(ctx context.Context, d *Delivery) error {
			ctx = prop.Extract(ctx, TraceCarrier{&d.Envelope})
			ctx, span := tracer.Start(ctx, d.Handler.Topic+" process",
				trace.WithSpanKind(trace.SpanKindConsumer),
				trace.WithAttributes(
					attribute.String("messaging.operation.type", "process"),
					attribute.String("messaging.destination.name", d.Handler.Topic),
					attribute.String("messaging.consumer.group.name", d.Handler.Group),
					attribute.String("messaging.message.id", d.Envelope.ID),
					attribute.String("messaging.message.conversation_id", d.Envelope.CorrelationID),
					attribute.String("switchyard.handler", d.Handler.Name),
					attribute.String("cloudevents.event_type", d.Envelope.Type),
				))
			defer span.End()
			err := next(ctx, d)
			span.SetAttributes(attribute.Int(AttrAttempts, d.Attempt))
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
			}
			return err
		}
	}
}

// Span attributes Switchyard sets beyond OpenTelemetry's messaging ones.
const (
	AttrAttempts         = "switchyard.attempts"
	AttrDeadLetterReason = "switchyard.dead_letter.reason"
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
