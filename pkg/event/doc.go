// Package event defines what an event is in Switchyard and how it travels:
// the [Event] interface every domain event implements, the [Envelope] of
// attributes every message carries, the pluggable [Codec] for payloads, and the
// [Registry] that knows each event type, its current version and the
// upcasters that turn old versions into it.
//
// # Events
//
// An event is a plain Go type with a stable name and a schema version:
//
//	type OrderPlaced struct {
//		OrderID string `json:"order_id"`
//	}
//
//	func (OrderPlaced) EventType() string  { return "orders.order_placed" }
//	func (OrderPlaced) EventVersion() int   { return 1 }
//	func (e OrderPlaced) EventKey() string { return e.OrderID } // optional: the aggregate id
//
// The name is part of the wire contract (it is the CloudEvents "type"); keep it
// stable when the Go type is renamed. The key keeps events of one aggregate in
// order on every broker.
//
// # Schema evolution
//
// Bump EventVersion when the payload changes incompatibly and register an
// upcaster from the old version with [Registry.Upcast]. A message whose version
// is newer than the code knows is not guessed at: decoding fails with a
// permanent error and the message is dead-lettered with reason
// "unsupported_version".
package event
