package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard-go/switchyard/pkg/eventstore"
)

// DefaultSnapshotsTable is the snapshot table when
// [SnapshotStoreConfig.Table] is empty.
const DefaultSnapshotsTable = "switchyard_snapshots"

// SnapshotStoreConfig configures a [SnapshotStore].
type SnapshotStoreConfig struct {
	// Table is the snapshot table, one row per stream, optionally
	// schema-qualified. Default "switchyard_snapshots".
	Table string `yaml:"table"`
}

// Validate reports every problem at once.
func (c SnapshotStoreConfig) Validate() error {
	if c.Table != "" && !identRE.MatchString(c.Table) {
		return fmt.Errorf("snapshots.table: %q, want an SQL identifier ([A-Za-z_][A-Za-z0-9_]*), optionally schema-qualified", c.Table)
	}
	return nil
}

// SnapshotStore is an [eventstore.SnapshotStore] in PostgreSQL: the latest
// snapshot of each stream, one row per stream, replaced by an upsert that
// never goes back to a lower version of the same schema.
type SnapshotStore struct {
	pool  *pgxpool.Pool
	table string
}

var _ eventstore.SnapshotStore = (*SnapshotStore)(nil)

// NewSnapshotStore returns a snapshot store on pool. Run
// [SnapshotStore.Migrate] once first.
func NewSnapshotStore(pool *pgxpool.Pool, cfg SnapshotStoreConfig) (*SnapshotStore, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if cfg.Table == "" {
		cfg.Table = DefaultSnapshotsTable
	}
	return &SnapshotStore{pool: pool, table: cfg.Table}, nil
}

// Table returns the snapshot table's name.
func (s *SnapshotStore) Table() string { return s.table }

// Migrate creates the snapshot table if it does not exist, and adds the
// event_id column to a table created before it (its rows get an empty one and are
// not trusted by Load until the next snapshot replaces them). It is
// idempotent and safe to run from several instances at once.
func (s *SnapshotStore) Migrate(ctx context.Context) error {
	return migrate(ctx, s.pool, s.table,
		`CREATE TABLE IF NOT EXISTS `+s.table+` (
			stream_id      text PRIMARY KEY,
			version        integer NOT NULL CHECK (version > 0),
			schema_version integer NOT NULL,
			data           bytea NOT NULL,
			taken_at       timestamptz NOT NULL
		)`,
		`ALTER TABLE `+s.table+` ADD COLUMN IF NOT EXISTS event_id text NOT NULL DEFAULT ''`,
	)
}

// SaveSnapshot implements [eventstore.SnapshotStore].
func (s *SnapshotStore) SaveSnapshot(ctx context.Context, snap eventstore.Snapshot) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO `+s.table+` AS t (stream_id, version, event_id, schema_version, data, taken_at)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (stream_id) DO UPDATE SET version = EXCLUDED.version, event_id = EXCLUDED.event_id,
			schema_version = EXCLUDED.schema_version, data = EXCLUDED.data, taken_at = EXCLUDED.taken_at
		WHERE t.schema_version <> EXCLUDED.schema_version OR t.version <= EXCLUDED.version`,
		snap.StreamID, snap.Version, snap.EventID, snap.SchemaVersion, snap.Data, snap.Time)
	if err != nil {
		return fmt.Errorf("postgres: save snapshot of %q at version %d: %w", snap.StreamID, snap.Version, err)
	}
	return nil
}

// LoadSnapshot implements [eventstore.SnapshotStore].
func (s *SnapshotStore) LoadSnapshot(ctx context.Context, streamID string) (eventstore.Snapshot, bool, error) {
	snap := eventstore.Snapshot{StreamID: streamID}
	err := s.pool.QueryRow(ctx, `SELECT version, event_id, schema_version, data, taken_at FROM `+s.table+` WHERE stream_id = $1`, streamID).
		Scan(&snap.Version, &snap.EventID, &snap.SchemaVersion, &snap.Data, &snap.Time)
	if errors.Is(err, pgx.ErrNoRows) {
		return eventstore.Snapshot{}, false, nil
	}
	if err != nil {
		return eventstore.Snapshot{}, false, fmt.Errorf("postgres: load snapshot of %q: %w", streamID, err)
	}
	return snap, true, nil
}
