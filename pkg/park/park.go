// Package park remembers which keys of a consumer group are parked behind a
// dead letter, for handlers with dead_letter_order: key: once a message of
// a key is dead-lettered, later messages of that key follow it to the
// dead-letter topic, so that replaying the key's dead letters restores its
// original order. A key stays parked until its first dead letter is handled
// successfully (replayed) or an operator releases it.
//
// [Memory] keeps parked keys in the process: a restart releases them.
// adapters/postgres has a durable Store shared by every instance of a
// service.
package park

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"
)

// Key is one parked key.
type Key struct {
	Group, Key string
	// MessageID is the id of the first dead-lettered message of the key:
	// the one to replay first.
	MessageID string
	// Since is when the key was parked.
	Since time.Time
}

// Store keeps parked keys. Implementations must be safe for concurrent use;
// durable ones are shared by every instance of a service.
type Store interface {
	// Park parks key of group behind messageID, unless it is parked
	// already; it returns the id the key is parked behind.
	Park(ctx context.Context, group, key, messageID string) (string, error)
	// Lookup returns the id the key is parked behind, if it is parked.
	Lookup(ctx context.Context, group, key string) (messageID string, parked bool, err error)
	// Release unparks the key; releasing a key that is not parked is no
	// error.
	Release(ctx context.Context, group, key string) error
	// List returns the parked keys of group ("" for every group), oldest
	// first.
	List(ctx context.Context, group string) ([]Key, error)
}

// Memory is a Store in process memory.
type Memory struct {
	mu   sync.Mutex
	keys map[[2]string]Key
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory { return &Memory{keys: map[[2]string]Key{}} }

// Park implements [Store].
func (m *Memory) Park(_ context.Context, group, key, messageID string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := [2]string{group, key}
	if p, ok := m.keys[k]; ok {
		return p.MessageID, nil
	}
	m.keys[k] = Key{Group: group, Key: key, MessageID: messageID, Since: time.Now()}
	return messageID, nil
}

// Lookup implements [Store].
func (m *Memory) Lookup(_ context.Context, group, key string) (string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.keys[[2]string{group, key}]
	return p.MessageID, ok, nil
}

// Release implements [Store].
func (m *Memory) Release(_ context.Context, group, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.keys, [2]string{group, key})
	return nil
}

// List implements [Store].
func (m *Memory) List(_ context.Context, group string) ([]Key, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Key
	for _, p := range m.keys {
		if group == "" || p.Group == group {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b Key) int {
		if c := a.Since.Compare(b.Since); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	return out, nil
}
