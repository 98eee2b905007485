package main

import (
	"errors"
	"fmt"

	"github.com/switchyard-go/switchyard/pkg/command"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/eventstore"
)

// Item is one line of an order.
type Item struct {
	SKU        string `json:"sku"`
	Qty        int    `json:"qty"`
	PriceCents int64  `json:"price_cents"`
}

// Commands: what a client asks for. Each names its order by its key, so
// that commands to one order keep their order on the broker and
// command.OnAggregate knows which stream to load.

// PlaceOrder asks for a new order.
type PlaceOrder struct {
	OrderID    string `json:"order_id"`
	CustomerID string `json:"customer_id"`
	Items      []Item `json:"items"`
}

func (PlaceOrder) EventType() string  { return "orders.place_order" }
func (PlaceOrder) EventVersion() int  { return 1 }
func (c PlaceOrder) EventKey() string { return c.OrderID }

// PayOrder asks for an order to be paid in full.
type PayOrder struct {
	OrderID string `json:"order_id"`
}

func (PayOrder) EventType() string  { return "orders.pay_order" }
func (PayOrder) EventVersion() int  { return 1 }
func (c PayOrder) EventKey() string { return c.OrderID }

// ShipOrder asks for a paid order to be shipped.
type ShipOrder struct {
	OrderID string `json:"order_id"`
}

func (ShipOrder) EventType() string  { return "orders.ship_order" }
func (ShipOrder) EventVersion() int  { return 1 }
func (c ShipOrder) EventKey() string { return c.OrderID }

// Events: what happened, stored in the order's stream.

// eventsTopic is where the events go when the event store publishes them
// (through the outbox).
const eventsTopic = "orders.events"

// OrderPlaced records a new order.
type OrderPlaced struct {
	OrderID    string `json:"order_id"`
	CustomerID string `json:"customer_id"`
	Items      []Item `json:"items"`
	TotalCents int64  `json:"total_cents"`
}

func (OrderPlaced) EventType() string  { return "orders.order_placed" }
func (OrderPlaced) EventVersion() int  { return 1 }
func (OrderPlaced) EventTopic() string { return eventsTopic }

// OrderPaid records a payment of the order's total.
type OrderPaid struct {
	OrderID     string `json:"order_id"`
	AmountCents int64  `json:"amount_cents"`
}

func (OrderPaid) EventType() string  { return "orders.order_paid" }
func (OrderPaid) EventVersion() int  { return 1 }
func (OrderPaid) EventTopic() string { return eventsTopic }

// OrderShipped records that the order left the warehouse.
type OrderShipped struct {
	OrderID string `json:"order_id"`
}

func (OrderShipped) EventType() string  { return "orders.order_shipped" }
func (OrderShipped) EventVersion() int  { return 1 }
func (OrderShipped) EventTopic() string { return eventsTopic }

// Order statuses.
const (
	StatusNew     = "" // no events yet
	StatusPlaced  = "placed"
	StatusPaid    = "paid"
	StatusShipped = "shipped"
)

// Order is the OrderAggregate's state: the fold of its events. Only what
// the rules need is kept; the read model keeps what readers want.
type Order struct {
	Status     string
	TotalCents int64
}

// applyOrder folds one event into the state. It never fails: the rules
// are checked before an event is recorded.
func applyOrder(o Order, e event.Event) Order {
	switch e := e.(type) {
	case OrderPlaced:
		o.Status, o.TotalCents = StatusPlaced, e.TotalCents
	case OrderPaid:
		o.Status = StatusPaid
	case OrderShipped:
		o.Status = StatusShipped
	}
	return o
}

// The rules. The HTTP API maps errInvalid to 422, errUnknownOrder to 404
// and the other rejections to 409.
var (
	errInvalid        = errors.New("invalid order")
	errUnknownOrder   = errors.New("no such order")
	errEmptyOrder     = fmt.Errorf("%w: an order needs at least one item", errInvalid)
	errAlreadyPlaced  = errors.New("order already placed")
	errAlreadyPaid    = errors.New("order already paid: can't pay twice")
	errNotPaid        = errors.New("order not paid: can't ship before payment")
	errAlreadyShipped = errors.New("order already shipped")
)

func total(items []Item) int64 {
	var t int64
	for _, it := range items {
		t += int64(it.Qty) * it.PriceCents
	}
	return t
}

// decidePlace checks a PlaceOrder against the order and records what it
// does. Like the other decide functions it may run more than once (after a
// version conflict), so it only reads the aggregate and records events.
func decidePlace(a *eventstore.Aggregate[Order], c PlaceOrder) error {
	if a.State.Status != StatusNew {
		return command.Reject(errAlreadyPlaced)
	}
	if len(c.Items) == 0 {
		return command.Reject(errEmptyOrder)
	}
	for i, it := range c.Items {
		if it.SKU == "" || it.Qty < 1 || it.PriceCents < 0 {
			return command.Reject(fmt.Errorf("%w: items[%d]: sku %q qty %d price_cents %d, want a sku, qty >= 1 and price_cents >= 0",
				errInvalid, i, it.SKU, it.Qty, it.PriceCents))
		}
	}
	if c.CustomerID == "" {
		return command.Reject(fmt.Errorf("%w: customer_id is required", errInvalid))
	}
	a.Record(OrderPlaced{OrderID: c.OrderID, CustomerID: c.CustomerID, Items: c.Items, TotalCents: total(c.Items)})
	return nil
}

func decidePay(a *eventstore.Aggregate[Order], c PayOrder) error {
	switch a.State.Status {
	case StatusNew:
		return command.Reject(errUnknownOrder)
	case StatusPaid, StatusShipped:
		return command.Reject(errAlreadyPaid)
	}
	a.Record(OrderPaid{OrderID: c.OrderID, AmountCents: a.State.TotalCents})
	return nil
}

func decideShip(a *eventstore.Aggregate[Order], c ShipOrder) error {
	switch a.State.Status {
	case StatusNew:
		return command.Reject(errUnknownOrder)
	case StatusPlaced:
		return command.Reject(errNotPaid)
	case StatusShipped:
		return command.Reject(errAlreadyShipped)
	}
	a.Record(OrderShipped{OrderID: c.OrderID})
	return nil
}

// newDecoder registers the order's events, for the repository and the
// read model.
func newDecoder(r *event.Registry) (*eventstore.Decoder, error) {
	dec := eventstore.NewDecoder(r, nil)
	return dec, errors.Join(
		eventstore.Register[OrderPlaced](dec),
		eventstore.Register[OrderPaid](dec),
		eventstore.Register[OrderShipped](dec),
	)
}
