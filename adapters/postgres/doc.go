// Package postgres is Switchyard's PostgreSQL adapter (pgx/v5, pgxpool): the
// durable stores behind idempotent consumers, the transactional outbox
// ([NewOutbox], see docs/outbox.md), the event store ([NewEventStore], see
// docs/cqrs-event-sourcing.md) with its snapshots ([NewSnapshotStore]), its
// commit notifications ([EventStore.Listen]) and the checkpoints and
// exactly-once units of work of projections ([NewProjectionStore]), saga
// instances ([NewSagaStore], see docs/sagas.md) and scheduled messages
// ([NewSchedule], see docs/scheduling.md). Each has its own Migrate.
//
// # Idempotency records
//
// Idempotency records are durable and shared by every instance of a service.
//
// It offers two ways to use them; both need [Migrate] once, which creates
// the table [Table] (key, handler, status, owner, claimed_until,
// completed_at) if missing.
//
// # Exactly-once effects: TransactionalIdempotency
//
// When a handler's effects are writes to the same database, put them in the
// transaction that records the message as processed. [TransactionalIdempotency]
// opens a transaction per attempt, inserts the dedupe row (a duplicate is
// acked unhandled), hands the transaction to the handler through [TxFrom],
// and commits only if the handler succeeded. A crash or error before the
// commit leaves neither the effect nor the record; the redelivery does both.
// A concurrent duplicate waits on the row lock and then finds the key.
//
// It must run once per attempt, inside Retry, which is where
// service.WithMiddleware puts middleware:
//
//	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
//	if err != nil {
//		return err
//	}
//	if err := postgres.Migrate(ctx, pool); err != nil {
//		return err
//	}
//	var svc *service.Service
//	svc = service.New(b, service.WithMiddleware(postgres.TransactionalIdempotency(pool, postgres.TxConfig{
//		OnDuplicate: func(d *middleware.Delivery) { svc.Recorder().Duplicate(d.Handler.Name) },
//	})))
//	service.Handle(svc, "reserve", func(ctx context.Context, e OrderPlaced) error {
//		_, err := postgres.TxFrom(ctx).Exec(ctx,
//			`UPDATE stock SET reserved = reserved + $1 WHERE sku = $2`, e.Qty, e.SKU)
//		return err // nil commits the write and the dedupe record together
//	})
//
// Events the handler publishes are not part of the transaction: they are
// confirmed before the commit and published again if the commit fails.
//
// Each attempt holds a pool connection while the handler runs; the
// middlewares of one pool hold at most MaxConns-1 transactions at once, so
// one connection stays free for the handlers' own use of the pool and a
// full pool cannot deadlock (see [TransactionalIdempotency]).
//
// # Deduplicated handling: Store
//
// [Store] implements the generic idempotency.Store (claims with leases on
// the database clock) for service.WithIdempotency, when effects live
// elsewhere (an HTTP call, another database): a message is handled by one
// instance at a time and skipped once completed, but a crash between the
// effect and the completion handles it again after the lease. The store
// implements idempotency.Extender: the middleware renews the lease while
// the handler runs, so only a dead holder's claim expires.
//
//	svc := service.New(b, service.WithIdempotency(postgres.NewStore(pool)))
//
// # Retention
//
// Completed keys stay until [Purge] removes them; run it periodically with
// an age longer than any redelivery or dead-letter replay you expect.
package postgres
