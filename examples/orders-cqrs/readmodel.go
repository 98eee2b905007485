package main

import (
	"context"
	"sync"
	"time"

	"github.com/switchyard-go/switchyard/pkg/event"
)

// Summary is one row of the orderSummaries read model: what a reader of
// an order wants, flat, without replaying its events.
type Summary struct {
	OrderID    string     `json:"order_id"`
	CustomerID string     `json:"customer_id"`
	Status     string     `json:"status"`
	TotalCents int64      `json:"total_cents"`
	ItemCount  int        `json:"item_count"`
	PlacedAt   *time.Time `json:"placed_at,omitempty"`
	PaidAt     *time.Time `json:"paid_at,omitempty"`
	ShippedAt  *time.Time `json:"shipped_at,omitempty"`
	// Version is the order stream's version the row reflects: a client
	// that got version N from a command waits for Version >= N to read
	// its own write.
	Version int `json:"version"`
}

// summaryTable is where summaries are kept: in memory or in PostgreSQL.
// Every write names its target, the table a projection writes to, so that
// a rebuild can fill a new one while readers keep reading the old.
type summaryTable interface {
	// create prepares an empty target.
	create(ctx context.Context, target string) error
	// drop removes a target readers no longer use.
	drop(ctx context.Context, target string) error
	// apply folds one event of an order into its row in target.
	apply(ctx context.Context, target string, env event.Envelope, e event.Event) error
	// get reads an order's row from target.
	get(ctx context.Context, target, orderID string) (Summary, bool, error)
}

// foldSummary applies one event to a row; the row's version counts the
// order's events, which the read model sees each once and in stream order.
func foldSummary(s Summary, env event.Envelope, e event.Event) Summary {
	t := env.Time.UTC()
	switch e := e.(type) {
	case OrderPlaced:
		s = Summary{OrderID: e.OrderID, CustomerID: e.CustomerID, Status: StatusPlaced, TotalCents: e.TotalCents, PlacedAt: &t}
		for _, it := range e.Items {
			s.ItemCount += it.Qty
		}
	case OrderPaid:
		s.Status, s.PaidAt = StatusPaid, &t
	case OrderShipped:
		s.Status, s.ShippedAt = StatusShipped, &t
	}
	s.Version++
	return s
}

// memoryTable keeps summaries in maps, one per target.
type memoryTable struct {
	mu      sync.RWMutex
	targets map[string]map[string]Summary
}

func newMemoryTable() *memoryTable { return &memoryTable{targets: map[string]map[string]Summary{}} }

func (m *memoryTable) create(_ context.Context, target string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.targets[target] = map[string]Summary{}
	return nil
}

func (m *memoryTable) drop(_ context.Context, target string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.targets, target)
	return nil
}

func (m *memoryTable) apply(_ context.Context, target string, env event.Envelope, e event.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	rows := m.targets[target]
	if rows == nil {
		rows = map[string]Summary{}
		m.targets[target] = rows
	}
	rows[env.Key] = foldSummary(rows[env.Key], env, e) // the key is the stream: the order
	return nil
}

func (m *memoryTable) get(_ context.Context, target, orderID string) (Summary, bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	s, ok := m.targets[target][orderID]
	return s, ok, nil
}
