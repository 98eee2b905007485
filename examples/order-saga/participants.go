package main

import (
	"context"
	"sync"
	"time"

	"github.com/switchyard-go/switchyard/pkg/service"
)

// The services the saga talks to, kept small: an inventory with stock
// counts, a payment gateway whose answer the order's card chooses, and
// shipping. Each waits stepDelay before answering, like a remote call, so
// that a run has sagas in flight long enough to be interrupted.

type inventory struct {
	mu    sync.Mutex
	stock map[string]int
}

func (inv *inventory) add(item string, n int) int {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	inv.stock[item] += n
	return inv.stock[item]
}

func registerParticipants(svc *service.Service, inv *inventory, stepDelay time.Duration) error {
	wait := func(ctx context.Context) error {
		select {
		case <-time.After(stepDelay):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	err := service.Handle(svc, "inventory.reserve", func(ctx context.Context, c ReserveStock) error {
		if err := wait(ctx); err != nil {
			return err
		}
		inv.add(c.Item, -c.Qty)
		return svc.Publish(ctx, StockReserved{OrderID: c.OrderID})
	}, service.Group("inventory"), service.Publishes(StockReserved{}))
	if err == nil {
		err = service.Handle(svc, "inventory.release", func(ctx context.Context, c ReleaseStock) error {
			if err := wait(ctx); err != nil {
				return err
			}
			inv.add(c.Item, c.Qty)
			return svc.Publish(ctx, StockReleased{OrderID: c.OrderID})
		}, service.Group("inventory"), service.Publishes(StockReleased{}))
	}
	if err == nil {
		err = service.Handle(svc, "payments.capture", func(ctx context.Context, c CapturePayment) error {
			if err := wait(ctx); err != nil {
				return err
			}
			switch c.Card {
			case "declined":
				return svc.Publish(ctx, PaymentFailed{OrderID: c.OrderID, Reason: "card declined"})
			case "silent":
				return nil // the gateway never answers: the saga's timeout decides
			default:
				return svc.Publish(ctx, PaymentCaptured{OrderID: c.OrderID})
			}
		}, service.Group("payments"), service.Publishes(PaymentCaptured{}, PaymentFailed{}))
	}
	if err == nil {
		err = service.Handle(svc, "shipping.ship", func(ctx context.Context, c ShipOrder) error {
			if err := wait(ctx); err != nil {
				return err
			}
			return svc.Publish(ctx, OrderShipped{OrderID: c.OrderID})
		}, service.Group("shipping"), service.Publishes(OrderShipped{}))
	}
	if err == nil {
		// The customer hears of a cancellation (and RabbitMQ has a queue
		// to route OrderCancelled to: it refuses unroutable messages).
		err = service.Handle(svc, "customers.notify_cancelled", func(ctx context.Context, e OrderCancelled) error {
			return nil
		}, service.Group("customers"))
	}
	return err
}
