// Package metrics counts what the runtime does: events published, messages
// handled, retried, dead-lettered, nacked and skipped as duplicates, with
// handling latency. [Stats] keeps in-process totals (the example prints them);
// [Prometheus] exports the same to a Prometheus registry. Both implement
// [Recorder]; [Multi] sends to several.
package metrics

import (
	"sync/atomic"
	"time"
)

// Recorder receives the runtime's events. Implementations must be safe for
// concurrent use and fast: they are called on the hot path.
type Recorder interface {
	Published(topic, eventType string)
	Handled(handler string, d time.Duration)
	Retried(handler string)
	DeadLettered(handler, reason string)
	Nacked(handler string)
	Duplicate(handler string)
}

// Stats keeps running totals. The zero value is ready to use.
type Stats struct {
	published, handled, retried, deadLettered, nacked, duplicates atomic.Int64
	batches, batched                                              atomic.Int64 // see BatchRecorder
}

// Snapshot is a copy of the totals at one moment.
type Snapshot struct {
	Published    int64 `json:"published"`
	Handled      int64 `json:"handled"`
	Retried      int64 `json:"retried"`
	DeadLettered int64 `json:"dead_lettered"`
	Nacked       int64 `json:"nacked"`
	Duplicates   int64 `json:"duplicates"`
	// Batches counts the batches batch handlers handled, and Batched the
	// messages in them (each attempt at a message counts).
	Batches int64 `json:"batches,omitempty"`
	Batched int64 `json:"batched,omitempty"`
}

func (s *Stats) Published(string, string)      { s.published.Add(1) }
func (s *Stats) Handled(string, time.Duration) { s.handled.Add(1) }
func (s *Stats) Retried(string)                { s.retried.Add(1) }
func (s *Stats) DeadLettered(string, string)   { s.deadLettered.Add(1) }
func (s *Stats) Nacked(string)                 { s.nacked.Add(1) }
func (s *Stats) Duplicate(string)              { s.duplicates.Add(1) }

// Snapshot returns the current totals.
func (s *Stats) Snapshot() Snapshot {
	return Snapshot{
		Published:    s.published.Load(),
		Handled:      s.handled.Load(),
		Retried:      s.retried.Load(),
		DeadLettered: s.deadLettered.Load(),
		Nacked:       s.nacked.Load(),
		Duplicates:   s.duplicates.Load(),
		Batches:      s.batches.Load(),
		Batched:      s.batched.Load(),
	}
}

// Multi sends every event to each recorder in turn.
type Multi []Recorder

func (m Multi) Published(t, e string) {
	for _, r := range m {
		r.Published(t, e)
	}
}
func (m Multi) Handled(h string, d time.Duration) {
	for _, r := range m {
		r.Handled(h, d)
	}
}
func (m Multi) Retried(h string) {
	for _, r := range m {
		r.Retried(h)
	}
}
func (m Multi) DeadLettered(h, reason string) {
	for _, r := range m {
		r.DeadLettered(h, reason)
	}
}
func (m Multi) Nacked(h string) {
	for _, r := range m {
		r.Nacked(h)
	}
}
func (m Multi) Duplicate(h string) {
	for _, r := range m {
		r.Duplicate(h)
	}
}
