package saga

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Record is a saga instance as a [Store] keeps it.
type Record struct {
	// State is the saga's state, encoded (JSON).
	State []byte
	// Version counts the saves: 0 for an instance never saved, 1 after
	// the first save. A save of version v succeeds only over version v-1.
	Version int64
	// Completed is set once the saga marked itself complete.
	Completed bool
	// Applied holds the ids of the last messages the instance applied, so
	// that a redelivery of one is not applied twice.
	Applied []string
	// Pending holds what the last save decided to publish and schedule
	// (encoded), until it is confirmed: a crash between save and publish
	// is made good by the next delivery for the instance.
	Pending []byte
}

// ErrConflict is wrapped by [Store.Save] when another save of the instance
// came first. The runtime retries the delivery (a transient error), which
// loads the new state and decides again.
var ErrConflict = errors.New("saga: instance changed concurrently")

// Store keeps saga instances, keyed by saga name and correlation id, with
// optimistic concurrency. Implementations: [Memory] and the PostgreSQL
// store in adapters/postgres.
type Store interface {
	// Load returns the instance; a Record with Version 0 if none is stored.
	Load(ctx context.Context, saga, id string) (Record, error)
	// Save stores r if the stored version is r.Version-1 (none for
	// r.Version 1); an error wrapping [ErrConflict] otherwise.
	Save(ctx context.Context, saga, id string, r Record) error
	// ClearPending forgets Pending of the instance if it is still at
	// version (a later save replaced it otherwise).
	ClearPending(ctx context.Context, saga, id string, version int64) error
}

// Memory is a [Store] in the process, for tests and the quick start.
type Memory struct {
	mu   sync.Mutex
	recs map[[2]string]Record
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory { return &Memory{recs: map[[2]string]Record{}} }

func (m *Memory) Load(_ context.Context, saga, id string) (Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return clone(m.recs[[2]string{saga, id}]), nil
}

func (m *Memory) Save(_ context.Context, saga, id string, r Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := [2]string{saga, id}
	if cur := m.recs[k]; cur.Version != r.Version-1 {
		return fmt.Errorf("saga %s %q: save version %d over %d: %w", saga, id, r.Version, cur.Version, ErrConflict)
	}
	m.recs[k] = clone(r)
	return nil
}

func (m *Memory) ClearPending(_ context.Context, saga, id string, version int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := [2]string{saga, id}
	if r, ok := m.recs[k]; ok && r.Version == version {
		r.Pending = nil
		m.recs[k] = r
	}
	return nil
}

func clone(r Record) Record {
	r.State = slices.Clone(r.State)
	r.Applied = slices.Clone(r.Applied)
	r.Pending = slices.Clone(r.Pending)
	return r
}
