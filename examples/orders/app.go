package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/switchyard-go/switchyard/handlers"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// The orders placed are a pure function of their number, so every run
// with the same --orders gives the same summary.
const (
	invalidOrder     = 3  // has a line with quantity 0: dead-lettered at once
	flakyOrder       = 5  // its confirmation fails twice, then succeeds
	flakyFailures    = 2  // failed attempts of the flaky confirmation
	rejectEvery      = 10 // every tenth order asks for a discontinued item
	discontinuedSKU  = "sku-discontinued"
	flakyEmail       = "flaky@example.com"
	normalSKUs       = 5
	maxQtyPerSKU     = 4 // the largest quantity of one SKU in one order
	maxLinesPerOrder = 3 // < normalSKUs: the lines of an order have distinct SKUs
)

func orderID(i int) string { return fmt.Sprintf("order-%04d", i) }

// makeOrder returns order i (from 1).
func makeOrder(i int) handlers.OrderPlaced {
	var items []handlers.Item
	for j := range 1 + i%maxLinesPerOrder {
		n := (i+j)%normalSKUs + 1
		items = append(items, handlers.Item{SKU: fmt.Sprintf("sku-%d", n), Qty: 1 + (i+j)%maxQtyPerSKU, PriceCents: int64(n) * 199})
	}
	if i%rejectEvery == 0 {
		items = append(items, handlers.Item{SKU: discontinuedSKU, Qty: 1, PriceCents: 999})
	}
	o := handlers.OrderPlaced{
		OrderID:    orderID(i),
		CustomerID: fmt.Sprintf("customer-%d", i%17),
		Items:      items,
		TotalCents: handlers.Total(items),
		Email:      fmt.Sprintf("customer-%d@example.com", i%17),
	}
	if i == flakyOrder {
		o.Email = flakyEmail
	}
	if i == invalidOrder {
		o.Items[0].Qty = 0
		o.TotalCents = handlers.Total(o.Items)
	}
	return o
}

// initialStock has enough of every normal SKU for n orders and none of the
// discontinued one, so which orders are rejected never depends on the order
// in which they are handled.
func initialStock(n int) map[string]int {
	stock := map[string]int{discontinuedSKU: 0}
	for s := 1; s <= normalSKUs; s++ {
		stock[fmt.Sprintf("sku-%d", s)] = n * maxQtyPerSKU
	}
	return stock
}

// expected is what a run of n orders must reach.
type expected struct {
	orders, invalid, reserved, rejected, flaky int
	published, handled, retried, deadLettered  int64
}

func expect(n int) expected {
	e := expected{orders: n}
	for i := 1; i <= n; i++ {
		o := makeOrder(i)
		switch {
		case o.Validate() != nil:
			e.invalid++
		case i%rejectEvery == 0:
			e.rejected++
		default:
			e.reserved++
			if o.Email == flakyEmail {
				e.flaky++
			}
		}
	}
	valid := n - e.invalid
	// OrderPlaced, one inventory outcome per valid order, one NotificationSent per reservation.
	e.published = int64(n + valid + e.reserved)
	e.handled = int64(valid + // inventory
		e.reserved + // notifications
		n + e.reserved + e.rejected + // analytics
		n + e.reserved + e.rejected + e.reserved) // order-status
	e.retried = int64(e.flaky * flakyFailures)
	e.deadLettered = int64(e.invalid)
	return e
}

// app is the order flow wired onto one service.
type app struct {
	svc       *service.Service
	n         int
	logger    *slog.Logger
	inventory *handlers.Inventory
	analytics *handlers.Analytics
	status    *handlers.OrderStatus
	notifier  handlers.Notifier
}

func newApp(svc *service.Service, n int, logger *slog.Logger) *app {
	return &app{
		svc:       svc,
		n:         n,
		logger:    logger,
		inventory: handlers.NewInventory(initialStock(n)),
		analytics: handlers.NewAnalytics(),
		status:    handlers.NewOrderStatus(),
		notifier: flakyNotifier{
			next:     handlers.NewLoggingNotifier(logger),
			to:       flakyEmail,
			failures: flakyFailures,
		},
	}
}

// Publish makes the service a handlers.Publisher.
func (a *app) Publish(ctx context.Context, e event.Event) error { return a.svc.Publish(ctx, e) }

// register subscribes every handler. Handler names key per-handler policy
// in a configuration file's "handlers" section.
func (a *app) register() error {
	s := a.svc
	regs := []error{
		service.Handle(s, "inventory.reserve", a.inventory.Handler(a),
			service.Group("inventory"),
			service.Publishes(handlers.InventoryReserved{}, handlers.InventoryRejected{})),
		service.Handle(s, "notifications.order_confirmation", handlers.OrderConfirmation(a.notifier, a),
			service.Group("notifications"),
			service.Publishes(handlers.NotificationSent{})),
		service.Handle(s, "analytics.order_placed", handlers.Count[handlers.OrderPlaced](a.analytics), service.Group("analytics")),
		service.Handle(s, "analytics.inventory_reserved", handlers.Count[handlers.InventoryReserved](a.analytics), service.Group("analytics")),
		service.Handle(s, "analytics.inventory_rejected", handlers.Count[handlers.InventoryRejected](a.analytics), service.Group("analytics")),
		service.Handle(s, "order_status.placed", a.status.Placed, service.Group("order-status")),
		service.Handle(s, "order_status.reserved", a.status.Reserved, service.Group("order-status")),
		service.Handle(s, "order_status.rejected", a.status.Rejected, service.Group("order-status")),
		service.Handle(s, "order_status.notified", a.status.Notified, service.Group("order-status")),
	}
	for _, err := range regs {
		if err != nil {
			return err
		}
	}
	return nil
}

// placeOrders publishes the n orders, each starting its own correlation
// chain named after the order, so its logs can be found by order id.
func (a *app) placeOrders(ctx context.Context) error {
	for i := 1; i <= a.n; i++ {
		o := makeOrder(i)
		if err := a.svc.Publish(middleware.WithCorrelationID(ctx, o.OrderID), o); err != nil {
			return fmt.Errorf("placing %s: %w", o.OrderID, err)
		}
	}
	return nil
}

func (a *app) summary(s snapshot) string {
	counts := a.analytics.Counts()
	return fmt.Sprintf("summary: published=%d handled=%d retried=%d dead_lettered=%d nacked=%d duplicates=%d orders=%d reserved=%d rejected=%d notified=%d",
		s.Published, s.Handled, s.Retried, s.DeadLettered, s.Nacked, s.Duplicates,
		a.n, counts[handlers.TypeInventoryReserved], counts[handlers.TypeInventoryRejected],
		a.status.Counts()[handlers.StatusNotified])
}
