package outbox

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"

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
}

var (
	_ Store = (*MemoryStore)(nil)
	_ Waker = (*MemoryStore)(nil)
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
		})
	}
	for _, l := range s.listeners {
		select {
		case l <- struct{}{}:
		default:
		}
	}
	return nil
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
	b := &memBatch{s: s, marks: map[int64]bool{}, failed: map[int64]string{}}
	blocked := map[string]bool{}
	for _, r := range s.recs {
		if len(b.recs) == limit {
			break
		}
		if r.locked || (r.key != "" && blocked[r.key]) {
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
	failed map[int64]string
	done   bool
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

func (b *memBatch) MarkFailed(_ context.Context, id int64, cause error) error {
	if b.done {
		return errBatchEnded
	}
	msg := ""
	if cause != nil {
		msg = cause.Error()
	}
	b.failed[id] = msg
	return nil
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
	for _, r := range b.recs {
		r.locked = false
		if msg, ok := b.failed[r.id]; ok && commit {
			r.attempts++
			r.lastErr = msg
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
