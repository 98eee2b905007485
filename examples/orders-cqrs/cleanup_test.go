package main

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard-go/switchyard/adapters/postgres"
	"github.com/switchyard-go/switchyard/internal/brokertest"
)

// dropTables removes what a test created in PostgreSQL.
func dropTables(t *testing.T, env *environment) {
	es, ok := env.store.(*postgres.EventStore)
	if !ok {
		return
	}
	pt := env.table.(*postgresTable)
	ctx := context.Background()
	if _, err := pt.pool.Exec(ctx, `DELETE FROM `+postgres.DefaultProjectionsTable+` WHERE name = $1`, env.settings.ReadModel); err != nil {
		t.Errorf("delete the checkpoint: %v", err)
	}
	for _, table := range []string{es.Table(), env.settings.ReadModel + "_v1", env.settings.ReadModel + "_v2", env.settings.ReadModel + "_v3"} {
		if _, err := pt.pool.Exec(ctx, `DROP TABLE IF EXISTS `+ident(table)); err != nil {
			t.Errorf("drop %s: %v", table, err)
		}
	}
}

// dropTable drops one table of the shared database.
func dropTable(t *testing.T, table string) {
	pool, err := pgxpool.New(context.Background(), brokertest.PostgresURL(t))
	if err != nil {
		t.Error(err)
		return
	}
	defer pool.Close()
	if _, err := pool.Exec(context.Background(), `DROP TABLE IF EXISTS `+ident(table)); err != nil {
		t.Errorf("drop %s: %v", table, err)
	}
}
