package middleware

import (
	"context"
	"log/slog"
)

type correlationKey struct{}

// WithCorrelationID returns ctx carrying a correlation id for events
// published outside a handler (an HTTP request id, say).
func WithCorrelationID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, correlationKey{}, id)
}

// CorrelationID returns the correlation id in effect in ctx: the handled
// message's, else one set with [WithCorrelationID], else "".
func CorrelationID(ctx context.Context) string {
	if d := DeliveryFrom(ctx); d != nil {
		return d.Envelope.CorrelationID
	}
	id, _ := ctx.Value(correlationKey{}).(string)
	return id
}

// Correlation puts the delivery into the context, where [CorrelationID],
// [DeliveryFrom] and publishing from the handler find it, and gives the
// delivery a logger (derived from base; nil discards) that carries the
// correlation id, causation id, message id, event type and handler.
//
// The envelope reader already took the correlation id from the message or,
// for a message that starts a chain, from its own id.
func Correlation(base *slog.Logger) Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, d *Delivery) error {
			d.SetLogger(base)
			return next(d.withContext(ctx), d)
		}
	}
}
