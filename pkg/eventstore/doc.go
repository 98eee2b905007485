// Package eventstore keeps aggregates as append-only streams of events, with
// optimistic concurrency, and folds them back into state.
//
// # Streams
//
// A [Store] appends events to a stream (one aggregate: "order-42") at the
// version the caller last saw, and loads the stream back as [Record]s:
//
//	err := store.Append(ctx, "order-42", 0, OrderPlaced{...}, OrderPaid{...}) // a new stream
//	if errors.Is(err, eventstore.ErrConcurrencyConflict) {
//		// someone appended since we loaded: reload, decide again
//	}
//	recs, err := store.Load(ctx, "order-42") // versions 1, 2
//
// Events are encoded with an [event.Codec] and keep their schema version and
// an [event.Envelope] (id, type, time, correlation and causation ids), so a
// stored event is the same thing as a published one. [NewMemory] is an
// in-process store for tests and the quick start; adapters/postgres has a
// durable one that can also write each appended event to the transactional
// outbox in the same transaction, so every stored event is published.
//
// # Reading old events
//
// A [Decoder] turns records back into Go values. Register each event type
// with [Register]; upcasters registered on the [event.Registry] bring old
// schema versions up to date on load, exactly as they do for consumed
// messages. A version newer than the code knows is an error, not a guess.
//
// # Aggregates
//
// A [Repository] loads an [Aggregate] by folding its events with an Apply
// function, and saves the events recorded since with the version it was
// loaded at as the expected version:
//
//	repo := &eventstore.Repository[Order]{Store: store, Decoder: dec, Apply: applyOrder}
//	a, err := repo.Load(ctx, "order-42")
//	if a.State.Status != "placed" {
//		return errors.New("not payable")
//	}
//	a.Record(OrderPaid{OrderID: "order-42"})
//	err = repo.Save(ctx, a) // ErrConcurrencyConflict if the stream moved on
//
// # Snapshots
//
// With [Repository.Snapshots] a Load starts from the stream's latest
// [Snapshot] of the current schema version and folds only the events
// after it (read with [StreamReader] where the store has it); Save takes
// snapshots every N events or when the aggregate decides. A snapshot is
// only a shortcut: one that cannot be loaded, decoded or saved never fails
// Load or Save. [NewMemorySnapshots] keeps them in process,
// adapters/postgres durably.
//
// # Following the store
//
// An [AllReader] reads every stream in commit order by global position,
// optionally of some event types only, and tells its [AllReader.Head]. A
// [Subscription] builds on it: from a checkpoint it reads history in
// batches, then follows new commits, polling or woken by a notification
// ([SubscriptionConfig.Wake]). Package projection keeps read models fed
// that way, with their checkpoints.
//
// # Deleting a stream
//
// [Delete] soft-deletes a stream with a [StreamDeleted] tombstone: appends
// to it fail with [ErrStreamDeleted] afterwards, and so does
// [Repository.Load]; its events stay readable for rebuilds and audits.
package eventstore
