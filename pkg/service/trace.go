package service

import (
	"context"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/middleware"
)

// injectTrace writes the W3C trace context of the span in ctx, if any, into
// the envelope, so consumers continue the same trace.
func injectTrace(ctx context.Context, env *event.Envelope) {
	// Without a span there is nothing to write (Inject checks the same); the
	// early return also keeps env, which a carrier would hand to an
	// interface, on the caller's stack.
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	fields := new(event.Envelope)
	propagation.TraceContext{}.Inject(ctx, middleware.TraceCarrier{Env: fields})
	env.TraceParent, env.TraceState = fields.TraceParent, fields.TraceState
}

// publishTraced is Publish with a producer span, named "send <topic>" after
// OpenTelemetry's messaging conventions: the message carries the span's
// context in ce_traceparent, so the consumer's span is its child, on any
// broker. A failed publish ends the span with an error status.
func (s *Service) publishTraced(ctx context.Context, e event.Event, opts []PublishOption) error {
	ctx, span := s.startProducerSpan(ctx, e, opts)
	defer span.End()
	err := s.send(ctx, e, opts, span)
	endProducerSpan(span, err, false)
	return err
}

// startProducerSpan starts the producer span of one publish of e.
func (s *Service) startProducerSpan(ctx context.Context, e event.Event, opts []PublishOption) (context.Context, trace.Span) {
	var spec publishSpec
	for _, o := range opts {
		o.apply(&spec)
	}
	topic := s.topicOf(e, &spec)
	system := ""
	if s.broker != nil {
		system = middleware.MessagingSystem(s.broker.Name())
	}
	return s.tracer.Tracer(middleware.TracerName).Start(ctx, "send "+topic,
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			semconv.MessagingSystemKey.String(system),
			semconv.MessagingOperationTypeSend,
			semconv.MessagingOperationName("send"),
			semconv.MessagingDestinationName(topic),
			attribute.String(middleware.AttrEventType, e.EventType()),
		))
}

// endProducerSpan records err on span; with end it also ends it.
func endProducerSpan(span trace.Span, err error, end bool) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	if end {
		span.End()
	}
}

// setProducerAttributes adds what is known once the message is built.
func (s *Service) setProducerAttributes(span trace.Span, msg *message.Message) {
	attrs := []attribute.KeyValue{
		semconv.MessagingMessageID(msg.UUID),
		semconv.MessagingMessageConversationID(msg.Metadata.Get(header.CorrelationID)),
	}
	if key := msg.Metadata.Get(header.Key); key != "" {
		if s.broker != nil && s.broker.Name() == "kafka" {
			attrs = append(attrs, semconv.MessagingKafkaMessageKey(key))
		} else {
			attrs = append(attrs, attribute.String(middleware.AttrPartitionKey, key))
		}
	}
	span.SetAttributes(attrs...)
}
