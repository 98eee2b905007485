package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/switchyard-go/switchyard/adapters/postgres"
	"github.com/switchyard-go/switchyard/config"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/saga"
	"github.com/switchyard-go/switchyard/pkg/schedule"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// stores are where the saga keeps its instances and the scheduler its
// timeouts: in memory, or in PostgreSQL when the configuration has a
// postgres section (postgres.dsn, or SWITCHYARD_POSTGRES_DSN).
type stores struct {
	saga     saga.Store
	schedule schedule.Store
	durable  bool
	close    func()
}

// open opens the broker the configuration file at path selects ("" means
// the in-memory broker with its defaults), the stores, and returns the
// service options the file sets.
func open(ctx context.Context, path, tables string, logger *slog.Logger) (broker.Broker, []service.Option, stores, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, nil, stores{}, err
	}
	st := stores{saga: saga.NewMemory(), schedule: schedule.NewMemory(), close: func() {}}
	if cfg.Postgres.DSN != "" {
		if st, err = openPostgres(ctx, cfg, tables); err != nil {
			return nil, nil, stores{}, err
		}
	}
	b, err := config.Open(ctx, cfg, logger)
	if err != nil {
		st.close()
		return nil, nil, stores{}, fmt.Errorf("opening the %s broker: %w", cfg.Broker.Type, err)
	}
	opts := append(cfg.ServiceOptions(), service.WithDefaults(cfg.Defaults.Inherit(examplePolicy)))
	return b, opts, st, nil
}

// openPostgres opens the PostgreSQL stores on tables <tables>_saga and
// <tables>_schedule, creating them if needed.
func openPostgres(ctx context.Context, cfg config.Config, tables string) (stores, error) {
	pool, err := cfg.OpenPostgres(ctx)
	if err != nil {
		return stores{}, err
	}
	fail := func(err error) (stores, error) {
		pool.Close()
		return stores{}, fmt.Errorf("postgres: %w", err)
	}
	sagas, err := postgres.NewSagaStore(pool, tables+"_saga")
	if err != nil {
		return fail(err)
	}
	sched, err := postgres.NewSchedule(pool, tables+"_schedule")
	if err != nil {
		return fail(err)
	}
	if err := sagas.Migrate(ctx); err != nil {
		return fail(err)
	}
	if err := sched.Migrate(ctx); err != nil {
		return fail(err)
	}
	return stores{saga: sagas, schedule: sched, durable: true, close: pool.Close}, nil
}
