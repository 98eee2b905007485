package idempotency

import (
	"container/list"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"
)

// MemoryConfig configures [NewMemory]. It is what a configuration file can
// say under "idempotency.memory".
type MemoryConfig struct {
	// MaxEntries bounds how many keys are kept. When full, the oldest
	// completed or expired key is forgotten first (FIFO by last change);
	// keys claimed under an unexpired lease are never evicted, so the bound
	// can be exceeded by at most the number of messages in flight.
	// Default 100000.
	MaxEntries int `yaml:"max_entries"`
	// TTL is how long a completed key is remembered; a redelivery later
	// than that is handled again. Default 24h.
	TTL time.Duration `yaml:"ttl"`
}

// Defaults for [MemoryConfig].
const (
	DefaultMaxEntries = 100_000
	DefaultTTL        = 24 * time.Hour
)

func (c *MemoryConfig) setDefaults() {
	if c.MaxEntries == 0 {
		c.MaxEntries = DefaultMaxEntries
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
}

// Validate reports every invalid field at once.
func (c MemoryConfig) Validate() error {
	var err error
	if c.MaxEntries < 0 {
		err = errors.Join(err, fmt.Errorf("idempotency.memory.max_entries: %d, want >= 1 (0 means the default %d)", c.MaxEntries, DefaultMaxEntries))
	}
	if c.TTL < 0 {
		err = errors.Join(err, fmt.Errorf("idempotency.memory.ttl: %s, want > 0 (0 means the default %s)", c.TTL, DefaultTTL))
	}
	return err
}

// MemoryOption configures what only code can give a [Memory] store.
type MemoryOption func(*Memory)

// WithClock replaces the system clock (tests).
func WithClock(c Clock) MemoryOption { return func(m *Memory) { m.clock = c } }

// Memory is a bounded in-process [Store]. It dedupes redeliveries to one
// process only and forgets everything on restart: use a durable store
// (adapters/postgres) when several instances consume the same group.
type Memory struct {
	cfg   MemoryConfig
	clock Clock

	mu      sync.Mutex
	entries map[string]*list.Element // of *entry
	order   *list.List               // oldest change first
}

type entry struct {
	key   string
	state State
	token string
	until time.Time // lease end (Claimed) or forget time (Completed)
}

// NewMemory returns an in-memory store; zero config fields take their defaults.
func NewMemory(cfg MemoryConfig, opts ...MemoryOption) (*Memory, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Memory{cfg: cfg, clock: systemClock{}, entries: map[string]*list.Element{}, order: list.New()}
	for _, o := range opts {
		o(m)
	}
	return m, nil
}

// Len returns how many keys are kept.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}

// Claim implements [Store].
func (m *Memory) Claim(_ context.Context, key string, lease time.Duration) (Claim, error) {
	now := m.clock.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.entries[key]; ok {
		e := el.Value.(*entry)
		if now.Before(e.until) {
			if e.state == Completed {
				return Claim{State: Completed}, nil
			}
			return Claim{State: InProgress, Until: e.until}, nil
		}
		// Expired: a forgotten completion or a dead holder's lease.
		m.order.Remove(el)
		delete(m.entries, key)
	}
	e := &entry{key: key, state: Claimed, token: newToken(), until: now.Add(lease)}
	m.entries[key] = m.order.PushBack(e)
	m.evict(now)
	return Claim{State: Claimed, Token: e.token, Until: e.until}, nil
}

// evict forgets the oldest keys that are not under an unexpired claim until
// the bound holds.
func (m *Memory) evict(now time.Time) {
	for el := m.order.Front(); el != nil && len(m.entries) > m.cfg.MaxEntries; {
		next := el.Next()
		e := el.Value.(*entry)
		if e.state != Claimed || !now.Before(e.until) {
			m.order.Remove(el)
			delete(m.entries, e.key)
		}
		el = next
	}
}

// Complete implements [Store].
func (m *Memory) Complete(_ context.Context, key, token string) error {
	now := m.clock.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.entries[key]
	if !ok || el.Value.(*entry).token != token || el.Value.(*entry).state != Claimed {
		return fmt.Errorf("idempotency: complete %q: %w", key, ErrLeaseLost)
	}
	e := el.Value.(*entry)
	e.state, e.until = Completed, now.Add(m.cfg.TTL)
	m.order.MoveToBack(el)
	return nil
}

// Extend implements [Extender]. A claim whose lease ended can still be
// extended by its holder as long as nobody took the key over.
func (m *Memory) Extend(_ context.Context, key, token string, lease time.Duration) (time.Time, error) {
	now := m.clock.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.entries[key]
	if !ok || el.Value.(*entry).token != token || el.Value.(*entry).state != Claimed {
		return time.Time{}, fmt.Errorf("idempotency: extend %q: %w", key, ErrLeaseLost)
	}
	e := el.Value.(*entry)
	e.until = now.Add(lease)
	return e.until, nil
}

// Release implements [Store].
func (m *Memory) Release(_ context.Context, key, token string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.entries[key]
	if !ok || el.Value.(*entry).token != token || el.Value.(*entry).state != Claimed {
		return fmt.Errorf("idempotency: release %q: %w", key, ErrLeaseLost)
	}
	m.order.Remove(el)
	delete(m.entries, key)
	return nil
}

func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
