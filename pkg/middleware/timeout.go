package middleware

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrTimeout is wrapped by the error of an attempt that ran out of time. It
// is also the cause ([context.Cause]) of the attempt's context then; the
// context's Err is [context.DeadlineExceeded].
var ErrTimeout = errors.New("handler timed out")

// Timeout bounds each attempt to d. It sits inside Retry, so every attempt
// gets a fresh deadline: a timeout outside the retry loop would hand every
// retry an already expired context (Watermill issue #467). A timed-out attempt
// is an ordinary, retryable failure. d <= 0 disables the timeout.
//
// When the runtime gives the delivery an [AttemptTimer], the attempt's
// deadline uses it: one timer per worker, reused, instead of a new timer
// and context per attempt.
func Timeout(d time.Duration) Middleware {
	return func(next Handler) Handler {
		if d <= 0 {
			return next
		}
		return func(ctx context.Context, del *Delivery) error {
			if t := del.Timer; t != nil {
				if actx, end, ok := t.start(ctx, d); ok {
					return timedAttempt(ctx, actx, del, next, end, d)
				}
			}
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

// timedAttempt runs next under an AttemptTimer's context and ends the
// attempt even if next panics or exits its goroutine, so that the timer is
// free for the next attempt.
func timedAttempt(ctx, actx context.Context, del *Delivery, next Handler, end func() bool, d time.Duration) (err error) {
	defer func() {
		if end() && err != nil && ctx.Err() == nil {
			err = fmt.Errorf("%w after %s: %w", ErrTimeout, d, err)
		}
	}()
	return next(actx, del)
}

// AttemptTimer bounds one attempt at a time with a timer that is reused
// from attempt to attempt. The runtime keeps one per worker and hands it to
// each delivery as [Delivery.Timer]. The zero value is ready to use.
type AttemptTimer struct {
	mu       sync.Mutex
	timer    *time.Timer
	cancel   context.CancelCauseFunc // of the attempt in progress; nil between attempts
	deadline time.Time
	expired  bool
	end      func() bool // t.finish, made once
}

// start begins an attempt bounded by d. ok is false while another attempt
// is in progress on t (a Timeout nested in another): the caller then makes
// its own timer.
func (t *AttemptTimer) start(ctx context.Context, d time.Duration) (_ context.Context, end func() (timedOut bool), ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cancel != nil {
		return nil, nil, false
	}
	cctx, cancel := context.WithCancelCause(ctx)
	t.cancel, t.deadline, t.expired = cancel, time.Now().Add(d), false
	if t.timer == nil {
		t.timer = time.AfterFunc(d, t.fire)
		t.end = t.finish
	} else {
		t.timer.Reset(d)
	}
	return &attemptContext{Context: cctx, deadline: t.deadline}, t.end, true
}

// fire cancels the attempt in progress if its deadline has passed; a timer
// of an earlier attempt that fires late finds a later deadline and does
// nothing.
func (t *AttemptTimer) fire() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cancel != nil && !time.Now().Before(t.deadline) {
		t.expired = true
		t.cancel(ErrTimeout)
	}
}

// finish ends the attempt in progress, reporting whether it ran out of time.
func (t *AttemptTimer) finish() bool {
	t.mu.Lock()
	t.timer.Stop()
	cancel, expired := t.cancel, t.expired
	t.cancel = nil
	t.mu.Unlock()
	cancel(nil)
	return expired
}

// attemptContext is an attempt's context: cancelled by its AttemptTimer,
// it reports the deadline and, once it passed, DeadlineExceeded, as a
// context from [context.WithDeadline] would.
type attemptContext struct {
	context.Context // from context.WithCancelCause
	deadline        time.Time
}

func (c *attemptContext) Deadline() (time.Time, bool) {
	if d, ok := c.Context.Deadline(); ok && d.Before(c.deadline) {
		return d, true
	}
	return c.deadline, true
}

func (c *attemptContext) Err() error {
	err := c.Context.Err()
	if err != nil && context.Cause(c.Context) == ErrTimeout {
		return context.DeadlineExceeded
	}
	return err
}

func (c *attemptContext) String() string { return "middleware.Timeout" }
