package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard-go/switchyard/adapters/postgres"
	"github.com/switchyard-go/switchyard/pkg/event"
)

// postgresTable keeps summaries in PostgreSQL, one table per target.
// Writes go through the projection's transaction (postgres.TxFrom), so a
// row and the checkpoint that says it was written commit together.
type postgresTable struct{ pool *pgxpool.Pool }

func newPostgresTable(pool *pgxpool.Pool) *postgresTable { return &postgresTable{pool: pool} }

type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// db is the projection's transaction when ctx has one, else the pool.
func (p *postgresTable) db(ctx context.Context) querier {
	if tx := postgres.TxFrom(ctx); tx != nil {
		return tx
	}
	return p.pool
}

func ident(target string) string { return pgx.Identifier{target}.Sanitize() }

func (p *postgresTable) create(ctx context.Context, target string) error {
	_, err := p.db(ctx).Exec(ctx, `CREATE TABLE IF NOT EXISTS `+ident(target)+` (
		order_id    text PRIMARY KEY,
		customer_id text NOT NULL,
		status      text NOT NULL,
		total_cents bigint NOT NULL,
		item_count  integer NOT NULL,
		placed_at   timestamptz,
		paid_at     timestamptz,
		shipped_at  timestamptz,
		version     integer NOT NULL
	)`)
	if err != nil {
		return fmt.Errorf("creating %s: %w", target, err)
	}
	return nil
}

func (p *postgresTable) drop(ctx context.Context, target string) error {
	_, err := p.db(ctx).Exec(ctx, `DROP TABLE IF EXISTS `+ident(target))
	return err
}

const summaryColumns = `order_id, customer_id, status, total_cents, item_count, placed_at, paid_at, shipped_at, version`

func scanSummary(row pgx.Row) (Summary, bool, error) {
	var s Summary
	err := row.Scan(&s.OrderID, &s.CustomerID, &s.Status, &s.TotalCents, &s.ItemCount, &s.PlacedAt, &s.PaidAt, &s.ShippedAt, &s.Version)
	if errors.Is(err, pgx.ErrNoRows) {
		return Summary{}, false, nil
	}
	if err != nil {
		return Summary{}, false, err
	}
	utc(s.PlacedAt, s.PaidAt, s.ShippedAt)
	return s, true, nil
}

func utc(ts ...*time.Time) {
	for _, t := range ts {
		if t != nil {
			*t = t.UTC()
		}
	}
}

// apply folds the event into the row in Go (one fold, shared with the
// memory table) and writes the row back.
func (p *postgresTable) apply(ctx context.Context, target string, env event.Envelope, e event.Event) error {
	db := p.db(ctx)
	s, _, err := scanSummary(db.QueryRow(ctx, `SELECT `+summaryColumns+` FROM `+ident(target)+` WHERE order_id = $1 FOR UPDATE`, env.Key))
	if err != nil {
		return err
	}
	s = foldSummary(s, env, e)
	_, err = db.Exec(ctx, `INSERT INTO `+ident(target)+` (`+summaryColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (order_id) DO UPDATE SET customer_id = EXCLUDED.customer_id, status = EXCLUDED.status,
		total_cents = EXCLUDED.total_cents, item_count = EXCLUDED.item_count, placed_at = EXCLUDED.placed_at,
		paid_at = EXCLUDED.paid_at, shipped_at = EXCLUDED.shipped_at, version = EXCLUDED.version`,
		s.OrderID, s.CustomerID, s.Status, s.TotalCents, s.ItemCount, s.PlacedAt, s.PaidAt, s.ShippedAt, s.Version)
	return err
}

func (p *postgresTable) get(ctx context.Context, target, orderID string) (Summary, bool, error) {
	return scanSummary(p.pool.QueryRow(ctx, `SELECT `+summaryColumns+` FROM `+ident(target)+` WHERE order_id = $1`, orderID))
}
