package outbox

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// MemoryStore is an in-process [Store] for tests and the quick start. Its
// [MemoryStore.Add] is atomic on its own but joins no database transaction,
// so it does not solve the dual write; use a database store in production.
type MemoryStore struct {
	mu        sync.Mutex
	nextID    int64
	recs      []*memRecord // insertion order; published records are removed
	listeners []chan struct{}
}

type memRecord struct {
	id       int64
	topic    string
	key      string
	uuid     string
	metadata message.Metadata
	payload  []byte
	attempts int
	lastErr  string
	locked   bool
	created  time.Time
	retryAt  time.Time // zero: due
	parkedAt time.Time // zero: not parked
}

var (
	_ Store  = (*MemoryStore)(nil)
	_ Waker  = (*MemoryStore)(nil)
	_ Parker = (*MemoryStore)(nil)
)

// NewMemoryStore returns an empty store.
func NewMemoryStore() *MemoryStore { return &MemoryStore{} }

// Add stores msgs, all or none.
func (s *MemoryStore) Add(msgs ...Message) error {
	for _, m := range msgs {
		if err := m.Validate(); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range msgs {
		s.nextID++
		s.recs = append(s.recs, &memRecord{
			id: s.nextID, topic: m.Topic, key: m.Key(), uuid: m.Message.UUID,
			metadata: maps.Clone(m.Message.Metadata), payload: append([]byte(nil), m.Message.Payload...),
			created: time.Now(),
		})
	}
	s.wakeLocked()
	return nil
}

func (s *MemoryStore) wakeLocked() {
	for _, l := range s.listeners {
		select {
		case l <- struct{}{}:
		default:
		}
	}
}

// Parked implements [Parker].
func (s *MemoryStore) Parked(_ context.Context, limit int) ([]Parked, error) {
	if limit < 1 {
		return nil, fmt.Errorf("outbox: parked: limit %d, want >= 1", limit)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Parked
	for i, r := range s.recs {
		if r.parkedAt.IsZero() {
			continue
		}
		if len(out) == limit {
			break
		}
		p := Parked{ID: r.id, Topic: r.topic, Key: r.key, MessageID: r.uuid, Attempts: r.attempts,
			LastError: r.lastErr, CreatedAt: r.created, ParkedAt: r.parkedAt}
		if r.key != "" {
			for _, h := range s.recs[i+1:] {
				if h.key == r.key {
					p.Held++
				}
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// Unpark implements [Parker].
func (s *MemoryStore) Unpark(_ context.Context, ids ...int64) (int, error) {
	want := map[int64]bool{}
	for _, id := range ids {
		want[id] = true
	}
	return s.unpark(func(id int64) bool { return want[id] }), nil
}

// UnparkAll implements [Parker].
func (s *MemoryStore) UnparkAll(context.Context) (int, error) {
	return s.unpark(func(int64) bool { return true }), nil
}

func (s *MemoryStore) unpark(match func(int64) bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.recs {
		if !r.parkedAt.IsZero() && match(r.id) {
			r.parkedAt, r.retryAt, r.attempts = time.Time{}, time.Time{}, 0
			n++
		}
	}
	if n > 0 {
		s.wakeLocked()
	}
	return n
}

// Pending returns how many records are not published yet.
func (s *MemoryStore) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.recs)
}

// Failures returns the failed attempts and the last error of the record
// with the given id, while it is unpublished.
func (s *MemoryStore) Failures(id int64) (attempts int, lastErr string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.recs {
		if r.id == id {
			return r.attempts, r.lastErr, true
		}
	}
	return 0, "", false
}

// Listen implements [Waker].
func (s *MemoryStore) Listen(ctx context.Context) (<-chan struct{}, error) {
	in := make(chan struct{}, 1)
	s.mu.Lock()
	s.listeners = append(s.listeners, in)
	s.mu.Unlock()
	out := make(chan struct{}, 1)
	go func() {
		defer close(out)
		defer func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			for i, l := range s.listeners {
				if l == in {
					s.listeners = append(s.listeners[:i], s.listeners[i+1:]...)
					break
				}
			}
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case <-in:
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}
	}()
	return out, nil
}

// Fetch implements [Store].
func (s *MemoryStore) Fetch(ctx context.Context, limit int) (Batch, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit < 1 {
		return nil, fmt.Errorf("outbox: fetch limit %d, want >= 1", limit)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b := &memBatch{s: s, marks: map[int64]bool{}, failed: map[int64]failure{}}
	blocked := map[string]bool{}
	now := time.Now()
	for _, r := range s.recs {
		if len(b.recs) == limit {
			break
		}
		waiting := !r.parkedAt.IsZero() || now.Before(r.retryAt)
		if r.locked || waiting || (r.key != "" && blocked[r.key]) {
			if r.key != "" {
				blocked[r.key] = true
			}
			continue
		}
		r.locked = true
		b.recs = append(b.recs, r)
		b.out = append(b.out, Record{
			ID: r.id, Topic: r.topic, Attempts: r.attempts,
			Message: &message.Message{UUID: r.uuid, Metadata: maps.Clone(r.metadata), Payload: append([]byte(nil), r.payload...)},
		})
	}
	return b, nil
}

type memBatch struct {
	s      *MemoryStore
	recs   []*memRecord
	out    []Record
	marks  map[int64]bool
	failed map[int64]failure
	done   bool
}

// failure is a failed publish, applied at commit.
type failure struct {
	msg     string
	retryIn time.Duration
	park    bool
}

var errBatchEnded = errors.New("outbox: batch already ended")

func (b *memBatch) Records() []Record { return b.out }

func (b *memBatch) MarkPublished(_ context.Context, ids ...int64) error {
	if b.done {
		return errBatchEnded
	}
	for _, id := range ids {
		b.marks[id] = true
	}
	return nil
}

func (b *memBatch) MarkFailed(_ context.Context, id int64, cause error, retryIn time.Duration) error {
	return b.markFailed(id, failure{msg: errText(cause), retryIn: retryIn})
}

func (b *memBatch) Park(_ context.Context, id int64, cause error) error {
	return b.markFailed(id, failure{msg: errText(cause), park: true})
}

func (b *memBatch) markFailed(id int64, f failure) error {
	if b.done {
		return errBatchEnded
	}
	b.failed[id] = f
	return nil
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func (b *memBatch) Commit(context.Context) error {
	if b.done {
		return errBatchEnded
	}
	b.end(true)
	return nil
}

func (b *memBatch) Rollback(context.Context) error {
	if !b.done {
		b.end(false)
	}
	return nil
}

func (b *memBatch) end(commit bool) {
	b.done = true
	s := b.s
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for _, r := range b.recs {
		r.locked = false
		if f, ok := b.failed[r.id]; ok && commit {
			r.attempts++
			r.lastErr = f.msg
			if f.park {
				r.parkedAt, r.retryAt = now, time.Time{}
			} else {
				r.retryAt = now.Add(f.retryIn)
			}
		}
	}
	if !commit || len(b.marks) == 0 {
		return
	}
	kept := s.recs[:0]
	for _, r := range s.recs {
		if !b.marks[r.id] {
			kept = append(kept, r)
		}
	}
	clear(s.recs[len(kept):])
	s.recs = kept
}
