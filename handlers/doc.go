// Package handlers is the order domain of the Switchyard example: typed
// events and the plain functions that handle them. Nothing here knows which
// broker carries the events or how the process is configured; the
// runtime (package service) subscribes these functions and the example app
// (examples/orders) wires them together.
//
// # The flow
//
//	OrderPlaced ──► inventory ──► InventoryReserved ──► notifications ──► NotificationSent
//	                          └─► InventoryRejected
//
// analytics counts OrderPlaced, InventoryReserved and InventoryRejected;
// the [OrderStatus] view follows every order from placed to reserved or
// rejected and then notified.
//
// # Events, topics and keys
//
// Every event is version 1, named "orders.<what_happened>" and keyed by its
// order id, so the events of one type and one order are handled in publish
// order on every broker. Each event type travels on its own topic, the
// framework default (the topic is the event type name): a consumer group
// subscribes only to the types it handles. Order across types is therefore
// not guaranteed, and the handlers do not rely on it: [OrderStatus] only
// moves an order forward, whatever order its events arrive in.
//
// Events carry what their consumers need (event-carried state transfer):
// [InventoryReserved] carries the customer's email, so the notification
// handler needs no lookup.
//
// # Failures
//
// A malformed order (no items, a non-positive quantity or price, a total
// that does not match the items, no email) can never succeed: the inventory
// handler returns a [failure.Permanent] error wrapping [ErrInvalidOrder],
// and the message is dead-lettered at once. Running out of stock is not an
// error but a business outcome: the handler publishes [InventoryRejected].
// Errors of a [Notifier] or a [Publisher] are returned as they are, so the
// runtime retries them.
//
// # Delivery at least once
//
// Brokers may deliver a message twice. [Inventory] remembers the outcome of
// every order it decided, so a redelivered order is answered with the same
// event without reserving stock twice; [Analytics] counts deliveries, not
// distinct events.
package handlers
