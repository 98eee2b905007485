package handlers_test

import (
	"context"
	"fmt"
	"time"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/handlers"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// Typed handlers on the in-memory broker: the inventory reserves stock and
// publishes the outcome, the status view follows each order.
func Example() {
	b, err := memory.New(memory.Config{}, nil)
	if err != nil {
		panic(err)
	}
	defer b.Close()
	svc := service.New(b)
	pub := handlers.PublisherFunc(func(ctx context.Context, e event.Event) error { return svc.Publish(ctx, e) })

	inventory := handlers.NewInventory(map[string]int{"widget": 5})
	view := handlers.NewOrderStatus()
	for _, err := range []error{
		service.Handle(svc, "inventory.reserve", inventory.Handler(pub),
			service.Group("inventory"),
			service.Publishes(handlers.InventoryReserved{}, handlers.InventoryRejected{})),
		service.Handle(svc, "status.placed", view.Placed, service.Group("status")),
		service.Handle(svc, "status.reserved", view.Reserved, service.Group("status")),
		service.Handle(svc, "status.rejected", view.Rejected, service.Group("status")),
	} {
		if err != nil {
			panic(err)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	<-svc.Ready()

	widgets := func(n int) []handlers.Item { return []handlers.Item{{SKU: "widget", Qty: n, PriceCents: 250}} }
	for _, o := range []handlers.OrderPlaced{
		{OrderID: "o-1", Items: widgets(3), TotalCents: 750, Email: "ada@example.com"},
		{OrderID: "o-2", Items: widgets(9), TotalCents: 2250, Email: "bob@example.com"}, // more than in stock
	} {
		if err := svc.Publish(ctx, o); err != nil {
			panic(err)
		}
	}
	if err := b.WaitIdle(ctx, 50*time.Millisecond); err != nil {
		panic(err)
	}
	cancel()
	if err := <-done; err != nil {
		panic(err)
	}

	fmt.Println("o-1:", view.Status("o-1"))
	fmt.Println("o-2:", view.Status("o-2"))
	fmt.Println("widgets left:", inventory.Available("widget"))
	// Output:
	// o-1: reserved
	// o-2: rejected
	// widgets left: 2
}
