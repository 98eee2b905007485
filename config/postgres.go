package config

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Postgres is the postgres section: the database of the postgres
// idempotency store (idempotency.store: postgres) and of the outbox
// (outbox.store: postgres). [Config.ServiceOptions] opens one pool on it
// for both when Run starts and closes it when Run returns; the service's
// own code opens its pool with [Config.OpenPostgres].
type Postgres struct {
	// DSN is the database's connection string, a URL
	// (postgres://user:password@host:5432/db?sslmode=disable) or key=value
	// pairs (host=... dbname=...); what it leaves out is read from the PG*
	// variables as libpq does. Required when a store is postgres.
	DSN string `yaml:"dsn"`
	// MaxConns bounds the pool. Default: pgx's, the larger of 4 and the
	// number of CPUs.
	MaxConns int32 `yaml:"max_conns"`
	// Migrate creates the tables the stores need (idempotency keys, the
	// outbox table) when Run starts, if they do not exist; it is idempotent
	// and safe from several instances at once. Default true; false when
	// the tables are managed elsewhere.
	Migrate *bool `yaml:"migrate"`
}

// migrate is Migrate with its default.
func (p Postgres) migrate() bool { return p.Migrate == nil || *p.Migrate }

// poolConfig parses the section into a pool configuration. Its error names
// the field but not the value, which may hold a password.
func (p Postgres) poolConfig() (*pgxpool.Config, error) {
	pc, err := pgxpool.ParseConfig(p.DSN)
	if err != nil {
		why := "not a connection string"
		if u := errors.Unwrap(err); u != nil {
			why = u.Error()
		}
		return nil, fmt.Errorf("postgres.dsn: cannot be parsed (%s), want a URL postgres://user:password@host:5432/db or key=value pairs such as host=db dbname=app", why)
	}
	if p.MaxConns > 0 {
		pc.MaxConns = p.MaxConns
	}
	return pc, nil
}

// validate reports the section's problems; needed says which setting asks
// for the database ("" when none does).
func (p Postgres) validate(needed string) error {
	var err error
	if p.MaxConns < 0 {
		err = errors.Join(err, fmt.Errorf("postgres.max_conns: %d, want >= 1 (0 means pgx's default)", p.MaxConns))
	}
	switch {
	case p.DSN == "" && needed != "":
		err = errors.Join(err, fmt.Errorf("postgres.dsn: required when %s (or set SWITCHYARD_POSTGRES_DSN)", needed))
	case p.DSN != "":
		if _, perr := p.poolConfig(); perr != nil {
			err = errors.Join(err, perr)
		}
	}
	return err
}

// OpenPostgres opens a pool on the postgres section's database, for the
// service's own writes (the transactions that add to the outbox, say).
// It does not connect until the pool is used. The caller closes it.
func (c Config) OpenPostgres(ctx context.Context) (*pgxpool.Pool, error) {
	pc, err := c.Postgres.poolConfig()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("config: postgres: %w", err)
	}
	return pool, nil
}
