package projection

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Checkpoint is where a projection is, kept by a [Store] under the
// projection's name.
type Checkpoint struct {
	// Position is the global position of the last event applied to the
	// live read model (projections fed by the event store; 0 for one fed
	// by a broker).
	Position int64
	// Target is the read model the live projection writes to and readers
	// read (a table name on PostgreSQL). Empty until the projection's
	// first unit of work.
	Target string
	// Generation numbers the targets: 1 for the first, one more per
	// rebuild.
	Generation int
	// Rebuild is the rebuild in progress, or nil.
	Rebuild *RebuildState
}

// RebuildState is a rebuild in progress: a new target filled from
// position zero while the live one keeps serving.
type RebuildState struct {
	// Position is the last global position applied to Target.
	Position int64
	// Target is the read model being rebuilt.
	Target string
	// Generation is Target's generation.
	Generation int
}

// Store keeps the checkpoints of projections and makes each unit of work
// of a projection (a batch of events, or one broker message) atomic with
// its checkpoint. On PostgreSQL (adapters/postgres.NewProjectionStore) a
// unit of work is one transaction that locks the projection's checkpoint
// row, so the read-model writes and the checkpoint commit together or not
// at all.
type Store interface {
	// Begin starts a unit of work for the projection name. It waits for
	// (bounded by ctx) and holds the projection's lock until Commit or
	// Rollback, so the units of work of one projection, in any process,
	// run one at a time.
	Begin(ctx context.Context, name string) (Tx, error)
	// Checkpoint returns the committed checkpoint of the projection name
	// (the zero value if none) without waiting for its lock: what
	// readers and status pages ask.
	Checkpoint(ctx context.Context, name string) (Checkpoint, error)
}

// Tx is one unit of work of a projection, begun by [Store.Begin].
type Tx interface {
	// Checkpoint returns the checkpoint as of Begin (the zero value for a
	// projection never committed).
	Checkpoint() Checkpoint
	// Context returns ctx carrying what handlers need to write in the
	// unit of work (on PostgreSQL the transaction: postgres.TxFrom).
	Context(ctx context.Context) context.Context
	// MarkSeen records that the message id was applied to target in this
	// unit of work and reports whether it already was: how broker-fed
	// projections drop redeliveries.
	MarkSeen(ctx context.Context, target, id string) (seen bool, err error)
	// Commit stores cp and makes the unit of work's effects durable,
	// together. After Commit or Rollback the Tx is done.
	Commit(ctx context.Context, cp Checkpoint) error
	// Rollback discards the unit of work; a no-op after Commit.
	Rollback(ctx context.Context) error
}

// Memory is an in-process [Store] for tests and examples, needing no
// configuration. Its checkpoints live as long as the process; it cannot
// roll back what handlers wrote to their own in-memory read models, so a
// unit of work that fails half-way leaves the events before the failure
// applied, and they are applied again by the retry: keep in-memory
// handlers idempotent (set, not add), or use PostgreSQL.
type Memory struct {
	mu    sync.Mutex
	locks map[string]chan struct{}
	cps   map[string]Checkpoint
	seen  map[string]time.Time // name \x00 target \x00 id → when it was seen
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return &Memory{locks: map[string]chan struct{}{}, cps: map[string]Checkpoint{}, seen: map[string]time.Time{}}
}

// PruneSeen forgets the message ids broker-fed projections saw before now
// minus olderThan and returns how many, as the PostgreSQL store's
// PruneSeen does: a redelivery of a forgotten id is applied again.
func (m *Memory) PruneSeen(ctx context.Context, olderThan time.Duration) (int64, error) {
	if olderThan <= 0 {
		return 0, fmt.Errorf("projection: prune seen ids: older than %s, want > 0", olderThan)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	cutoff := time.Now().Add(-olderThan)
	m.mu.Lock()
	defer m.mu.Unlock()
	var n int64
	for k, at := range m.seen {
		if at.Before(cutoff) {
			delete(m.seen, k)
			n++
		}
	}
	return n, nil
}

var _ Store = (*Memory)(nil)

// Begin implements [Store].
func (m *Memory) Begin(ctx context.Context, name string) (Tx, error) {
	m.mu.Lock()
	lock, ok := m.locks[name]
	if !ok {
		lock = make(chan struct{}, 1)
		m.locks[name] = lock
	}
	m.mu.Unlock()
	select {
	case lock <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("projection: begin %q: %w", name, context.Cause(ctx))
	}
	m.mu.Lock()
	cp := m.cps[name]
	m.mu.Unlock()
	if cp.Rebuild != nil {
		rb := *cp.Rebuild
		cp.Rebuild = &rb
	}
	return &memoryTx{m: m, name: name, lock: lock, cp: cp, seen: map[string]bool{}}, nil
}

// Checkpoint implements [Store].
func (m *Memory) Checkpoint(ctx context.Context, name string) (Checkpoint, error) {
	if err := ctx.Err(); err != nil {
		return Checkpoint{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cp := m.cps[name]
	if cp.Rebuild != nil {
		rb := *cp.Rebuild
		cp.Rebuild = &rb
	}
	return cp, nil
}

type memoryTx struct {
	m    *Memory
	name string
	lock chan struct{}
	cp   Checkpoint
	seen map[string]bool
	done bool
}

var errTxDone = errors.New("projection: unit of work already committed or rolled back")

func (t *memoryTx) Checkpoint() Checkpoint                      { return t.cp }
func (t *memoryTx) Context(ctx context.Context) context.Context { return ctx }

func (t *memoryTx) MarkSeen(_ context.Context, target, id string) (bool, error) {
	if t.done {
		return false, errTxDone
	}
	k := t.name + "\x00" + target + "\x00" + id
	t.m.mu.Lock()
	_, old := t.m.seen[k]
	t.m.mu.Unlock()
	if old || t.seen[k] {
		return true, nil
	}
	t.seen[k] = true
	return false, nil
}

func (t *memoryTx) Commit(_ context.Context, cp Checkpoint) error {
	if t.done {
		return errTxDone
	}
	t.done = true
	t.m.mu.Lock()
	if cp.Rebuild != nil {
		rb := *cp.Rebuild
		cp.Rebuild = &rb
	}
	t.m.cps[t.name] = cp
	now := time.Now()
	for k := range t.seen {
		t.m.seen[k] = now
	}
	t.m.mu.Unlock()
	<-t.lock
	return nil
}

func (t *memoryTx) Rollback(context.Context) error {
	if !t.done {
		t.done = true
		<-t.lock
	}
	return nil
}
