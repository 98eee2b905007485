package middleware

import (
	"context"
	"fmt"
	"time"

	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/retry"
)

// DelayFunc hands a failed delivery back to the broker to be redelivered to
// the same handler after wait, without holding a consumer slot meanwhile.
// It returns once the broker has stored the message.
type DelayFunc func(ctx context.Context, d *Delivery, wait time.Duration) error

// RetryConfig configures [Retry].
type RetryConfig struct {
	// Policy is the backoff policy; zero fields take their defaults.
	Policy retry.Policy
	// Clock sleeps between attempts; nil means the system clock.
	Clock Clock
	// Rand returns uniform values in [0,1) for jitter; nil means math/rand.
	Rand func() float64
	// Delay, when set, is used for every wait longer than MaxInProcessWait:
	// the message is handed back to the broker and this delivery is acked.
	Delay DelayFunc
	// MaxInProcessWait is the longest wait spent sleeping in the consumer.
	// Zero means every wait is in-process (Delay is never used).
	MaxInProcessWait time.Duration
	// OnRetry, if set, is called before each wait (in-process or delayed).
	OnRetry func(d *Delivery, wait time.Duration, err error)
}

// Retry re-runs the handler on failure with exponential backoff and jitter.
// Permanent errors (see package failure) are returned at once. After the
// last attempt, or once Policy.MaxElapsed has passed since the first failure,
// the last error is returned for the dead-letter step to take.
//
// Short waits are slept in the consumer. A wait longer than
// MaxInProcessWait, when Delay is set, hands the message back to the broker
// instead, so one slow-failing message never holds a partition or prefetch
// slot hostage.
//
// Waits give up the delivery's [Slot] (see [Delivery.Wait]): other messages
// run meanwhile. If handing the message back fails, Retry returns a
// [*FailurePathError]: the runtime nacks the message, it is not
// dead-lettered for it.
//
// When ctx is cancelled during a wait (shutdown), Retry returns the context
// error; the runtime then nacks the message so that it is redelivered, never
// dead-lettered for a shutdown.
func Retry(cfg RetryConfig) Middleware {
	p := cfg.Policy.WithDefaults()
	clock := cfg.Clock
	if clock == nil {
		clock = SystemClock{}
	}
	return func(next Handler) Handler {
		return func(ctx context.Context, d *Delivery) error {
			if d.Attempt < 1 {
				d.Attempt = 1
			}
			for {
				err := next(ctx, d)
				if err == nil {
					return nil
				}
				now := clock.Now()
				if d.FirstFailure.IsZero() {
					d.FirstFailure = now
				}
				d.LastFailure = now
				if failure.IsPermanent(err) || ctx.Err() != nil {
					return err
				}
				if d.Attempt >= p.MaxAttempts {
					return fmt.Errorf("gave up after %d attempts: %w", d.Attempt, err)
				}
				if p.MaxElapsed > 0 && now.Sub(d.FirstFailure) >= p.MaxElapsed {
					return fmt.Errorf("gave up after %d attempts and %s: %w", d.Attempt, now.Sub(d.FirstFailure), err)
				}
				wait := p.Backoff(d.Attempt, cfg.Rand)
				if p.MaxElapsed > 0 {
					if left := p.MaxElapsed - now.Sub(d.FirstFailure); wait > left {
						wait = left
					}
				}
				if cfg.OnRetry != nil {
					cfg.OnRetry(d, wait, err)
				}
				d.Logger().LogAttrs(ctx, slogLevelRetry, "handler failed, retrying",
					attrErr(err), attrAttempt(d.Attempt), attrWait(wait))
				if cfg.Delay != nil && cfg.MaxInProcessWait > 0 && wait > cfg.MaxInProcessWait {
					if derr := cfg.Delay(ctx, d, wait); derr != nil {
						// Not the handler's failure: the message is nacked
						// and redelivered, never dead-lettered for it.
						return &FailurePathError{Op: OpDelayedRetry, Err: derr, Cause: err}
					}
					return nil
				}
				if serr := d.Wait(ctx, clock, wait); serr != nil {
					return fmt.Errorf("retry interrupted: %w (last error: %w)", serr, err)
				}
				d.Attempt++
			}
		}
	}
}
