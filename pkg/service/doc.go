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
// [Service.PublishBatch] publishes many events with one wait for all
// their confirms, reporting failures per event ([PublishBatchError]).
//
// # Request-reply
//
// [Request] publishes a request and waits for the answer of the [Reply]
// handler that consumes it, routed back to the requesting instance through
// the broker's inbox ([broker.Inboxer]); a refusal comes back as a
// [*ReplyError], no answer in time as [ErrRequestTimeout]. The replier is
// an ordinary handler, with retries and dead-lettering. docs/request-reply.md
// says when not to use it.
//
// # Dispatch and order
//
// Each subscription dispatches to a pool of workers ([Policy.Concurrency])
// through a queue per key: messages of one key are handled one after
// another in the order the broker handed them out, however many it hands
// out at once; messages of other keys are never held up by them, and a key
// waiting out a retry backoff holds no worker. A nacked message fences its
// key: nothing of the key overtakes it. [Policy.OrderOnRetry] chooses
// whether a long retry waits in place (keep: the key's order holds) or is
// handed back to the broker (release: later messages of the key may
// overtake it). [Service.Report] and the startup log say what each handler
// really gets.
//
// # The failure path
//
// Dead letters and delayed retries are published with a deadline
// ([WithFailurePathTimeout]); when that fails the message is nacked, never
// dropped or misfiled, and a subscription whose failure path keeps failing
// reports itself unhealthy ([Service.Health]) and backs off. A panic
// anywhere in the stack is dead-lettered, never crashes the process.
//
// # Batches
//
// [HandleBatch] registers a handler of up to [BatchPolicy.Size] events at
// once, or what arrived within [BatchPolicy.Window]. Each message keeps
// its own stack and its own outcome: the handler returns nil, a
// [BatchErrors] naming the items that failed (retried or dead-lettered on
// their own; the others are acked), or an error failing them all. A batch
// holds at most one message of a key, so a key's order holds across
// retries as above. docs/batching.md tells the whole story.
//
// # Circuit breaker, pause and rate limit
//
// A handler's circuit breaker ([Breaker], [Policy.Breaker]) opens after too
// many failed attempts; while it is open, and while the handler is paused
// ([Service.Pause] until [Service.Resume]), its subscription takes nothing
// from the broker and the messages it already holds wait unacknowledged,
// in key order: nothing is nacked, retried away or dead-lettered for it.
// Half-open probes close it again. [RateLimit] caps attempts per second.
// [Service.Flow] and [Service.Health] show the state; docs/circuit-breaker.md
// tells the whole story.
//
// # Shutdown and errors
//
// [Service.Run] blocks until its context is cancelled. Then it stops intake,
// nacks what it holds but has not started (on a broker whose nack rewinds,
// Kafka, it handles those too, within the shutdown timeout: a handed-back
// message would make the next owner of its partition handle again what was
// acked after it), lets in-flight handlers finish
// (bounded by the shutdown timeout), and still acks, nacks and publishes for
// them: handlers never see the Run context's cancellation unless the timeout
// passes. Run returns an error when a subscription dies while running, and
// one wrapping [ErrShutdownTimeout] when handlers outlive the timeout and
// their cancellation. [NotifyShutdown] turns SIGINT/SIGTERM into that
// cancellation, and a second signal exits at once.
//
// A publish-only process made with [PublishOnly] registers no handlers and
// runs for its companions (an operations server, a scheduler's relay);
// without that option Run with no handlers returns [ErrNothingToRun],
// which is usually a forgotten registration.
package service
