package eventstore

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/switchyard-go/switchyard/pkg/event"
)

// Memory is an in-process [Store] for tests and the quick start. It is safe
// for concurrent use; its streams are lost with the process.
type Memory struct {
	enc     Encoder
	mu      sync.RWMutex
	streams map[string][]Record
	all     []Record // every stream's records in append order; all[i].Position is i+1
}

var (
	_ Store        = (*Memory)(nil)
	_ AllReader    = (*Memory)(nil)
	_ StreamReader = (*Memory)(nil)
)

// NewMemory returns an empty store that encodes events with enc.
func NewMemory(enc Encoder) *Memory { return &Memory{enc: enc, streams: map[string][]Record{}} }

// Append implements [Store].
func (m *Memory) Append(ctx context.Context, streamID string, expectedVersion int, events ...event.Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(events) == 0 {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := len(m.streams[streamID])
	if cur > 0 && m.streams[streamID][cur-1].Envelope.Type == StreamDeletedType {
		return DeletedError(streamID)
	}
	if expectedVersion != AnyVersion && expectedVersion != cur {
		return ConflictError(streamID, expectedVersion, cur)
	}
	recs, err := m.enc.Encode(ctx, streamID, cur, events)
	if err != nil {
		return err
	}
	for i := range recs {
		recs[i].Position = int64(len(m.all) + i + 1)
	}
	m.streams[streamID] = append(m.streams[streamID], recs...)
	m.all = append(m.all, recs...)
	return nil
}

// ReadAll implements [AllReader]: appends are serialized, so positions are
// append order without gaps.
func (m *Memory) ReadAll(ctx context.Context, after int64, limit int, types ...string) ([]Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit < 1 {
		return nil, fmt.Errorf("eventstore: read all: limit %d, want >= 1", limit)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []Record
	for i := max(after, 0); i < int64(len(m.all)) && len(out) < limit; i++ {
		if len(types) == 0 || slices.Contains(types, m.all[i].Envelope.Type) {
			out = append(out, cloneRecord(m.all[i]))
		}
	}
	return out, nil
}

// Head implements [AllReader].
func (m *Memory) Head(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	return int64(len(m.all)), nil
}

// LoadAfter implements [StreamReader].
func (m *Memory) LoadAfter(ctx context.Context, streamID string, after int) ([]Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	recs := m.streams[streamID]
	recs = recs[min(max(after, 0), len(recs)):]
	out := make([]Record, len(recs))
	for i, r := range recs {
		out[i] = cloneRecord(r)
	}
	return out, nil
}

func cloneRecord(r Record) Record {
	r.Data = slices.Clone(r.Data)
	return r
}

// Load implements [Store].
func (m *Memory) Load(ctx context.Context, streamID string) ([]Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return m.LoadAfter(ctx, streamID, 0)
}
