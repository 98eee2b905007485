package middleware

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrTimeout is wrapped by the error of an attempt that ran out of time.
var ErrTimeout = errors.New("handler timed out")

// Timeout bounds each attempt to d. It sits inside Retry, so every attempt
// gets a fresh deadline: a timeout outside the retry loop would hand every
// retry an already expired context (Watermill issue #467). A timed-out attempt
// is an ordinary, retryable failure. d <= 0 disables the timeout.
func Timeout(d time.Duration) Middleware {
	return func(next Handler) Handler {
		if d <= 0 {
			return next
		}
		return func(ctx context.Context, del *Delivery) error {
			actx, cancel := context.WithTimeoutCause(ctx, d, ErrTimeout)
			defer cancel()
			err := next(actx, del)
			if err != nil && ctx.Err() == nil && errors.Is(context.Cause(actx), ErrTimeout) {
				return fmt.Errorf("%w after %s: %w", ErrTimeout, d, err)
			}
			return err
		}
	}
}
