package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard-go/switchyard/pkg/projection"
)

// DefaultProjectionsTable is the checkpoint table when
// [ProjectionStoreConfig.Table] is empty; the table of seen message ids is
// its name with "_seen" appended.
const DefaultProjectionsTable = "switchyard_projections"

// DefaultSeenRetention is a retention for [ProjectionStore.PruneSeen]
// longer than brokers commonly redeliver (retention of a week, delayed
// retries, dead-letter replays).
const DefaultSeenRetention = 7 * 24 * time.Hour

// seenPruneChunk is how many seen ids one statement of PruneSeen deletes,
// so that each holds its locks and writes its WAL briefly.
const seenPruneChunk = 1000

// ProjectionStoreConfig configures a [ProjectionStore].
type ProjectionStoreConfig struct {
	// Table is the checkpoint table, one row per projection name,
	// optionally schema-qualified. Default "switchyard_projections". The
	// message ids of broker-fed projections go to Table + "_seen".
	Table string `yaml:"table"`
}

// Validate reports every problem at once.
func (c ProjectionStoreConfig) Validate() error {
	if c.Table != "" && (!identRE.MatchString(c.Table) || len(c.Table) > 58) {
		return fmt.Errorf("projections.table: %q, want an SQL identifier ([A-Za-z_][A-Za-z0-9_]*, at most 58 characters), optionally schema-qualified", c.Table)
	}
	return nil
}

// ProjectionStore is a [projection.Store] in PostgreSQL: each unit of work
// of a projection is one transaction that locks the projection's
// checkpoint row (SELECT ... FOR UPDATE), runs the handlers with the
// transaction in their context ([TxFrom]), and updates the row before it
// commits. The read-model writes and the checkpoint therefore commit
// together or not at all, and a process killed between them leaves
// neither: exactly-once effects. The row lock also makes the units of work
// of one projection run one at a time across processes, which is what
// lets a rebuild switch targets atomically.
//
// Each unit of work holds one pool connection while its handlers run:
// handlers write through [TxFrom], not through the pool. Units of work of
// one projection in this process wait for their turn before they take a
// connection, so a broker-fed projection with many deliveries in flight
// holds one connection, not one per delivery blocked on the row lock.
type ProjectionStore struct {
	pool  *pgxpool.Pool
	table string
	seen  string
	locks sync.Map // projection name → chan struct{}: one unit of work per name in this process
}

var _ projection.Store = (*ProjectionStore)(nil)

// NewProjectionStore returns a checkpoint store on pool. Run
// [ProjectionStore.Migrate] once first.
func NewProjectionStore(pool *pgxpool.Pool, cfg ProjectionStoreConfig) (*ProjectionStore, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if cfg.Table == "" {
		cfg.Table = DefaultProjectionsTable
	}
	return &ProjectionStore{pool: pool, table: cfg.Table, seen: cfg.Table + "_seen"}, nil
}

