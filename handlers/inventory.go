package handlers

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/failure"
)

// Inventory is an in-memory stock of items by SKU. It reserves whole orders
// (every item or none) and remembers each order's outcome, so a redelivered
// order gets the same answer and reserves nothing twice. It is safe for
// concurrent use.
type Inventory struct {
	mu       sync.Mutex
	stock    map[string]int
	outcomes map[string]event.Event // by order id: InventoryReserved or InventoryRejected
}

// NewInventory returns an inventory holding a copy of stock (units by SKU).
// A SKU that is not in stock has none.
func NewInventory(stock map[string]int) *Inventory {
	return &Inventory{stock: maps.Clone(stock), outcomes: map[string]event.Event{}}
}

// Available returns the units of sku in stock and not reserved.
func (inv *Inventory) Available(sku string) int {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return inv.stock[sku]
}

// Reserve decides an order: it validates it, then reserves every item and
// returns [InventoryReserved], or reserves nothing and returns
// [InventoryRejected] when an item is short. An invalid order returns a
// permanent error wrapping [ErrInvalidOrder] (see [failure.IsPermanent]).
// Reserving an order id again returns the first outcome unchanged.
func (inv *Inventory) Reserve(_ context.Context, e OrderPlaced) (event.Event, error) {
	if err := e.Validate(); err != nil {
		return nil, failure.Permanent(fmt.Errorf("handlers: order %q: %w", e.OrderID, err))
	}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if out, ok := inv.outcomes[e.OrderID]; ok {
		return out, nil
	}
	// The same SKU may appear on several lines: sum before checking.
	want := map[string]int{}
	for _, it := range e.Items {
		want[it.SKU] += it.Qty
	}
	var short []string
	for _, sku := range slices.Sorted(maps.Keys(want)) {
		if have := inv.stock[sku]; have < want[sku] {
			short = append(short, fmt.Sprintf("%q (want %d, have %d)", sku, want[sku], have))
		}
	}
	var out event.Event
	if len(short) > 0 {
		out = InventoryRejected{OrderID: e.OrderID, Reason: "out of stock: " + strings.Join(short, ", ")}
	} else {
		for sku, n := range want {
			inv.stock[sku] -= n
		}
		out = InventoryReserved{
			OrderID:    e.OrderID,
			CustomerID: e.CustomerID,
			Email:      e.Email,
			Items:      slices.Clone(e.Items),
			TotalCents: e.TotalCents,
		}
	}
	inv.outcomes[e.OrderID] = out
	return out, nil
}

// Handler returns the handler of [OrderPlaced]: it reserves the order and
// publishes the outcome with p. It publishes [InventoryReserved] or
// [InventoryRejected]; declare both.
func (inv *Inventory) Handler(p Publisher) func(context.Context, OrderPlaced) error {
	return func(ctx context.Context, e OrderPlaced) error {
		out, err := inv.Reserve(ctx, e)
		if err != nil {
			return err
		}
		return p.Publish(ctx, out)
	}
}
