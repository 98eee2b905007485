package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/switchyard-go/switchyard/adapters/postgres"
	"github.com/switchyard-go/switchyard/config"
	"github.com/switchyard-go/switchyard/pkg/eventstore"
	"github.com/switchyard-go/switchyard/pkg/ops"
	"github.com/switchyard-go/switchyard/pkg/projection"
	"github.com/switchyard-go/switchyard/pkg/retry"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// examplePolicy keeps retries short; a configuration file's defaults and
// per-handler settings win over it.
var examplePolicy = service.Policy{
	Retry: retry.Policy{MaxAttempts: 5, InitialInterval: 20 * time.Millisecond, MaxInterval: 500 * time.Millisecond},
}

// environment is what the configuration opened: the service on its
// broker, the event store and the read model's table.
type environment struct {
	settings settings
	svc      *service.Service
	store    store
	table    summaryTable
	// checkpoints keeps the read model's checkpoint, with the table.
	checkpoints projection.Store
	// ops is the operations server (nil without an http section).
	ops     *ops.Server
	closers []func()
}

func (e *environment) close() {
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
}

// open reads the configuration file at path ("" for none: the in-memory
// broker, event store and read model), opens the broker it selects and,
// when it has a postgres section, the PostgreSQL event store and read
// model, creating their tables.
func open(ctx context.Context, path string, logger *slog.Logger) (_ *environment, err error) {
	s := defaultSettings()
	cfg, err := config.LoadApp(path, &s)
	if err != nil {
		return nil, err
	}
	env := &environment{settings: s}
	defer func() {
		if err != nil {
			env.close()
		}
	}()
	b, err := config.Open(ctx, cfg, logger)
	if err != nil {
		return nil, fmt.Errorf("opening the %s broker: %w", cfg.Broker.Type, err)
	}
	env.closers = append(env.closers, func() { _ = b.Close() })
	opts, srv, err := serviceOptions(cfg, logger)
	if err != nil {
		return nil, err
	}
	env.ops = srv
	env.svc = service.New(b, append(opts,
		service.WithDefaults(cfg.Defaults.Inherit(examplePolicy)),
		service.WithLogger(logger),
	)...)
	if err := env.svc.Err(); err != nil {
		return nil, err
	}
	if cfg.Postgres.DSN == "" {
		if cfg.Outbox.Enabled() {
			return nil, errors.New("outbox.store: postgres needs the PostgreSQL event store: set postgres.dsn")
		}
		env.store = eventstore.NewMemory(eventstore.Encoder{Source: cfg.Service.Name})
		env.table = newMemoryTable()
		env.checkpoints = projection.NewMemory()
		return env, nil
	}
	pool, err := cfg.OpenPostgres(ctx)
	if err != nil {
		return nil, err
	}
	env.closers = append(env.closers, pool.Close)
	esCfg := postgres.EventStoreConfig{Table: s.EventsTable, Source: cfg.Service.Name, Namespace: cfg.Service.Namespace}
	if cfg.Outbox.Enabled() {
		// Every stored event is also published, at least once and in
		// stream order, by the relay the outbox section runs.
		ob, err := postgres.NewOutbox(pool, cfg.Outbox.PostgresConfig())
		if err != nil {
			return nil, err
		}
		if err := ob.Migrate(ctx); err != nil {
			return nil, err
		}
		esCfg.Outbox = ob
	}
	es, err := postgres.NewEventStore(pool, esCfg)
	if err != nil {
		return nil, err
	}
	if err := es.Migrate(ctx); err != nil {
		return nil, fmt.Errorf("creating the events table: %w", err)
	}
	cps, err := postgres.NewProjectionStore(pool, postgres.ProjectionStoreConfig{})
	if err != nil {
		return nil, err
	}
	if err := cps.Migrate(ctx); err != nil {
		return nil, fmt.Errorf("creating the checkpoints table: %w", err)
	}
	env.store = es
	env.table = newPostgresTable(pool)
	env.checkpoints = cps
	return env, nil
}
