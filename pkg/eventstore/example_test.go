package eventstore_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/eventstore"
)

type OrderPlaced struct {
	OrderID string  `json:"order_id"`
	Total   float64 `json:"total"`
}

func (OrderPlaced) EventType() string { return "orders.order_placed" }
func (OrderPlaced) EventVersion() int { return 1 }

type OrderPaid struct {
	OrderID string `json:"order_id"`
}

func (OrderPaid) EventType() string { return "orders.order_paid" }
func (OrderPaid) EventVersion() int { return 1 }

type Order struct {
	Status string
	Total  float64
}

func applyOrder(o Order, e event.Event) Order {
	switch e := e.(type) {
	case OrderPlaced:
		o.Status, o.Total = "placed", e.Total
	case OrderPaid:
		o.Status = "paid"
	}
	return o
}

// An order aggregate saved, loaded, changed, and a stale save refused.
func Example() {
	ctx := context.Background()
	dec := eventstore.NewDecoder(nil, nil)
	_ = eventstore.Register[OrderPlaced](dec)
	_ = eventstore.Register[OrderPaid](dec)
	repo := &eventstore.Repository[Order]{
		Store:   eventstore.NewMemory(eventstore.Encoder{Source: "orders"}),
		Decoder: dec,
		Apply:   applyOrder,
	}

	a := repo.New("order-42")
	a.Record(OrderPlaced{OrderID: "order-42", Total: 9.5})
	if err := repo.Save(ctx, a); err != nil {
		panic(err)
	}

	first, _ := repo.Load(ctx, "order-42")
	second, _ := repo.Load(ctx, "order-42")
	first.Record(OrderPaid{OrderID: "order-42"})
	fmt.Println("first save:", repo.Save(ctx, first))
	second.Record(OrderPaid{OrderID: "order-42"})
	err := repo.Save(ctx, second)
	fmt.Println("second save conflicts:", errors.Is(err, eventstore.ErrConcurrencyConflict))

	o, _ := repo.Load(ctx, "order-42")
	fmt.Printf("%s %.2f at version %d\n", o.State.Status, o.State.Total, o.Version)
	// Output:
	// first save: <nil>
	// second save conflicts: true
	// paid 9.50 at version 2
}
