// Package saga runs process managers on the Switchyard runtime: a typed
// state per correlation id (an order id), created by a starting event,
// advanced by later ones, which publishes commands and events, schedules
// timeouts to itself and marks itself complete.
//
//	sg := saga.New[OrderState](svc, "order-saga", saga.NewMemory(),
//		saga.Publishes(ReserveStock{}, PaymentDue{}))
//	saga.Start(sg, func(e OrderPlaced) string { return e.OrderID },
//		func(ctx context.Context, in *saga.Instance[OrderState], e OrderPlaced) error {
//			in.State.Status = "reserving"
//			return in.Publish(ctx, ReserveStock{OrderID: e.OrderID})
//		})
//	saga.On(sg, func(e PaymentDue) string { return e.OrderID }, onTimeout)
//
// Each step is a [service.Handle] handler in the saga's consumer group, so
// retries, dead letters, tracing and metrics are the runtime's.
//
// # Consistency
//
//   - Optimistic concurrency: a step loads the instance at version v and
//     saves v+1 only over v ([Store.Save]); when two events for one
//     instance race (they arrive on different topics, so on different
//     subscriptions) the loser gets [ErrConflict], a transient error: the
//     runtime retries it, and the retry decides on the winner's state.
//   - Save, then publish: what a step publishes (and the timeouts it
//     schedules) is saved with its state and published once the save
//     succeeded; a crash in between is made good by the instance's next
//     delivery, which publishes it before deciding anything. Outgoing ids
//     are derived from the instance and the message handled, so a repeat
//     carries the same ids (at least once; idempotent consumers see once).
//   - A redelivered message that was applied already (the instance keeps
//     the last 32 ids) is acknowledged without running the step again.
//
// # Rules for unexpected events
//
//   - An event for a completed instance is acknowledged and ignored.
//   - A non-starting event ([On]) for an instance that does not exist
//     fails permanently with [ErrUnknown]: it is dead-lettered, not lost.
//   - An event whose correlation id is empty fails permanently.
//
// Instances live in a [Store]: [Memory] in the process, or the PostgreSQL
// store of package adapters/postgres. docs/sagas.md tells the whole story.
package saga
