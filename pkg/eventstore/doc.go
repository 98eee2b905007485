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
package eventstore
