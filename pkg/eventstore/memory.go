package eventstore

import (
	"context"
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
}

var _ Store = (*Memory)(nil)

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
	if expectedVersion != AnyVersion && expectedVersion != cur {
		return ConflictError(streamID, expectedVersion, cur)
	}
	recs, err := m.enc.Encode(ctx, streamID, cur, events)
	if err != nil {
		return err
	}
	m.streams[streamID] = append(m.streams[streamID], recs...)
	return nil
}

// Load implements [Store].
func (m *Memory) Load(ctx context.Context, streamID string) ([]Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	recs := slices.Clone(m.streams[streamID])
	for i := range recs {
		recs[i].Data = slices.Clone(recs[i].Data)
	}
	return recs, nil
}
