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
//     in insertion order, across any number of relays. When a publish fails
//     the batch stops there and is retried with backoff; nothing behind it is
//     published first. Records without a key are published oldest first by
//     one relay but carry no order promise across relays.
//   - Nothing is dropped: a record that keeps failing is retried for ever
//     (its attempts and last error are kept for operators), and it holds up
//     the records behind it.
package outbox
