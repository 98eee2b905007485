package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Table is the table of processed keys, shared by [Store] and
// [TransactionalIdempotency].
const Table = "switchyard_processed"

// statusCompleted is the status of a handled key; a claimed one is "claimed".
const statusCompleted = "completed"

// Migrate creates [Table] and its index, and [ParkedTable], if they do not
// exist. It is
// idempotent and safe to run from several instances at once (it holds an
// advisory lock while it runs).
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	stmts := []string{
		`SELECT pg_advisory_xact_lock(hashtext('` + Table + `'))`,
		`CREATE TABLE IF NOT EXISTS ` + Table + ` (
			key           text PRIMARY KEY,
			handler       text NOT NULL DEFAULT '',
			status        text NOT NULL CHECK (status IN ('claimed', 'completed')),
			owner         text,
			claimed_until timestamptz,
			completed_at  timestamptz
		)`,
		`CREATE INDEX IF NOT EXISTS ` + Table + `_completed_at ON ` + Table + ` (completed_at) WHERE status = 'completed'`,
		`CREATE TABLE IF NOT EXISTS ` + ParkedTable + ` (
			consumer_group text NOT NULL,
			key            text NOT NULL,
			message_id     text NOT NULL,
			since          timestamptz NOT NULL DEFAULT clock_timestamp(),
			PRIMARY KEY (consumer_group, key)
		)`,
	}
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			return fmt.Errorf("postgres: migrate: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	return nil
}

// Purge deletes keys completed before now minus olderThan, and returns how
// many. A redelivery of a purged key is handled again, so keep keys longer
// than the brokers may redeliver (retention, delayed retries, dead-letter
// replays). Run it periodically; nothing purges on its own.
func Purge(ctx context.Context, pool *pgxpool.Pool, olderThan time.Duration) (int64, error) {
	tag, err := pool.Exec(ctx, `DELETE FROM `+Table+` WHERE status = 'completed' AND completed_at < clock_timestamp() - $1 * interval '1 microsecond'`,
		olderThan.Microseconds())
	if err != nil {
		return 0, fmt.Errorf("postgres: purge: %w", err)
	}
	return tag.RowsAffected(), nil
}
