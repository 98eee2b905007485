package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Snapshot is an aggregate's state folded up to a version of its stream,
// kept so that a load replays only the events after it.
type Snapshot struct {
	// StreamID is the aggregate's stream.
	StreamID string
	// Version is the stream version the state was folded to.
	Version int
	// EventID is the id of the stream's event at Version, the last one
	// folded into the state. Load uses the snapshot only if the stream
	// still has that event at that version: a stream restored from an
	// older backup, or shorter than the snapshot, is replayed in full. A
	// snapshot without it (taken before it was kept) is never trusted.
	EventID string
	// SchemaVersion is the version of Data's layout (see
	// [Snapshots.SchemaVersion]): a snapshot of another schema version is
	// ignored on load, never decoded into the wrong shape.
	SchemaVersion int
	// Data is the encoded state.
	Data []byte
	// Time is when the snapshot was taken.
	Time time.Time
}

// SnapshotStore keeps the latest snapshot of each stream.
type SnapshotStore interface {
	// SaveSnapshot stores s as its stream's snapshot, unless the stored
	// one has the same schema version and a higher stream version (a
	// slower writer must not go back in time). A snapshot of another
	// schema version is replaced.
	SaveSnapshot(ctx context.Context, s Snapshot) error
	// LoadSnapshot returns the stream's snapshot; ok is false if there is
	// none.
	LoadSnapshot(ctx context.Context, streamID string) (s Snapshot, ok bool, err error)
}

// Snapshots configures the snapshots of a [Repository]. States are encoded
// with encoding/json, so S's fields must be exported (or S must implement
// json.Marshaler and json.Unmarshaler).
type Snapshots[S any] struct {
	// Store keeps the snapshots. Required.
	Store SnapshotStore
	// Every takes a snapshot on Save once at least Every events were
	// saved since the aggregate's last snapshot. 0: only When decides.
	Every int
	// When, if set, takes a snapshot on Save when it returns true for the
	// saved state and version: the aggregate decides (at the end of a
	// period, on a status change).
	When func(state S, version int) bool
	// SchemaVersion is the version of S's encoded layout. Bump it when S
	// changes in a way old snapshots would decode wrongly: snapshots of
	// another version are ignored (the stream is replayed in full) and
	// replaced by the next one taken. Default 1.
	SchemaVersion int
	// OnError, if set, is told about snapshots that could not be saved or
	// decoded, or that do not match their stream (wrapping
	// [ErrSnapshotMismatch]). None of these fails Load or Save: a snapshot
	// is only a shortcut, and the events stay the truth.
	OnError func(streamID string, err error)
}

// ErrSnapshotMismatch is reported to [Snapshots.OnError] when a snapshot
// is ahead of its stream, or its last event is not the stream's event at
// that version (the events were restored from an older backup, or the
// stream was written again): Load ignores it and replays the stream.
var ErrSnapshotMismatch = errors.New("snapshot does not match its stream")

func (s *Snapshots[S]) schema() int {
	if s.SchemaVersion == 0 {
		return 1
	}
	return s.SchemaVersion
}

func (s *Snapshots[S]) check() error {
	var err error
	if s.Store == nil {
		err = errors.Join(err, errors.New("eventstore: repository.snapshots.store: required"))
	}
	if s.Every < 0 {
		err = errors.Join(err, fmt.Errorf("eventstore: repository.snapshots.every: %d, want >= 0", s.Every))
	}
	if s.SchemaVersion < 0 {
		err = errors.Join(err, fmt.Errorf("eventstore: repository.snapshots.schema_version: %d, want >= 1 (0: 1)", s.SchemaVersion))
	}
	return err
}

func (s *Snapshots[S]) report(streamID string, err error) {
	if s.OnError != nil {
		s.OnError(streamID, err)
	}
}

