// Package projection builds read models (the Q of CQRS) from events, and
// knows where it is: each projection has a name and a checkpoint, is fed
// either by the event store's global stream or by a broker consumer group,
// writes its read model and its checkpoint in one unit of work (one
// PostgreSQL transaction: exactly-once effects), and can be rebuilt from
// position zero into a new target while the old one keeps serving.
//
// # A projection
//
//	store, err := postgres.NewProjectionStore(pool, postgres.ProjectionStoreConfig{}) // or projection.NewMemory()
//	// once: store.Migrate(ctx)
//	summaries, err := projection.New("order_summaries", store, dec,
//		projection.WithSetup(func(ctx context.Context, target string) error {
//			_, err := postgres.TxFrom(ctx).Exec(ctx, `CREATE TABLE `+target+` (id text PRIMARY KEY, status text)`)
//			return err
//		}),
//		projection.WithSwitch(func(ctx context.Context, from, to string) error {
//			tx := postgres.TxFrom(ctx)
//			if _, err := tx.Exec(ctx, `CREATE OR REPLACE VIEW order_summaries AS SELECT * FROM `+to); err != nil || from == "" {
//				return err // from is empty for the first target
//			}
//			_, err := tx.Exec(ctx, `DROP TABLE `+from)
//			return err
//		}))
//	err = projection.Handle(summaries, func(ctx context.Context, e OrderPlaced) error {
//		_, err := postgres.TxFrom(ctx).Exec(ctx,
//			`INSERT INTO `+projection.Target(ctx)+` (id, status) VALUES ($1, 'placed')`, e.OrderID)
//		return err
//	})
//
// Handlers write to [Target](ctx), the table of the generation being
// written (order_summaries_v1, then _v2 after a rebuild), through the
// unit of work's transaction. Readers query a view replaced by the
// [WithSwitch] function, or ask [Projection.Target].
//
// # Feeding it
//
// From the event store's global stream (a catch-up subscription from the
// checkpoint: history in batches, then live):
//
//	go summaries.Run(ctx, eventStore) // blocks until ctx ends
//
// On PostgreSQL, projection.WithWake(ch) with ch from the event store's
// Listen makes a caught-up projection react to appends at once.
//
// From a broker, as ordinary service handlers in one consumer group named
// after the projection; each message is applied once, deduplicated by its
// message id in the same unit of work:
//
//	err := summaries.Subscribe(svc)
//
// # Rebuilding
//
//	err := summaries.Rebuild(ctx, eventStore)
//
// replays every event into the next generation's target while the live one
// keeps serving, then applies what committed meanwhile and switches, in one
// unit of work. [Projection.Status] tells position, lag and whether a
// rebuild runs; [NewCollector] exports the same as Prometheus metrics.
//
// # Stores
//
// [Memory] needs no configuration, for tests and examples; the PostgreSQL
// store (adapters/postgres) keeps checkpoints in a table keyed by
// projection name, and the message ids of broker-fed projections in a
// second one. Any [Store] can be plugged in.
//
// # Ordering and handlers
//
// Fed by the event store, a projection sees every event in global
// position order, one batch at a time. Fed by a broker, it sees each
// topic's events in the broker's order (per key), but events of different
// topics in any order: write handlers that do not depend on that (upserts
// rather than updates of a row another event creates). Either way a
// handler error rolls its unit of work back and it is retried; a
// permanent error (failure.Permanent, an undecodable event, a panic) stops Run
// with the checkpoint right before the event.
package projection
