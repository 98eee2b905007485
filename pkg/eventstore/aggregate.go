package eventstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/switchyard-go/switchyard/pkg/event"
)

// Fold applies events to s in order and returns the result.
func Fold[S any](s S, apply func(S, event.Event) S, events ...event.Event) S {
	for _, e := range events {
		s = apply(s, e)
	}
	return s
}

// Aggregate is one aggregate's state, folded from its stream, and the
// events recorded since it was loaded.
type Aggregate[S any] struct {
	// ID is the stream id.
	ID string
	// State is the fold of every stored and recorded event.
	State S
	// Version is how many stored events State was loaded from: the
	// expected version of the next Save.
	Version int

	apply   func(S, event.Event) S
	pending []event.Event
}

// Record applies events to the state and keeps them for the next Save.
func (a *Aggregate[S]) Record(events ...event.Event) {
	a.State = Fold(a.State, a.apply, events...)
	a.pending = append(a.pending, events...)
}

// Uncommitted returns the events recorded since the last Load or Save.
func (a *Aggregate[S]) Uncommitted() []event.Event { return a.pending }

// Repository loads and saves aggregates of state S in a [Store].
type Repository[S any] struct {
	// Store holds the streams. Required.
	Store Store
	// Decoder decodes stored events. Required.
	Decoder *Decoder
	// Apply folds one event into the state. It must not fail: validate
	// before recording an event, not while applying it. Required.
	Apply func(S, event.Event) S
	// Init returns the state of an aggregate with no events. Default:
	// S's zero value.
	Init func(id string) S
}

func (r *Repository[S]) check() error {
	var err error
	if r.Store == nil {
		err = errors.Join(err, errors.New("eventstore: repository.store: required"))
	}
	if r.Decoder == nil {
		err = errors.Join(err, errors.New("eventstore: repository.decoder: required"))
	}
	if r.Apply == nil {
		err = errors.Join(err, errors.New("eventstore: repository.apply: required"))
	}
	return err
}

// New returns an aggregate with no events, to record the first ones.
func (r *Repository[S]) New(id string) *Aggregate[S] {
	a := &Aggregate[S]{ID: id, apply: r.Apply}
	if r.Init != nil {
		a.State = r.Init(id)
	}
	return a
}

// Load folds the stream id into an aggregate. An unknown stream gives a
// new aggregate at version 0.
func (r *Repository[S]) Load(ctx context.Context, id string) (*Aggregate[S], error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	recs, err := r.Store.Load(ctx, id)
	if err != nil {
		return nil, err
	}
	a := r.New(id)
	for _, rec := range recs {
		e, err := r.Decoder.Decode(rec)
		if err != nil {
			return nil, err
		}
		a.State = r.Apply(a.State, e)
		a.Version = rec.Version
	}
	return a, nil
}

// Save appends the aggregate's recorded events at the version it was
// loaded at. On success the aggregate is at the new version with nothing
// pending; on [ErrConcurrencyConflict] nothing was stored and the
// aggregate is stale: load it again.
func (r *Repository[S]) Save(ctx context.Context, a *Aggregate[S]) error {
	if err := r.check(); err != nil {
		return err
	}
	if len(a.pending) == 0 {
		return nil
	}
	if err := r.Store.Append(ctx, a.ID, a.Version, a.pending...); err != nil {
		return fmt.Errorf("eventstore: save %q: %w", a.ID, err)
	}
	a.Version += len(a.pending)
	a.pending = nil
	return nil
}
