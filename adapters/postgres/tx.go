package postgres

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard-go/switchyard/pkg/middleware"
)

// TxConfig configures [TransactionalIdempotency].
type TxConfig struct {
	// Key returns the deduplication key; default
	// [middleware.IdempotencyKey] (consumer group and message id). Use keys
	// distinct from those of a [Store] on the same table.
	Key func(d *middleware.Delivery) string
	// TxOptions are the options of each transaction; default read committed.
	TxOptions pgx.TxOptions
	// OnDuplicate, if set, is called for each delivery skipped as a
	// duplicate, e.g. to count it:
	//	OnDuplicate: func(d *middleware.Delivery) { svc.Recorder().Duplicate(d.Handler.Name) }
	OnDuplicate func(d *middleware.Delivery)
}

type txKey struct{}

// TxFrom returns the transaction of the delivery being handled, or nil
// outside [TransactionalIdempotency]. Handler writes made through it commit
// together with the delivery's dedupe record, or not at all.
func TxFrom(ctx context.Context) pgx.Tx {
	tx, _ := ctx.Value(txKey{}).(pgx.Tx)
	return tx
}

// TransactionalIdempotency gives exactly-once effects for handlers whose
// effects are writes to this database. For each attempt it
//
//  1. begins a transaction;
//  2. inserts the delivery's key into [Table] (ON CONFLICT DO NOTHING). If
//     the key is there, the delivery is a duplicate: it rolls back, calls
//     OnDuplicate and returns nil (ack) without running the handler. If
//     another transaction inserted the key and has not finished (the same
//     message being handled concurrently), the insert waits for it: a
//     commit makes this one a duplicate, a rollback lets it go ahead;
//  3. runs the handler with the transaction in its context ([TxFrom]);
//  4. commits when the handler returns nil, and rolls back otherwise.
//
// The handler's writes and the dedupe record therefore commit atomically: a
// crash or error before the commit leaves neither, and the redelivery (or
// retry) does both. An error from begin, insert or commit is an ordinary
// retryable error; a commit whose outcome was lost with the connection is
// safe too, since the retry then finds the key and acks.
//
// # Where it goes
//
// Each attempt must have its own transaction, so it runs inside Retry: add
// it with service.WithMiddleware (user middleware runs once per attempt,
// inside Retry and outside Timeout). Outside Retry a failed attempt's
// writes would stay in the transaction and be repeated by the next attempt.
// Only the database writes are exactly-once: events the handler publishes
// are published before the commit and are published again if the commit
// fails (downstream consumers dedupe them by message id).
func TransactionalIdempotency(pool *pgxpool.Pool, cfg TxConfig) middleware.Middleware {
	key := cfg.Key
	if key == nil {
		key = middleware.IdempotencyKey
	}
	return func(next middleware.Handler) middleware.Handler {
		return func(ctx context.Context, d *middleware.Delivery) error {
			k := key(d)
			tx, err := pool.BeginTx(ctx, cfg.TxOptions)
			if err != nil {
				return fmt.Errorf("postgres: begin for %q: %w", k, err)
			}
			// A no-op after Commit; runs even when ctx was cancelled.
			defer tx.Rollback(context.WithoutCancel(ctx))
			tag, err := tx.Exec(ctx, `
				INSERT INTO `+Table+` (key, handler, status, completed_at)
				VALUES ($1, $2, 'completed', clock_timestamp())
				ON CONFLICT (key) DO NOTHING`, k, d.Handler.Name)
			if err != nil {
				return fmt.Errorf("postgres: record %q: %w", k, err)
			}
			if tag.RowsAffected() == 0 {
				d.Logger().LogAttrs(ctx, slog.LevelInfo, "duplicate skipped", slog.String(middleware.LogKeyIdempotencyKey, k))
				if cfg.OnDuplicate != nil {
					cfg.OnDuplicate(d)
				}
				return nil
			}
			if err := next(context.WithValue(ctx, txKey{}, tx), d); err != nil {
				return err
			}
			if err := tx.Commit(ctx); err != nil {
				return fmt.Errorf("postgres: commit %q: %w", k, err)
			}
			return nil
		}
	}
}
