package service

import (
	"context"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-go/switchyard/pkg/event"
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