// PruneSeen deletes the message ids broker-fed projections saw before now
// minus olderThan, in chunks of a thousand, each its own statement, and
// returns how many. A redelivery of a pruned id is applied again, so keep
// ids longer than the brokers may redeliver ([DefaultSeenRetention] is a
// week). Run it periodically; nothing prunes on its own. Ids seen while it
// runs are not pruned.
func (s *ProjectionStore) PruneSeen(ctx context.Context, olderThan time.Duration) (int64, error) {
	if olderThan <= 0 {
		return 0, fmt.Errorf("postgres: prune seen ids of %s: older than %s, want > 0 (e.g. postgres.DefaultSeenRetention)", s.table, olderThan)
	}
	var cutoff time.Time
	if err := s.pool.QueryRow(ctx, `SELECT clock_timestamp() - $1 * interval '1 microsecond'`, olderThan.Microseconds()).Scan(&cutoff); err != nil {
		return 0, fmt.Errorf("postgres: prune seen ids of %s: %w", s.table, err)
	}
	var total int64
	for {
		tag, err := s.pool.Exec(ctx, `DELETE FROM `+s.seen+` WHERE ctid = ANY(ARRAY(
			SELECT ctid FROM `+s.seen+` WHERE seen_at < $1 LIMIT $2))`, cutoff, seenPruneChunk)
		if err != nil {
			return total, fmt.Errorf("postgres: prune seen ids of %s: %w", s.table, err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < seenPruneChunk {
			return total, nil
		}
	}
}

// Table returns the checkpoint table's name.
func (s *ProjectionStore) Table() string { return s.table }

// Migrate creates the checkpoint and seen-id tables and their indexes if
// they do not exist. It is idempotent and safe to run from several
// instances at once.
func (s *ProjectionStore) Migrate(ctx context.Context) error {
	base := s.seen
	if i := strings.IndexByte(base, '.'); i >= 0 {
		base = base[i+1:]
	}
	return migrate(ctx, s.pool, s.table,
		`CREATE TABLE IF NOT EXISTS `+s.table+` (
			name               text PRIMARY KEY,
			position           bigint NOT NULL DEFAULT 0,
			target             text NOT NULL DEFAULT '',
			generation         integer NOT NULL DEFAULT 0,
			rebuild_target     text,
			rebuild_position   bigint,
			rebuild_generation integer,
			updated_at         timestamptz NOT NULL DEFAULT clock_timestamp()
		)`,
		`CREATE TABLE IF NOT EXISTS `+s.seen+` (
			projection text NOT NULL,
			target     text NOT NULL,
			message_id text NOT NULL,
			seen_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
			PRIMARY KEY (projection, target, message_id)
		)`,
		// PruneSeen finds the oldest ids without reading the whole table.
		`CREATE INDEX IF NOT EXISTS `+base+`_seen_at ON `+s.seen+` (seen_at)`,
	)
}

// Begin implements [projection.Store].
func (s *ProjectionStore) Begin(ctx context.Context, name string) (projection.Tx, error) {
	v, _ := s.locks.LoadOrStore(name, make(chan struct{}, 1))
	turn := v.(chan struct{})
	select {
	case turn <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("postgres: projection %q: waiting for its turn: %w", name, context.Cause(ctx))
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		<-turn
		return nil, fmt.Errorf("postgres: projection %q: begin: %w", name, err)
	}
	ptx := &projectionTx{s: s, tx: tx, name: name, turn: turn}
	if err := ptx.load(ctx); err != nil {
		_ = ptx.Rollback(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("postgres: projection %q: read checkpoint: %w", name, err)
	}
	return ptx, nil
}

// Checkpoint returns the committed checkpoint of the projection name.
func (s *ProjectionStore) Checkpoint(ctx context.Context, name string) (projection.Checkpoint, error) {
	var cp projection.Checkpoint
	var rt *string
	var rp *int64
	var rg *int
	err := s.pool.QueryRow(ctx, `SELECT position, target, generation, rebuild_target, rebuild_position, rebuild_generation FROM `+s.table+` WHERE name = $1`, name).
		Scan(&cp.Position, &cp.Target, &cp.Generation, &rt, &rp, &rg)
	if errors.Is(err, pgx.ErrNoRows) {
		return cp, nil
	}
	if err != nil {
		return cp, fmt.Errorf("postgres: projection %q: checkpoint: %w", name, err)
	}
	cp.Rebuild = rebuildState(rt, rp, rg)
	return cp, nil
}

func rebuildState(target *string, pos *int64, gen *int) *projection.RebuildState {
	if target == nil {
		return nil
	}
	rb := &projection.RebuildState{Target: *target}
	if pos != nil {
		rb.Position = *pos
	}
	if gen != nil {
		rb.Generation = *gen
	}
	return rb
}

type projectionTx struct {
	s    *ProjectionStore
	tx   pgx.Tx
	name string
	cp   projection.Checkpoint
	turn chan struct{}
	done bool
}

// release gives the projection's turn to the next unit of work, once.
func (t *projectionTx) release() {
	if !t.done {
		t.done = true
		<-t.turn
	}
}

// load makes sure the projection has a row and locks it.
func (t *projectionTx) load(ctx context.Context) error {
	if _, err := t.tx.Exec(ctx, `INSERT INTO `+t.s.table+` (name) VALUES ($1) ON CONFLICT (name) DO NOTHING`, t.name); err != nil {
		return err
	}
	var rt *string
	var rp *int64
	var rg *int
	err := t.tx.QueryRow(ctx, `SELECT position, target, generation, rebuild_target, rebuild_position, rebuild_generation FROM `+t.s.table+` WHERE name = $1 FOR UPDATE`, t.name).
		Scan(&t.cp.Position, &t.cp.Target, &t.cp.Generation, &rt, &rp, &rg)
	if err != nil {
		return err
	}
	t.cp.Rebuild = rebuildState(rt, rp, rg)
	return nil
}

func (t *projectionTx) Checkpoint() projection.Checkpoint {
	cp := t.cp
	if cp.Rebuild != nil {
		rb := *cp.Rebuild
		cp.Rebuild = &rb
	}
	return cp
}

func (t *projectionTx) Context(ctx context.Context) context.Context {
	return context.WithValue(ctx, txKey{}, t.tx)
}

func (t *projectionTx) MarkSeen(ctx context.Context, target, id string) (bool, error) {
	tag, err := t.tx.Exec(ctx, `INSERT INTO `+t.s.seen+` (projection, target, message_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, t.name, target, id)
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 0, nil
}

func (t *projectionTx) Commit(ctx context.Context, cp projection.Checkpoint) error {
	if t.done {
		return errors.New("postgres: projection " + t.name + ": unit of work already committed or rolled back")
	}
	// Whatever happens below, the transaction ends (committed, or rolled
	// back by a failed statement or commit): give the turn on.
	defer t.release()
	defer t.tx.Rollback(context.WithoutCancel(ctx))
	var rt *string
	var rp *int64
	var rg *int
	if cp.Rebuild != nil {
		rt, rp, rg = &cp.Rebuild.Target, &cp.Rebuild.Position, &cp.Rebuild.Generation
	}
	if _, err := t.tx.Exec(ctx, `UPDATE `+t.s.table+` SET position = $2, target = $3, generation = $4,
			rebuild_target = $5, rebuild_position = $6, rebuild_generation = $7, updated_at = clock_timestamp()
		WHERE name = $1`, t.name, cp.Position, cp.Target, cp.Generation, rt, rp, rg); err != nil {
		return fmt.Errorf("postgres: projection %q: update checkpoint: %w", t.name, err)
	}
	if t.cp.Target != "" && cp.Target != t.cp.Target {
		// A switch: the old target's seen ids are of no more use.
		if _, err := t.tx.Exec(ctx, `DELETE FROM `+t.s.seen+` WHERE projection = $1 AND target = $2`, t.name, t.cp.Target); err != nil {
			return fmt.Errorf("postgres: projection %q: forget the ids seen by %q: %w", t.name, t.cp.Target, err)
		}
	}
	if err := t.tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: projection %q: commit: %w", t.name, err)
	}
	return nil
}

func (t *projectionTx) Rollback(ctx context.Context) error {
	defer t.release()
	err := t.tx.Rollback(ctx)
	if errors.Is(err, pgx.ErrTxClosed) {
		return nil
	}
	return err
}
