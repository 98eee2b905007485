package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard-go/switchyard/pkg/saga"
)

// DefaultSagaTable is the table of [SagaStore] when none is named.
const DefaultSagaTable = "switchyard_saga"

// SagaStore is a [saga.Store] in PostgreSQL: one row per instance with a
// version column; a save is an INSERT (version 1) or an UPDATE guarded by
// the version it read, so of two racing steps exactly one saves.
type SagaStore struct {
	pool  *pgxpool.Pool
	table string
}

var _ saga.Store = (*SagaStore)(nil)

// NewSagaStore returns the store on table ("" means [DefaultSagaTable]).
// Run [SagaStore.Migrate] once first.
func NewSagaStore(pool *pgxpool.Pool, table string) (*SagaStore, error) {
	if table == "" {
		table = DefaultSagaTable
	}
	if !identRE.MatchString(table) {
		return nil, fmt.Errorf("postgres: saga table: %q, want a name of letters, digits and _ (optionally schema.table)", table)
	}
	return &SagaStore{pool: pool, table: table}, nil
}

// Migrate creates the table if it does not exist.
func (s *SagaStore) Migrate(ctx context.Context) error {
	return migrate(ctx, s.pool, s.table,
		`CREATE TABLE IF NOT EXISTS `+s.table+` (
			saga       text NOT NULL,
			id         text NOT NULL,
			version    bigint NOT NULL,
			completed  boolean NOT NULL DEFAULT false,
			state      bytea NOT NULL,
			applied    text[] NOT NULL DEFAULT '{}',
			pending    bytea,
			updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
			PRIMARY KEY (saga, id)
		)`)
}

// Load reads the instance; Version 0 when there is none.
func (s *SagaStore) Load(ctx context.Context, name, id string) (saga.Record, error) {
	var r saga.Record
	err := s.pool.QueryRow(ctx, `SELECT version, completed, state, applied, pending FROM `+s.table+` WHERE saga = $1 AND id = $2`, name, id).
		Scan(&r.Version, &r.Completed, &r.State, &r.Applied, &r.Pending)
	if errors.Is(err, pgx.ErrNoRows) {
		return saga.Record{}, nil
	}
	if err != nil {
		return r, fmt.Errorf("postgres: load saga %s %q: %w", name, id, err)
	}
	return r, nil
}

// Save inserts version 1 or updates over version r.Version-1.
func (s *SagaStore) Save(ctx context.Context, name, id string, r saga.Record) error {
	applied := r.Applied
	if applied == nil {
		applied = []string{}
	}
	var (
		sql  string
		args = []any{name, id, r.Version, r.Completed, r.State, applied, r.Pending}
	)
	if r.Version == 1 {
		sql = `INSERT INTO ` + s.table + ` (saga, id, version, completed, state, applied, pending) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (saga, id) DO NOTHING`
	} else {
		sql = `UPDATE ` + s.table + ` SET version = $3, completed = $4, state = $5, applied = $6, pending = $7, updated_at = clock_timestamp()
			WHERE saga = $1 AND id = $2 AND version = $3 - 1`
	}
	tag, err := s.pool.Exec(ctx, sql, args...)
	if err != nil {
		return fmt.Errorf("postgres: save saga %s %q: %w", name, id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: save saga %s %q version %d: %w", name, id, r.Version, saga.ErrConflict)
	}
	return nil
}

// ClearPending forgets the pending messages of version.
func (s *SagaStore) ClearPending(ctx context.Context, name, id string, version int64) error {
	if _, err := s.pool.Exec(ctx, `UPDATE `+s.table+` SET pending = NULL WHERE saga = $1 AND id = $2 AND version = $3`, name, id, version); err != nil {
		return fmt.Errorf("postgres: clear saga pending %s %q: %w", name, id, err)
	}
	return nil
}
