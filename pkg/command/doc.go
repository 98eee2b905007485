// Package command is the write side of CQRS: typed commands, each with
// exactly one handler, sent through the service's broker as a work queue,
// and a helper that turns a command into events on an event-sourced
// aggregate.
//
// # Commands are intents
//
// An event says that something happened and any number of handlers may
// react to it; a command asks for something to happen and exactly one
// handler decides whether it does. A command is a Go type with a name and a
// version, written like an event (it implements [event.Event], so it shares
// the codec, the registry, upcasters and the header contract), and named
// in the imperative:
//
//	type PayOrder struct {
//		OrderID string `json:"order_id"`
//	}
//
//	func (PayOrder) EventType() string   { return "orders.pay_order" }
//	func (PayOrder) EventVersion() int   { return 1 }
//	func (c PayOrder) EventKey() string  { return c.OrderID } // the aggregate: order per order
//
// What makes it a command is how it travels. Every command of a [Bus] goes
// to one command topic and is consumed by one consumer group, so that of
// all the instances of a service exactly one handles it; [Handle] refuses a
// second handler for a command type. The handlers are ordinary
// [service.Handle] handlers on that topic and group: retries, dead
// letters, correlation, idempotency, tracing and metrics are the runtime's,
// the same on every broker.
//
// # Sending
//
// [Bus.Send] publishes a command and returns once the broker confirmed
// it. Called from HTTP code it starts a correlation chain (or continues the
// one of [middleware.WithCorrelationID]); called from a handler it keeps
// the handler's correlation id and sets the causation id to the message
// being handled, like [service.Service.Publish] (and, like it, the handler
// declares the command with [service.Publishes]). [Bus.SendAndWait] also
// waits for the command's outcome: the new version of the aggregate, or
// the handler's rejection, from whichever instance handled it. The command
// carries the sending instance's inbox address, as a request of
// [service.Request] does, and the handling instance answers there
// ([service.Answer]); see SendAndWait's doc for what travels and
// [RejectionReasons] for rejections that must stay recognisable.
//
// # Deciding on an aggregate
//
// [Execute] loads an aggregate from an [eventstore.Repository], lets a
// decide function check the rules and record new events, and saves them at
// the version it loaded. When another writer saved first
// ([eventstore.ErrConcurrencyConflict]) it loads again and decides again on
// the new state, up to [ConflictRetries] times, then gives up with a
// [ConflictError], a transient error that takes the handler's normal
// failure path (retry with backoff, then the dead-letter topic).
// [OnAggregate] makes such a decision a command handler.
//
// A decide function rejects a command that breaks a rule with [Reject]: the
// command is acknowledged (it was handled: the answer is no), the rejection
// is logged and returned to [Bus.SendAndWait], and nothing is dead-lettered.
// Any other error is a failure and takes the failure path.
//
// # What happens to the events
//
// Execute only appends to the event store: the store is the source of
// truth, and the command package never publishes the events itself,
// because publishing after the append is a second write that a crash can
// lose. Read models follow the store (a catch-up projection over its global
// stream). Other services get the events when the store publishes them:
// the PostgreSQL event store does so through the transactional outbox
// (postgres.EventStoreConfig.Outbox), at least once and in stream order.
package command