// load returns the usable snapshot of id, if any, and its state. The
// caller still checks it against the stream ([Snapshots.fits]).
func (s *Snapshots[S]) load(ctx context.Context, id string) (S, Snapshot, bool) {
	var state S
	snap, ok, err := s.Store.LoadSnapshot(ctx, id)
	if err != nil {
		s.report(id, fmt.Errorf("eventstore: load snapshot of %q: %w", id, err))
		return state, Snapshot{}, false
	}
	if !ok || snap.SchemaVersion != s.schema() || snap.Version < 1 || snap.EventID == "" {
		return state, Snapshot{}, false
	}
	if err := json.Unmarshal(snap.Data, &state); err != nil {
		s.report(id, fmt.Errorf("eventstore: decode snapshot of %q at version %d: %w", id, snap.Version, err))
		var zero S
		return zero, Snapshot{}, false
	}
	return state, snap, true
}

// fits reports whether snap's last event is recs[0], the stream's record
// at the snapshot's version, and reports the mismatch when it is not.
func (s *Snapshots[S]) fits(snap Snapshot, recs []Record) bool {
	switch {
	case len(recs) == 0 || recs[0].Version > snap.Version:
		s.report(snap.StreamID, fmt.Errorf("eventstore: snapshot of %q at version %d: the stream has no event at that version: %w",
			snap.StreamID, snap.Version, ErrSnapshotMismatch))
	case recs[0].Version != snap.Version || recs[0].Envelope.ID != snap.EventID:
		s.report(snap.StreamID, fmt.Errorf("eventstore: snapshot of %q at version %d: its last event is %q, the stream's is %q: %w",
			snap.StreamID, snap.Version, snap.EventID, recs[0].Envelope.ID, ErrSnapshotMismatch))
	default:
		return true
	}
	return false
}

// due reports whether Save should take a snapshot of a.
func (s *Snapshots[S]) due(a *Aggregate[S]) bool {
	if s.Every > 0 && a.Version-a.snapshotAt >= s.Every {
		return true
	}
	return s.When != nil && s.When(a.State, a.Version)
}

// take snapshots a, whose last event (at a.Version) has id lastID.
func (s *Snapshots[S]) take(ctx context.Context, a *Aggregate[S], lastID string) {
	data, err := json.Marshal(a.State)
	if err == nil {
		err = s.Store.SaveSnapshot(ctx, Snapshot{StreamID: a.ID, Version: a.Version, EventID: lastID, SchemaVersion: s.schema(), Data: data, Time: time.Now().UTC()})
	}
	if err != nil {
		s.report(a.ID, fmt.Errorf("eventstore: snapshot %q at version %d: %w", a.ID, a.Version, err))
		return
	}
	a.snapshotAt = a.Version
}

// MemorySnapshots is an in-process [SnapshotStore] for tests and the quick
// start. It is safe for concurrent use.
type MemorySnapshots struct {
	mu    sync.Mutex
	snaps map[string]Snapshot
}

var _ SnapshotStore = (*MemorySnapshots)(nil)

// NewMemorySnapshots returns an empty snapshot store.
func NewMemorySnapshots() *MemorySnapshots { return &MemorySnapshots{snaps: map[string]Snapshot{}} }

// SaveSnapshot implements [SnapshotStore].
func (m *MemorySnapshots) SaveSnapshot(ctx context.Context, s Snapshot) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.snaps[s.StreamID]; ok && old.SchemaVersion == s.SchemaVersion && old.Version > s.Version {
		return nil
	}
	s.Data = slices.Clone(s.Data)
	m.snaps[s.StreamID] = s
	return nil
}

// LoadSnapshot implements [SnapshotStore].
func (m *MemorySnapshots) LoadSnapshot(ctx context.Context, streamID string) (Snapshot, bool, error) {
	if err := ctx.Err(); err != nil {
		return Snapshot{}, false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.snaps[streamID]
	s.Data = slices.Clone(s.Data)
	return s, ok, nil
}
