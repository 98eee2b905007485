package service

import (
	"context"

	"go.opentelemetry.io/otel/propagation"

	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/middleware"
)

// injectTrace writes the W3C trace context of the span in ctx, if any, into
// the envelope, so consumers continue the same trace.
func injectTrace(ctx context.Context, env *event.Envelope) {
	propagation.TraceContext{}.Inject(ctx, middleware.TraceCarrier{Env: env})
}
