package middleware

import (
	"context"
	"fmt"

	"github.com/switchyard-go/switchyard/pkg/failure"
)

// HopLimit refuses a delivery whose event chain has already passed through
// more than max handlers: publishing from a handler increments the hop count,
// so a count past any sane workflow depth means events feed back into
// themselves. The delivery is dead-lettered with reason "hop_limit" and an
// error naming the handler, the event type and the correlation id, which
// identify the loop. max <= 0 disables the guard.
func HopLimit(max int) Middleware {
	return func(next Handler) Handler {
		if max <= 0 {
			return next
		}
		return func(ctx context.Context, d *Delivery) error {
			if d.Envelope.HopCount > max {
				return failure.WithReason(failure.ReasonHopLimit, fmt.Errorf(
					"probable event loop: %s reached handler %q after %d hops (limit %d), correlation id %s",
					d.Envelope.Type, d.Handler.Name, d.Envelope.HopCount, max, d.Envelope.CorrelationID))
			}
			return next(ctx, d)
		}
	}
}
