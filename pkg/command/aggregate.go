package command

import (
	"context"
	"errors"
	"fmt"

	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/eventstore"
)

// DefaultConflictRetries is how many times [Execute] loads and decides
// again after a version conflict, unless [ConflictRetries] says otherwise.
const DefaultConflictRetries = 3

// ExecuteOption adjusts [Execute] and [OnAggregate].
type ExecuteOption func(*execSpec)

type execSpec struct{ retries int }

// ConflictRetries sets how many times a decision is loaded and made again
// after a version conflict before [Execute] gives up (0: never). Default
// [DefaultConflictRetries].
func ConflictRetries(n int) ExecuteOption { return func(s *execSpec) { s.retries = n } }

// ConflictError is returned by [Execute] when every attempt met a version
// conflict: other writers kept saving to the stream first. It is
// transient: in a handler it takes the failure path (retry with backoff,
// then the dead-letter topic). It wraps [eventstore.ErrConcurrencyConflict].
type ConflictError struct {
	// StreamID is the aggregate's stream.
	StreamID string
	// Attempts is how many times the decision was made.
	Attempts int
	// Err is the last conflict.
	Err error
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("command: %q: version conflict on each of %d attempts, giving up: %v", e.StreamID, e.Attempts, e.Err)
}

func (e *ConflictError) Unwrap() error { return e.Err }

// Execute loads the aggregate id from repo, calls decide with it and saves
// the events decide recorded (with [eventstore.Aggregate.Record]) at the
// version it was loaded at: optimistic concurrency. On a version conflict
// it loads the new version and calls decide again, up to [ConflictRetries]
// times, then returns a [ConflictError]. decide may so run several times:
// it must only read the aggregate and record events, with no other effect.
// An error from decide (a [Reject], say) is returned as it is and nothing
// is saved. Recording nothing is fine: nothing is saved.
//
// It returns the aggregate as saved, at its new version. Called from a
// command handler, it also reports that version to [Bus.SendAndWait].
func Execute[S any](ctx context.Context, repo *eventstore.Repository[S], id string, decide func(a *eventstore.Aggregate[S]) error, opts ...ExecuteOption) (*eventstore.Aggregate[S], error) {
	spec := execSpec{retries: DefaultConflictRetries}
	for _, o := range opts {
		o(&spec)
	}
	if spec.retries < 0 {
		return nil, fmt.Errorf("command: conflict retries: %d, want >= 0", spec.retries)
	}
	if repo == nil || decide == nil {
		return nil, errors.New("command: execute: repository and decide are required")
	}
	var last error
	for attempt := 1; attempt <= spec.retries+1; attempt++ {
		a, err := repo.Load(ctx, id)
		if err != nil {
			return nil, err
		}
		if err := decide(a); err != nil {
			return nil, err
		}
		err = repo.Save(ctx, a)
		if err == nil {
			setVersion(ctx, a.Version)
			return a, nil
		}
		if !errors.Is(err, eventstore.ErrConcurrencyConflict) {
			return nil, err
		}
		last = err
		if ctx.Err() != nil {
			return nil, fmt.Errorf("command: %q: %w (after a version conflict: %v)", id, ctx.Err(), err)
		}
	}
	return nil, &ConflictError{StreamID: id, Attempts: spec.retries + 1, Err: last}
}

// AggregateCommand is a command that names its aggregate by its key, so
// that commands to one aggregate keep their order on the broker and
// [OnAggregate] knows which stream to load.
type AggregateCommand interface {
	event.Event
	// EventKey returns the aggregate's id (its stream id).
	EventKey() string
}

// OnAggregate returns a command handler for C, for [Handle]: it runs
// [Execute] on the aggregate c.EventKey() names, with decide given the
// command.
//
//	command.Handle(bus, "orders.pay", command.OnAggregate(repo,
//		func(a *eventstore.Aggregate[Order], c PayOrder) error {
//			if a.State.Paid {
//				return command.Reject(ErrAlreadyPaid)
//			}
//			a.Record(OrderPaid{OrderID: c.OrderID})
//			return nil
//		}))
func OnAggregate[S any, C AggregateCommand](repo *eventstore.Repository[S], decide func(a *eventstore.Aggregate[S], c C) error, opts ...ExecuteOption) func(context.Context, C) error {
	return func(ctx context.Context, c C) error {
		id := c.EventKey()
		if id == "" {
			return Reject(fmt.Errorf("%s has no aggregate id (EventKey is empty)", c.EventType()))
		}
		_, err := Execute(ctx, repo, id, func(a *eventstore.Aggregate[S]) error { return decide(a, c) }, opts...)
		return err
	}
}
