package main

import (
	"context"
	"time"

	"github.com/switchyard-go/switchyard/pkg/saga"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// Saga statuses.
const (
	statusReserving    = "reserving"
	statusPaying       = "paying"
	statusShipping     = "shipping"
	statusCompensating = "compensating"
	statusShipped      = "shipped"
	statusCancelled    = "cancelled"
)

// Why an order was cancelled.
const (
	reasonDeclined = "payment declined"
	reasonTimedOut = "payment timed out"
)

// OrderState is what the saga remembers about one order.
type OrderState struct {
	Status        string `json:"status"`
	Item          string `json:"item"`
	Qty           int    `json:"qty"`
	Amount        int    `json:"amount_cents"`
	Card          string `json:"card"`
	Reason        string `json:"reason,omitempty"`
	StockReserved bool   `json:"stock_reserved"`
	StockReleased bool   `json:"stock_released"`
}

// sagaName is the saga's name: its consumer group and its key in the store.
const sagaName = "order-saga"

// orderID is the correlation of every event of the flow.
func orderID[T interface{ EventKey() string }](e T) string { return e.EventKey() }

// registerSaga registers the order saga's steps: placed, then reserve
// stock, then capture payment (with a timeout), then ship; a declined or
// timed-out payment releases the stock before the order is cancelled.
func registerSaga(svc *service.Service, store saga.Store, paymentTimeout time.Duration, opts ...saga.Option) (*saga.Saga[OrderState], error) {
	sg := saga.New[OrderState](svc, sagaName, store, opts...)
	// Each step declares what it publishes, so that the event-flow graph
	// shows the real flow (and finds no cycle in it).
	publishes := service.Publishes

	err := saga.Start(sg, orderID[OrderPlaced], func(ctx context.Context, in *saga.Instance[OrderState], e OrderPlaced) error {
		if !in.New() {
			return nil // the same order placed twice: the first one runs
		}
		in.State = OrderState{Status: statusReserving, Item: e.Item, Qty: e.Qty, Amount: e.Amount, Card: e.Card}
		return in.Publish(ctx, ReserveStock{OrderID: in.ID, Item: e.Item, Qty: e.Qty})
	}, publishes(ReserveStock{}))
	if err == nil {
		err = saga.On(sg, orderID[StockReserved], func(ctx context.Context, in *saga.Instance[OrderState], e StockReserved) error {
			if in.State.Status != statusReserving {
				return nil
			}
			in.State.Status, in.State.StockReserved = statusPaying, true
			if err := in.Publish(ctx, CapturePayment{OrderID: in.ID, Amount: in.State.Amount, Card: in.State.Card}); err != nil {
				return err
			}
			return in.Timeout(ctx, paymentTimeout, PaymentTimedOut{OrderID: in.ID})
		}, publishes(CapturePayment{}, PaymentTimedOut{}))
	}
	if err == nil {
		err = saga.On(sg, orderID[PaymentCaptured], func(ctx context.Context, in *saga.Instance[OrderState], e PaymentCaptured) error {
			if in.State.Status != statusPaying {
				return nil // too late: the timeout cancelled the order
			}
			in.State.Status = statusShipping
			return in.Publish(ctx, ShipOrder{OrderID: in.ID, Item: in.State.Item, Qty: in.State.Qty})
		}, publishes(ShipOrder{}))
	}
	if err == nil {
		err = saga.On(sg, orderID[PaymentFailed], func(ctx context.Context, in *saga.Instance[OrderState], e PaymentFailed) error {
			return compensate(ctx, in, reasonDeclined)
		}, publishes(ReleaseStock{}))
	}
	if err == nil {
		err = saga.On(sg, orderID[PaymentTimedOut], func(ctx context.Context, in *saga.Instance[OrderState], e PaymentTimedOut) error {
			return compensate(ctx, in, reasonTimedOut)
		}, publishes(ReleaseStock{}))
	}
	if err == nil {
		err = saga.On(sg, orderID[StockReleased], func(ctx context.Context, in *saga.Instance[OrderState], e StockReleased) error {
			if in.State.Status != statusCompensating {
				return nil
			}
			in.State.Status, in.State.StockReleased = statusCancelled, true
			in.Complete()
			return in.Publish(ctx, OrderCancelled{OrderID: in.ID, Reason: in.State.Reason})
		}, publishes(OrderCancelled{}))
	}
	if err == nil {
		err = saga.On(sg, orderID[OrderShipped], func(ctx context.Context, in *saga.Instance[OrderState], e OrderShipped) error {
			in.State.Status = statusShipped
			in.Complete()
			return nil
		})
	}
	return sg, err
}

// compensate undoes the reservation of an order whose payment did not
// happen; the saga completes once the stock is back.
func compensate(ctx context.Context, in *saga.Instance[OrderState], reason string) error {
	if in.State.Status != statusPaying {
		return nil // paid already, or compensating for the other reason
	}
	in.State.Status, in.State.Reason = statusCompensating, reason
	return in.Publish(ctx, ReleaseStock{OrderID: in.ID, Item: in.State.Item, Qty: in.State.Qty})
}
