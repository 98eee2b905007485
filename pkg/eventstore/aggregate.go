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

	apply      func(S, event.Event) S
	pending    []event.Event
	snapshotAt int // version of the last snapshot loaded or taken
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
	// Snapshots, if set, makes Load start from the stream's latest
	// snapshot and replay only the events after it, and Save take
	// snapshots by its policy. Default: no snapshots, every Load replays
	// the whole stream.
	Snapshots *Snapshots[S]
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
	if r.Snapshots != nil {
		err = errors.Join(err, r.Snapshots.check())
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
// new aggregate at version 0; a deleted one ([Delete]) an error wrapping
// [ErrStreamDeleted]. With [Repository.Snapshots] it starts from
// the latest snapshot of the current schema version and folds only the
// events after it (read with [StreamReader] where the store has it).
func (r *Repository[S]) Load(ctx context.Context, id string) (*Aggregate[S], error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	a := r.New(id)
	recs, err := r.loadFromSnapshot(ctx, a)
	if err != nil {
		return nil, err
	}
	if recs == nil {
		if recs, err = r.Store.Load(ctx, id); err != nil {
			return nil, err
		}
	}
	if n := len(recs); n > 0 && recs[n-1].Envelope.Type == StreamDeletedType {
		return nil, fmt.Errorf("eventstore: load %q: %w", id, ErrStreamDeleted)
	}
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

// loadFromSnapshot starts a from the stream's snapshot, if there is one
// that fits the stream, and returns the records after it (non-nil, maybe
// empty). It returns nil records when there is no usable snapshot, a at
// version 0: the caller replays the whole stream.
func (r *Repository[S]) loadFromSnapshot(ctx context.Context, a *Aggregate[S]) ([]Record, error) {
	if r.Snapshots == nil {
		return nil, nil
	}
	state, snap, ok := r.Snapshots.load(ctx, a.ID)
	if !ok {
		return nil, nil
	}
	// Read from the snapshot's own version: its last event must still be
	// there, the same one, or the snapshot is of another history.
	recs, err := r.loadAfter(ctx, a.ID, snap.Version-1)
	if err != nil {
		return nil, err
	}
	if !r.Snapshots.fits(snap, recs) {
		return nil, nil
	}
	recs = recs[1:]
	if len(recs) > 0 && recs[0].Version != snap.Version+1 {
		return nil, nil // a gap the store should never have: trust a full replay
	}
	a.State, a.Version, a.snapshotAt = state, snap.Version, snap.Version
	return append([]Record{}, recs...), nil
}

func (r *Repository[S]) loadAfter(ctx context.Context, id string, after int) ([]Record, error) {
	if sr, ok := r.Store.(StreamReader); ok {
		return sr.LoadAfter(ctx, id, after)
	}
	recs, err := r.Store.Load(ctx, id)
	if err != nil {
		return nil, err
	}
	return recs[min(after, len(recs)):], nil
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
	if r.Snapshots != nil && r.Snapshots.due(a) {
		r.snapshot(ctx, a)
	}
	return nil
}

// snapshot takes a snapshot of a with the id of its last event, read back
// because the store gives events their ids as it appends them. Like a
// failed snapshot, a failed read is reported, never returned.
func (r *Repository[S]) snapshot(ctx context.Context, a *Aggregate[S]) {
	recs, err := r.loadAfter(ctx, a.ID, a.Version-1)
	if err == nil && (len(recs) == 0 || recs[0].Version != a.Version) {
		err = fmt.Errorf("no event at version %d after saving it", a.Version)
	}
	if err != nil {
		r.Snapshots.report(a.ID, fmt.Errorf("eventstore: snapshot %q at version %d: read its last event: %w", a.ID, a.Version, err))
		return
	}
	r.Snapshots.take(ctx, a, recs[0].Envelope.ID)
}
