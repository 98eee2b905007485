package handlers

import (
	"context"
	"maps"
	"sync"

	"github.com/switchyard-go/switchyard/pkg/event"
)

// Analytics counts events by type. It counts deliveries: an event the broker
// delivers twice is counted twice. It is safe for concurrent use; the zero
// value is ready to use.
type Analytics struct {
	mu     sync.Mutex
	counts map[string]int
}

// NewAnalytics returns empty counts.
func NewAnalytics() *Analytics { return &Analytics{} }

// Record counts e.
func (a *Analytics) Record(e event.Event) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.counts == nil {
		a.counts = map[string]int{}
	}
	a.counts[e.EventType()]++
}

// Counts returns a copy of the counts, by event type name.
func (a *Analytics) Counts() map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := maps.Clone(a.counts)
	if out == nil {
		out = map[string]int{}
	}
	return out
}

// Count returns a handler of events of type T that records them in a.
// Register one per event type, in one consumer group.
func Count[T event.Event](a *Analytics) func(context.Context, T) error {
	return func(_ context.Context, e T) error {
		a.Record(e)
		return nil
	}
}
