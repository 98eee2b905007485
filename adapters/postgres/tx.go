package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"weak"

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
//
// # Connections
//
// Each attempt holds one pool connection, its transaction, for as long as
// the handler runs. A handler that also uses the pool directly (pool.Exec,
// a [Store], an [Outbox] on the same pool) needs a second one; if every
// connection were held by a transaction whose handler waits for another,
// nothing would move. So the TransactionalIdempotency middlewares of one
// pool together hold at most MaxConns-1 transactions at once (at least 1);
// further attempts wait for a turn (bounded by their context), and one
// connection stays free for the handlers' own statements. This holds as
// long as a handler gives a pool connection back before it asks for the
// next (pool.Exec and QueryRow do; close Rows before the next query). With
// MaxConns 1, handlers must use [TxFrom] only. Prefer [TxFrom] anyway: its
// writes are the ones that commit with the dedupe record.
func TransactionalIdempotency(pool *pgxpool.Pool, cfg TxConfig) middleware.Middleware {
	key := cfg.Key
	if key == nil {
		key = middleware.IdempotencyKey
	}
	slots := txSlots(pool)
	return func(next middleware.Handler) middleware.Handler {
		return func(ctx context.Context, d *middleware.Delivery) error {
			k := key(d)
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return fmt.Errorf("postgres: waiting for a transaction slot for %q (at most %d on this pool): %w", k, cap(slots), context.Cause(ctx))
			}
			defer func() { <-slots }()
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

// poolSlots holds, per pool, the semaphore that bounds the transactions
// TransactionalIdempotency holds on it (see its doc). Keys are weak so that
// a pool that is dropped drops its entry.
var poolSlots sync.Map // weak.Pointer[pgxpool.Pool] → chan struct{}

// txSlots returns pool's semaphore, of MaxConns-1 slots (at least 1).
func txSlots(pool *pgxpool.Pool) chan struct{} {
	k := weak.Make(pool)
	if v, ok := poolSlots.Load(k); ok {
		return v.(chan struct{})
	}
	n := max(int(pool.Config().MaxConns)-1, 1)
	v, loaded := poolSlots.LoadOrStore(k, make(chan struct{}, n))
	if !loaded {
		runtime.AddCleanup(pool, func(k weak.Pointer[pgxpool.Pool]) { poolSlots.Delete(k) }, k)
	}
	return v.(chan struct{})
}
