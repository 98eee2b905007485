//go:build !switchyard_no_kafka && !switchyard_no_amqp

package main

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard-go/switchyard/adapters/postgres"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// exactlyOnceAvailable reports whether the kill9-eo variant can run: it
// needs the transactional idempotency of adapters/postgres.
func exactlyOnceAvailable() bool { return true }

// exactlyOnceRecorder returns the service options and the handler that
// record a handling in table inside the transaction of
// postgres.TransactionalIdempotency, so the row and the dedupe record
// commit together or not at all. Deliveries it skips as duplicates are
// recorded, autocommitted, in the skipped table: they show the broker did
// redeliver.
func exactlyOnceRecorder(ctx context.Context, pool *pgxpool.Pool, table string, pid int) ([]service.Option, func(context.Context, Tick) error, error) {
	if err := postgres.Migrate(ctx, pool); err != nil {
		return nil, nil, err
	}
	skipped := skippedTable(table)
	mw := postgres.TransactionalIdempotency(pool, postgres.TxConfig{
		OnDuplicate: func(d *middleware.Delivery) {
			_, _ = pool.Exec(context.WithoutCancel(ctx), "INSERT INTO "+skipped+" (id, pid) VALUES ($1, $2)", d.Envelope.ID, pid)
		},
	})
	record := func(ctx context.Context, _ Tick) error {
		tx := postgres.TxFrom(ctx)
		if tx == nil {
			return fmt.Errorf("faults: no transaction in the handler's context")
		}
		_, err := tx.Exec(ctx, "INSERT INTO "+table+" (id, pid) VALUES ($1, $2)", middleware.DeliveryFrom(ctx).Envelope.ID, pid)
		return err
	}
	return []service.Option{service.WithMiddleware(mw)}, record, nil
}

// skippedTable records deliveries skipped as duplicates in the kill9-eo
// variant.
func skippedTable(table string) string { return table + "_skipped" }
