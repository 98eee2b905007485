// Package service is the Switchyard runtime: it registers typed handlers,
// subscribes them to a broker as consumer groups, runs each delivery through
// the shared middleware stack, publishes events with correlation and
// causation filled in, and shuts down without losing in-flight work.
//
// # Handlers
//
// A handler is a plain function of a typed event:
//
//	svc := service.New(b, service.WithSource("orders-service"))
//	err := service.Handle(svc, "inventory.reserve",
//		func(ctx context.Context, e orders.OrderPlaced) error {
//			return svc.Publish(ctx, orders.InventoryReserved{OrderID: e.OrderID})
//		},
//		service.Group("inventory"),
//		service.Publishes(orders.InventoryReserved{}),
//	)
//
// Handlers in the same consumer group compete for messages; different groups
// each receive every message. Several handlers of one group on one topic
// share a single subscription and are chosen by event type.
//
// # Publishing
//
// [Service.Publish] called with a handler's context copies the incoming
// correlation id, sets the causation id to the incoming message id and
// increments the hop count; it returns once the broker confirmed the event,
// so the incoming message is acked only after what its handler published is
// safe. A handler may publish only the event types it declared with
// [Publishes]: the declared flow is what the event-flow graph shows and what
// loop detection checks.
//
// # Shutdown
//
// [Service.Run] blocks until its context is cancelled. Then it stops intake,
// lets in-flight handlers finish (bounded by the shutdown timeout), and still
// acks, nacks and publishes for them: handlers never see the Run context's
// cancellation unless the timeout passes. Messages that were not finished are
// nacked and redelivered. [NotifyShutdown] turns SIGINT/SIGTERM into that
// cancellation, and a second signal exits at once.
package service
