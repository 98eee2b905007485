package main

import (
	"context"
	"testing"

	"github.com/switchyard-go/switchyard/adapters/postgres"
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
