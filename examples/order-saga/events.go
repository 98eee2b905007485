package main

// The events and commands of the order flow. Each is keyed by its order id,
// so one order's messages keep their order on every broker.

// OrderPlaced starts the saga. Card chooses how the payment service answers:
// "ok" captures, "declined" fails, "silent" never answers (a hung gateway).
type OrderPlaced struct {
	OrderID string `json:"order_id"`
	Item    string `json:"item"`
	Qty     int    `json:"qty"`
	Amount  int    `json:"amount_cents"`
	Card    string `json:"card"`
}

func (OrderPlaced) EventType() string  { return "ordersaga.order_placed" }
func (OrderPlaced) EventVersion() int  { return 1 }
func (e OrderPlaced) EventKey() string { return e.OrderID }

// ReserveStock asks the inventory to hold stock for an order.
type ReserveStock struct {
	OrderID string `json:"order_id"`
	Item    string `json:"item"`
	Qty     int    `json:"qty"`
}

func (ReserveStock) EventType() string  { return "ordersaga.reserve_stock" }
func (ReserveStock) EventVersion() int  { return 1 }
func (e ReserveStock) EventKey() string { return e.OrderID }

// StockReserved is the inventory's answer.
type StockReserved struct {
	OrderID string `json:"order_id"`
}

func (StockReserved) EventType() string  { return "ordersaga.stock_reserved" }
func (StockReserved) EventVersion() int  { return 1 }
func (e StockReserved) EventKey() string { return e.OrderID }

// ReleaseStock is the compensation of ReserveStock.
type ReleaseStock struct {
	OrderID string `json:"order_id"`
	Item    string `json:"item"`
	Qty     int    `json:"qty"`
}

func (ReleaseStock) EventType() string  { return "ordersaga.release_stock" }
func (ReleaseStock) EventVersion() int  { return 1 }
func (e ReleaseStock) EventKey() string { return e.OrderID }

// StockReleased confirms the compensation.
type StockReleased struct {
	OrderID string `json:"order_id"`
}

func (StockReleased) EventType() string  { return "ordersaga.stock_released" }
func (StockReleased) EventVersion() int  { return 1 }
func (e StockReleased) EventKey() string { return e.OrderID }

// CapturePayment asks the payment service to take the money.
type CapturePayment struct {
	OrderID string `json:"order_id"`
	Amount  int    `json:"amount_cents"`
	Card    string `json:"card"`
}

func (CapturePayment) EventType() string  { return "ordersaga.capture_payment" }
func (CapturePayment) EventVersion() int  { return 1 }
func (e CapturePayment) EventKey() string { return e.OrderID }

// PaymentCaptured and PaymentFailed are the payment service's answers.
type PaymentCaptured struct {
	OrderID string `json:"order_id"`
}

func (PaymentCaptured) EventType() string  { return "ordersaga.payment_captured" }
func (PaymentCaptured) EventVersion() int  { return 1 }
func (e PaymentCaptured) EventKey() string { return e.OrderID }

type PaymentFailed struct {
	OrderID string `json:"order_id"`
	Reason  string `json:"reason"`
}

func (PaymentFailed) EventType() string  { return "ordersaga.payment_failed" }
func (PaymentFailed) EventVersion() int  { return 1 }
func (e PaymentFailed) EventKey() string { return e.OrderID }

// PaymentTimedOut is the saga's timeout to itself, scheduled when it asks
// for the payment.
type PaymentTimedOut struct {
	OrderID string `json:"order_id"`
}

func (PaymentTimedOut) EventType() string  { return "ordersaga.payment_timed_out" }
func (PaymentTimedOut) EventVersion() int  { return 1 }
func (e PaymentTimedOut) EventKey() string { return e.OrderID }

// ShipOrder asks shipping to send the parcel; OrderShipped is its answer.
type ShipOrder struct {
	OrderID string `json:"order_id"`
	Item    string `json:"item"`
	Qty     int    `json:"qty"`
}

func (ShipOrder) EventType() string  { return "ordersaga.ship_order" }
func (ShipOrder) EventVersion() int  { return 1 }
func (e ShipOrder) EventKey() string { return e.OrderID }

type OrderShipped struct {
	OrderID string `json:"order_id"`
}

func (OrderShipped) EventType() string  { return "ordersaga.order_shipped" }
func (OrderShipped) EventVersion() int  { return 1 }
func (e OrderShipped) EventKey() string { return e.OrderID }

// OrderCancelled tells the rest of the world the order is off.
type OrderCancelled struct {
	OrderID string `json:"order_id"`
	Reason  string `json:"reason"`
}

func (OrderCancelled) EventType() string  { return "ordersaga.order_cancelled" }
func (OrderCancelled) EventVersion() int  { return 1 }
func (e OrderCancelled) EventKey() string { return e.OrderID }
