package handlers_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/switchyard-go/switchyard/handlers"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/service"
	"github.com/switchyard-go/switchyard/switchyardtest"
)

// Typed handlers on the runtime, tested with switchyardtest: the inventory
// reserves stock and publishes the outcome, the status view follows each
// order.
func Example() {
	t := switchyardtest.Standalone() // in a test, pass t
	defer t.Close()
	inventory := handlers.NewInventory(map[string]int{"widget": 5})
	view := handlers.NewOrderStatus()
	h := switchyardtest.Start(t, func(svc *service.Service) error {
		pub := handlers.PublisherFunc(func(ctx context.Context, e event.Event) error { return svc.Publish(ctx, e) })
		return errors.Join(
			service.Handle(svc, "inventory.reserve", inventory.Handler(pub),
				service.Group("inventory"),
				service.Publishes(handlers.InventoryReserved{}, handlers.InventoryRejected{})),
			service.Handle(svc, "status.placed", view.Placed, service.Group("status")),
			service.Handle(svc, "status.reserved", view.Reserved, service.Group("status")),
			service.Handle(svc, "status.rejected", view.Rejected, service.Group("status")),
		)
	})

	widgets := func(n int) []handlers.Item { return []handlers.Item{{SKU: "widget", Qty: n, PriceCents: 250}} }
	h.Publish(handlers.OrderPlaced{OrderID: "o-1", Items: widgets(3), TotalCents: 750, Email: "ada@example.com"})
	h.Publish(handlers.OrderPlaced{OrderID: "o-2", Items: widgets(9), TotalCents: 2250, Email: "bob@example.com"}) // more than in stock
	h.WaitIdle()

	fmt.Println("o-1:", view.Status("o-1"))
	fmt.Println("o-2:", view.Status("o-2"))
	fmt.Println("widgets left:", inventory.Available("widget"))
	// Output:
	// o-1: reserved
	// o-2: rejected
	// widgets left: 2
}
