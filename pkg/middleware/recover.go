package middleware

import (
	"context"

	"github.com/switchyard-go/switchyard/pkg/failure"
)

// Recover turns a panic in the handler into a *failure.PanicError carrying
// the stack, so a panicking handler is retried and dead-lettered like any
// failing one and never takes the process down.
func Recover() Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, d *Delivery) (err error) {
			defer func() {
				if r := recover(); r != nil {
					err = failure.NewPanicError(r)
				}
			}()
			return next(ctx, d)
		}
	}
}
