package handlers

import (
	"context"
	"errors"
	"fmt"

	"github.com/switchyard-go/switchyard/pkg/event"
)

// Event type names: the wire contract, stable across Go renames.
const (
	TypeOrderPlaced       = "orders.order_placed"
	TypeInventoryReserved = "orders.inventory_reserved"
	TypeInventoryRejected = "orders.inventory_rejected"
	TypeNotificationSent  = "orders.notification_sent"
)

// Item is one line of an order.
type Item struct {
	SKU        string `json:"sku"`
	Qty        int    `json:"qty"`
	PriceCents int64  `json:"price_cents"`
}

// OrderPlaced is published when a customer places an order.
type OrderPlaced struct {
	OrderID    string `json:"order_id"`
	CustomerID string `json:"customer_id"`
	Items      []Item `json:"items"`
	TotalCents int64  `json:"total_cents"`
	Email      string `json:"email"`
}

func (OrderPlaced) EventType() string  { return TypeOrderPlaced }
func (OrderPlaced) EventVersion() int  { return 1 }
func (e OrderPlaced) EventKey() string { return e.OrderID }

// ErrInvalidOrder is wrapped by every validation error of [OrderPlaced.Validate].
var ErrInvalidOrder = errors.New("invalid order")

// Validate reports every problem of the order at once, each wrapping
// [ErrInvalidOrder]. It does not check stock.
func (e OrderPlaced) Validate() error {
	var errs error
	bad := func(format string, args ...any) {
		errs = errors.Join(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidOrder}, args...)...))
	}
	if e.OrderID == "" {
		bad("order_id is empty")
	}
	if e.Email == "" {
		bad("email is empty")
	}
	if len(e.Items) == 0 {
		bad("no items")
	}
	var sum int64
	for i, it := range e.Items {
		if it.SKU == "" {
			bad("items[%d].sku is empty", i)
		}
		if it.Qty <= 0 {
			bad("items[%d].qty: %d, want > 0", i, it.Qty)
		}
		if it.PriceCents < 0 {
			bad("items[%d].price_cents: %d, want >= 0", i, it.PriceCents)
		}
		sum += int64(it.Qty) * it.PriceCents
	}
	if len(e.Items) > 0 && sum != e.TotalCents {
		bad("total_cents: %d, want %d (the sum of the items)", e.TotalCents, sum)
	}
	return errs
}

// Total returns the sum of qty × price over items.
func Total(items []Item) int64 {
	var sum int64
	for _, it := range items {
		sum += int64(it.Qty) * it.PriceCents
	}
	return sum
}

// InventoryReserved is published when every item of an order was reserved.
// It carries the customer's contact details for the confirmation.
type InventoryReserved struct {
	OrderID    string `json:"order_id"`
	CustomerID string `json:"customer_id"`
	Email      string `json:"email"`
	Items      []Item `json:"items"`
	TotalCents int64  `json:"total_cents"`
}

func (InventoryReserved) EventType() string  { return TypeInventoryReserved }
func (InventoryReserved) EventVersion() int  { return 1 }
func (e InventoryReserved) EventKey() string { return e.OrderID }

// InventoryRejected is published when an order cannot be reserved, e.g. an
// item is out of stock. Nothing was reserved.
type InventoryRejected struct {
	OrderID string `json:"order_id"`
	// Reason is human-readable, e.g. `out of stock: "sku-2" (want 3, have 1)`.
	Reason string `json:"reason"`
}

func (InventoryRejected) EventType() string  { return TypeInventoryRejected }
func (InventoryRejected) EventVersion() int  { return 1 }
func (e InventoryRejected) EventKey() string { return e.OrderID }

// NotificationSent is published once the customer was notified about an order.
type NotificationSent struct {
	OrderID string `json:"order_id"`
	// Channel is how the customer was notified, e.g. "email".
	Channel string `json:"channel"`
}

func (NotificationSent) EventType() string  { return TypeNotificationSent }
func (NotificationSent) EventVersion() int  { return 1 }
func (e NotificationSent) EventKey() string { return e.OrderID }

// Events returns a zero value of every event type of the order domain, for
// registering them with an event registry or declaring what a handler
// publishes.
func Events() []event.Event {
	return []event.Event{OrderPlaced{}, InventoryReserved{}, InventoryRejected{}, NotificationSent{}}
}

// Publisher publishes an event, returning once the broker confirmed it.
// The runtime's Service.Publish satisfies it through [PublisherFunc]:
//
//	pub := handlers.PublisherFunc(func(ctx context.Context, e event.Event) error {
//		return svc.Publish(ctx, e)
//	})
type Publisher interface {
	Publish(ctx context.Context, e event.Event) error
}

// PublisherFunc adapts a function to [Publisher].
type PublisherFunc func(ctx context.Context, e event.Event) error

// Publish calls f.
func (f PublisherFunc) Publish(ctx context.Context, e event.Event) error { return f(ctx, e) }
