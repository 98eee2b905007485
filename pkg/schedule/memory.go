package schedule

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/switchyard-go/switchyard/pkg/service"
)

// Memory is a [Store] in the process: entries are lost when it exits. For
// tests and the in-memory quick start.
type Memory struct {
	mu      sync.Mutex
	entries map[string]*memEntry
}

type memEntry struct {
	Entry
	claimedUntil time.Time
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory { return &Memory{entries: map[string]*memEntry{}} }

// Add stores a copy of e, unless its id is stored.
func (m *Memory) Add(_ context.Context, e Entry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.entries[e.ID]; !ok {
		e.Message = e.Message.Copy()
		m.entries[e.ID] = &memEntry{Entry: e}
	}
	return nil
}

// Cancel deletes the entry id unless it is claimed.
func (m *Memory) Cancel(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[id]
	if !ok || time.Now().Before(e.claimedUntil) {
		return fmt.Errorf("schedule: cancel %q: %w", id, service.ErrScheduleNotFound)
	}
	delete(m.entries, id)
	return nil
}

// Claim returns copies of up to limit due, unclaimed entries, earliest first.
func (m *Memory) Claim(_ context.Context, now time.Time, limit int, lease time.Duration) ([]Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	// Due times are on the caller's clock; leases, like the PostgreSQL
	// store's, on the wall clock.
	wall := time.Now()
	var due []*memEntry
	for _, e := range m.entries {
		if !e.Due.After(now) && !wall.Before(e.claimedUntil) {
			due = append(due, e)
		}
	}
	slices.SortFunc(due, func(a, b *memEntry) int { return a.Due.Compare(b.Due) })
	if len(due) > limit {
		due = due[:limit]
	}
	out := make([]Entry, len(due))
	for i, e := range due {
		e.claimedUntil = wall.Add(lease)
		out[i] = e.Entry
		out[i].Message = e.Message.Copy()
	}
	return out, nil
}

// Done deletes the entry id.
func (m *Memory) Done(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.entries, id)
	return nil
}

// Release ends the claims of ids.
func (m *Memory) Release(_ context.Context, ids ...string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range ids {
		if e, ok := m.entries[id]; ok {
			e.claimedUntil = time.Time{}
		}
	}
	return nil
}

// Len is how many entries are stored (scheduled or claimed).
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}
