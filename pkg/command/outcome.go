package command

import (
	"context"
	"errors"
	"fmt"

	"github.com/switchyard-go/switchyard/pkg/event"
)

// ErrNoOutcome is wrapped by [Bus.SendAndWait]'s error when its context
// ended before the command's outcome was known: the command was sent and
// may still be handled.
var ErrNoOutcome = errors.New("command: no outcome yet")

// Result is the outcome of a command that was handled.
type Result struct {
	// ID is the command's message id.
	ID string
	// Version is the aggregate's version after the command, when its
	// handler decided with [Execute] or [OnAggregate]: a read model that
	// reached it shows the command's effect. Zero otherwise.
	Version int
}

type outcome struct {
	version int
	err     error
}

// result is where Execute leaves the version for the bus, through the
// handler's context.
type result struct{ version int }

type resultKey struct{}

func setVersion(ctx context.Context, v int) {
	if r, ok := ctx.Value(resultKey{}).(*result); ok {
		r.version = v
	}
}

// SendAndWait sends cmd like [Bus.Send] and waits until its handler has
// decided: it returns the [Result] on success, an error wrapping the
// handler's [RejectedError] when the command broke a rule, the handler's
// error once the command failed for good (a permanent error or the last
// attempt before the dead-letter topic), or, when ctx ends first, an error
// wrapping [ErrNoOutcome] and ctx's error (the command may still be
// handled: give ctx a deadline).
//
// A command that deduplication (service.WithIdempotency) skips as a
// redelivery of one already handled has no outcome of its own: send it
// with a new id, or wait on the read model.
//
// It sees the outcome of commands handled by this process. With several
// instances in one consumer group another instance may take the command
// and SendAndWait runs into ctx's deadline; such services send with
// [Bus.Send] and let the client wait on the read model instead.
func (b *Bus) SendAndWait(ctx context.Context, cmd event.Event, opts ...SendOption) (Result, error) {
	spec, err := b.spec(cmd, opts)
	if err != nil {
		return Result{}, err
	}
	// Registered before publishing: the handler may finish first.
	ch := make(chan outcome, 1)
	b.mu.Lock()
	if _, dup := b.waiters[spec.id]; dup {
		b.mu.Unlock()
		return Result{}, fmt.Errorf("command: send %s: a send with id %q is already waiting", cmd.EventType(), spec.id)
	}
	b.waiters[spec.id] = ch
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.waiters, spec.id)
		b.mu.Unlock()
	}()
	if err := b.publish(ctx, cmd, spec); err != nil {
		return Result{ID: spec.id}, err
	}
	select {
	case o := <-ch:
		return Result{ID: spec.id, Version: o.version}, o.err
	case <-ctx.Done():
		return Result{ID: spec.id}, fmt.Errorf("command: %s %s: %w: %w", cmd.EventType(), spec.id, ErrNoOutcome, ctx.Err())
	}
}

// resolve hands o to the SendAndWait waiting for the command id, if any.
func (b *Bus) resolve(id string, o outcome) {
	b.mu.Lock()
	ch := b.waiters[id]
	delete(b.waiters, id)
	b.mu.Unlock()
	if ch != nil {
		ch <- o
	}
}

// RejectedError is a command refused by its handler because it breaks a
// rule ("can't ship before payment"). It is the command's answer, not a
// failure: the command is acknowledged and not dead-lettered.
type RejectedError struct{ Err error }

func (e *RejectedError) Error() string { return "command rejected: " + e.Err.Error() }
func (e *RejectedError) Unwrap() error { return e.Err }

// Reject marks err as the rule a command breaks; errors.Is and errors.As
// still see err.
func Reject(err error) error {
	if err == nil {
		return nil
	}
	return &RejectedError{Err: err}
}

// IsRejected reports whether err is, or wraps, a [RejectedError].
func IsRejected(err error) bool {
	var r *RejectedError
	return errors.As(err, &r)
}
