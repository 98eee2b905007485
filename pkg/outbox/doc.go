// Package outbox publishes messages that were stored in the same database
// transaction as a business write: the transactional outbox, the usual fix
// for the dual write (commit the row, then publish, and crash in between).
//
// # Writing
//
// Build the message exactly as [service.Service.Publish] would send it, with
// [New] (ids, correlation, causation, hop count and envelope are kept), and
// add it in the business transaction through a [Store] of your database,
// e.g. adapters/postgres.Outbox:
//
//	tx, _ := pool.Begin(ctx)
//	defer tx.Rollback(ctx)
//	// ... business writes through tx ...
//	m, err := outbox.New(ctx, svc, OrderPlaced{OrderID: id})
//	if err != nil {
//		return err
//	}
//	if err := ob.Add(ctx, tx, m); err != nil {
//		return err
//	}
//	return tx.Commit(ctx) // the message exists if and only if the write does
//
// # Relaying
//
// A [Relay] reads unpublished records oldest first, publishes them with the
// broker's confirmed Publish and marks them published. Run one per service
// instance: relays on the same store never publish a record at the same
// time, and never publish a record while an earlier record with the same key
// is still unpublished.
//
//	relay := &outbox.Relay{Store: ob, Publisher: b.Publisher(), Logger: logger}
//	go relay.Run(ctx)
//
// # Guarantees
//
//   - At least once: a record is marked only after the broker confirmed it.
//     A crash between the confirm and the mark publishes it again (with the
//     same message id, so idempotent consumers drop the copy).
//   - Order per key: records with the same key ([header.Key]) are published
//     in insertion order, across any number of relays: nothing of a key is
//     published before an earlier record of that key. Records without a key
//     are published oldest first by one relay but carry no order promise
//     across relays.
//   - A failing record blocks only its key: it is retried on its own backoff
//     while the records of other keys and topics are published.
//   - Nothing is dropped: after [Relay.MaxAttempts] failed publishes a record
//     is parked, kept with its attempts and last error, and its key's later
//     records wait behind it until an operator unparks it ([Parker], the CLI's
//     "switchyard outbox retry"), which restores the key's order.
package outbox
