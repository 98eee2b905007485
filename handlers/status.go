package handlers

import (
	"context"
	"sync"
)

// Status is where an order stands.
type Status string

// Statuses, in the order an order moves through them. Reserved and Rejected
// are alternatives.
const (
	StatusUnknown  Status = ""
	StatusPlaced   Status = "placed"
	StatusReserved Status = "reserved"
	StatusRejected Status = "rejected"
	StatusNotified Status = "notified"
)

// OrderStatus is a read model of every order's status, built from the order
// events. Each event type has its own topic, so an order's events may arrive
// in any order (or twice): the view only ever moves an order forward, and
// ends in the same state whatever the arrival order. It is safe for
// concurrent use.
type OrderStatus struct {
	mu     sync.Mutex
	orders map[string]*orderState
}

type orderState struct {
	placed, reserved, rejected, notified bool
}

func (s *orderState) status() Status {
	switch {
	case s.notified:
		return StatusNotified
	case s.rejected:
		return StatusRejected
	case s.reserved:
		return StatusReserved
	case s.placed:
		return StatusPlaced
	}
	return StatusUnknown
}

// NewOrderStatus returns an empty view.
func NewOrderStatus() *OrderStatus { return &OrderStatus{orders: map[string]*orderState{}} }

func (v *OrderStatus) update(orderID string, f func(*orderState)) {
	v.mu.Lock()
	defer v.mu.Unlock()
	s, ok := v.orders[orderID]
	if !ok {
		s = &orderState{}
		v.orders[orderID] = s
	}
	f(s)
}

// Placed handles [OrderPlaced].
func (v *OrderStatus) Placed(_ context.Context, e OrderPlaced) error {
	v.update(e.OrderID, func(s *orderState) { s.placed = true })
	return nil
}

// Reserved handles [InventoryReserved].
func (v *OrderStatus) Reserved(_ context.Context, e InventoryReserved) error {
	v.update(e.OrderID, func(s *orderState) { s.reserved = true })
	return nil
}

// Rejected handles [InventoryRejected].
func (v *OrderStatus) Rejected(_ context.Context, e InventoryRejected) error {
	v.update(e.OrderID, func(s *orderState) { s.rejected = true })
	return nil
}

// Notified handles [NotificationSent].
func (v *OrderStatus) Notified(_ context.Context, e NotificationSent) error {
	v.update(e.OrderID, func(s *orderState) { s.notified = true })
	return nil
}

// Status returns the order's status, [StatusUnknown] for an order the view
// has not seen.
func (v *OrderStatus) Status(orderID string) Status {
	v.mu.Lock()
	defer v.mu.Unlock()
	if s, ok := v.orders[orderID]; ok {
		return s.status()
	}
	return StatusUnknown
}

// Counts returns how many orders are in each status.
func (v *OrderStatus) Counts() map[Status]int {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := map[Status]int{}
	for _, s := range v.orders {
		out[s.status()]++
	}
	return out
}
