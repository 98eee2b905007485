package postgres

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard-go/switchyard/pkg/outbox"
)

// DefaultOutboxTable is the outbox table when [OutboxConfig.Table] is empty.
const DefaultOutboxTable = "switchyard_outbox"

// OutboxConfig configures an [Outbox].
type OutboxConfig struct {
	// Table is the outbox table, optionally schema-qualified
	// ("app.outbox"). Default "switchyard_outbox". Use one table per
	// service: relays publish every record of it.
	Table string `yaml:"table"`
	// Channel is the NOTIFY channel that wakes relays when a transaction
	// that added records commits. Default: the table name with dots
	// replaced by underscores. "-" disables notifications: relays poll only.
	Channel string `yaml:"channel"`
	// DeletePublished deletes records once published instead of keeping
	// them with published_at set (then [Outbox.Purge] removes them later).
	// Default false.
	DeletePublished bool `yaml:"delete_published"`
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$`)

func (c *OutboxConfig) setDefaults() {
	if c.Table == "" {
		c.Table = DefaultOutboxTable
	}
	if c.Channel == "" {
		c.Channel = strings.ReplaceAll(c.Table, ".", "_")
	}
}

// Validate reports every problem at once.
func (c OutboxConfig) Validate() error {
	var err error
	if c.Table != "" && !identRE.MatchString(c.Table) {
		err = errors.Join(err, fmt.Errorf("outbox.table: %q, want an SQL identifier ([A-Za-z_][A-Za-z0-9_]*), optionally schema-qualified", c.Table))
	}
	if c.Channel != "" && c.Channel != "-" && (!identRE.MatchString(c.Channel) || strings.Contains(c.Channel, ".")) {
		err = errors.Join(err, fmt.Errorf("outbox.channel: %q, want an SQL identifier without dots, or \"-\" for none", c.Channel))
	}
	return err
}

// Outbox is a transactional outbox in PostgreSQL. [Outbox.Add] stores
// messages in the caller's transaction, so they exist if and only if the
// business write commits; it also implements [outbox.Store] and
// [outbox.Waker] for an [outbox.Relay], which publishes them:
//
//	ob, err := postgres.NewOutbox(pool, postgres.OutboxConfig{})
//	if err != nil {
//		return err
//	}
//	if err := ob.Migrate(ctx); err != nil {
//		return err
//	}
//	go (&outbox.Relay{Store: ob, Publisher: b.Publisher(), Logger: logger}).Run(ctx)
//
// Relays on several instances share the table: a batch locks its rows
// (SELECT ... FOR UPDATE SKIP LOCKED) while it publishes, and leaves out
// rows whose key has an earlier unpublished row locked by another batch,
// so per-key order holds. Order per key is commit order when the business
// transactions of one key are serialized (a row lock on the aggregate, or
// an event stream's version) before they add to the outbox.
type Outbox struct {
	pool            *pgxpool.Pool
	table, channel  string
	base            string // table without schema, for index names
	deletePublished bool
}

var (
	_ outbox.Store  = (*Outbox)(nil)
	_ outbox.Waker  = (*Outbox)(nil)
	_ outbox.Parker = (*Outbox)(nil)
)

// NewOutbox returns an outbox on pool. Run [Outbox.Migrate] once first.
func NewOutbox(pool *pgxpool.Pool, cfg OutboxConfig) (*Outbox, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	cfg.setDefaults()
	base := cfg.Table
	if i := strings.IndexByte(base, '.'); i >= 0 {
		base = base[i+1:]
	}
	return &Outbox{pool: pool, table: cfg.Table, channel: cfg.Channel, base: base, deletePublished: cfg.DeletePublished}, nil
}

// Table returns the outbox table's name.
func (o *Outbox) Table() string { return o.table }

// Migrate creates the outbox table and its indexes if they do not exist,
// and adds the retry_at and parked_at columns to a table created by an
// older version. It is idempotent and safe to run from several instances
// at once.
func (o *Outbox) Migrate(ctx context.Context) error {
	return migrate(ctx, o.pool, o.table,
		`CREATE TABLE IF NOT EXISTS `+o.table+` (
			id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			topic        text NOT NULL,
			key          text NOT NULL DEFAULT '',
			uuid         text NOT NULL,
			metadata     jsonb NOT NULL DEFAULT '{}',
			payload      bytea NOT NULL,
			created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
			published_at timestamptz,
			attempts     integer NOT NULL DEFAULT 0,
			last_error   text,
			retry_at     timestamptz,
			parked_at    timestamptz
		)`,
		// Only when missing: ALTER TABLE would wait for every running batch.
		`DO $$ BEGIN
			IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = '`+o.table+`'::regclass AND attname = 'parked_at' AND NOT attisdropped) THEN
				ALTER TABLE `+o.table+` ADD COLUMN IF NOT EXISTS retry_at timestamptz, ADD COLUMN IF NOT EXISTS parked_at timestamptz;
			END IF;
		END $$`,
		`CREATE INDEX IF NOT EXISTS `+o.base+`_parked ON `+o.table+` (id) WHERE parked_at IS NOT NULL AND published_at IS NULL`,
		`CREATE INDEX IF NOT EXISTS `+o.base+`_unpublished ON `+o.table+` (id) WHERE published_at IS NULL`,
		`CREATE INDEX IF NOT EXISTS `+o.base+`_key_unpublished ON `+o.table+` (key, id) WHERE published_at IS NULL`,
		`CREATE INDEX IF NOT EXISTS `+o.base+`_published_at ON `+o.table+` (published_at) WHERE published_at IS NOT NULL`,
	)
}

// migrate runs stmts in one transaction under an advisory lock named after
// the table.
func migrate(ctx context.Context, pool *pgxpool.Pool, table string, stmts ...string) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: migrate %s: %w", table, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, table); err != nil {
		return fmt.Errorf("postgres: migrate %s: %w", table, err)
	}
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			return fmt.Errorf("postgres: migrate %s: %w", table, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: migrate %s: %w", table, err)
	}
	return nil
}

// Add stores msgs in tx, in order. They are published after tx commits,
// and never if it rolls back. Build each message with [outbox.New].
func (o *Outbox) Add(ctx context.Context, tx pgx.Tx, msgs ...outbox.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	for _, m := range msgs {
		if err := m.Validate(); err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
	}
	b := &pgx.Batch{}
	for _, m := range msgs {
		md := m.Message.Metadata
		if md == nil {
			md = message.Metadata{}
		}
		payload := m.Message.Payload
		if payload == nil {
			payload = []byte{}
		}
		b.Queue(`INSERT INTO `+o.table+` (topic, key, uuid, metadata, payload) VALUES ($1, $2, $3, $4, $5)`,
			m.Topic, m.Key(), m.Message.UUID, map[string]string(md), payload)
	}
	if o.channel != "-" {
		b.Queue(`SELECT pg_notify($1, '')`, o.channel) // delivered on commit, once per transaction
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("postgres: outbox add %d messages to %s: %w", len(msgs), o.table, err)
	}
	return nil
}

// Fetch implements [outbox.Store]: one transaction per batch.
func (o *Outbox) Fetch(ctx context.Context, limit int) (outbox.Batch, error) {
	if limit < 1 {
		return nil, fmt.Errorf("postgres: outbox fetch limit %d, want >= 1", limit)
	}
	tx, err := o.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: outbox fetch: %w", err)
	}
	recs, err := o.lock(ctx, tx, limit)
	if err != nil || len(recs) == 0 {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		if err != nil {
			return nil, fmt.Errorf("postgres: outbox fetch from %s: %w", o.table, err)
		}
		return &pgBatch{o: o, done: true}, nil
	}
	return &pgBatch{o: o, tx: tx, recs: recs}, nil
}

// lock locks the next due records. A record is due when it is unpublished,
// not parked and past its retry time, and no earlier unpublished record of
// its key is parked or waiting for its retry: a failing record holds back
// its own key only.
func (o *Outbox) lock(ctx context.Context, tx pgx.Tx, limit int) ([]outbox.Record, error) {
	rows, err := tx.Query(ctx, `
		SELECT id, topic, key, uuid, metadata, payload, attempts FROM `+o.table+` o
		WHERE published_at IS NULL AND parked_at IS NULL AND (retry_at IS NULL OR retry_at <= clock_timestamp())
		  AND (key = '' OR NOT EXISTS (
			SELECT 1 FROM `+o.table+` w
			WHERE w.key = o.key AND w.id < o.id AND w.published_at IS NULL
			  AND (w.parked_at IS NOT NULL OR w.retry_at > clock_timestamp())))
		ORDER BY id LIMIT $1 FOR UPDATE OF o SKIP LOCKED`, limit)
	if err != nil {
		return nil, err
	}
	var recs []outbox.Record
	var keys []string
	var maxIDs, ids []int64
	keyIdx := map[string]int{}
	for rows.Next() {
		var r outbox.Record
		var key, uuid string
		var md map[string]string
		var payload []byte
		if err := rows.Scan(&r.ID, &r.Topic, &key, &uuid, &md, &payload, &r.Attempts); err != nil {
			rows.Close()
			return nil, err
		}
		r.Message = message.NewMessage(uuid, payload)
		for k, v := range md {
			r.Message.Metadata[k] = v
		}
		recs = append(recs, r)
		ids = append(ids, r.ID)
		if key == "" {
			continue
		}
		if i, ok := keyIdx[key]; ok {
			maxIDs[i] = r.ID
		} else {
			keyIdx[key] = len(keys)
			keys = append(keys, key)
			maxIDs = append(maxIDs, r.ID)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return recs, nil
	}
	// A key whose earlier unpublished row is outside this batch (locked by
	// another relay) must wait: leave out its rows behind that one.
	rows, err = tx.Query(ctx, `
		SELECT b.key, min(o.id) FROM unnest($1::text[], $2::bigint[]) AS b(key, max_id)
		JOIN `+o.table+` o ON o.key = b.key AND o.id < b.max_id AND o.published_at IS NULL AND NOT (o.id = ANY($3))
		GROUP BY b.key`, keys, maxIDs, ids)
	if err != nil {
		return nil, err
	}
	blockedFrom := map[string]int64{}
	for rows.Next() {
		var key string
		var from int64
		if err := rows.Scan(&key, &from); err != nil {
			rows.Close()
			return nil, err
		}
		blockedFrom[key] = from
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(blockedFrom) == 0 {
		return recs, nil
	}
	kept := recs[:0]
	for _, r := range recs {
		if from, ok := blockedFrom[r.Key()]; ok && r.ID > from {
			continue // stays locked until this batch ends; fetched again later
		}
		kept = append(kept, r)
	}
	return kept, nil
}

type pgBatch struct {
	o    *Outbox
	tx   pgx.Tx
	recs []outbox.Record
	done bool
}

var errBatchEnded = errors.New("postgres: outbox batch already ended")

func (b *pgBatch) Records() []outbox.Record { return b.recs }

func (b *pgBatch) MarkPublished(ctx context.Context, ids ...int64) error {
	if b.done {
		return errBatchEnded
	}
	if len(ids) == 0 {
		return nil
	}
	q := `UPDATE ` + b.o.table + ` SET published_at = clock_timestamp() WHERE id = ANY($1)`
	if b.o.deletePublished {
		q = `DELETE FROM ` + b.o.table + ` WHERE id = ANY($1)`
	}
	if _, err := b.tx.Exec(ctx, q, ids); err != nil {
		return fmt.Errorf("postgres: outbox mark published: %w", err)
	}
	return nil
}

// MarkFailed implements [outbox.Batch]; the retry time is the database's
// clock plus retryIn, so relays with skewed clocks agree.
func (b *pgBatch) MarkFailed(ctx context.Context, id int64, cause error, retryIn time.Duration) error {
	if b.done {
		return errBatchEnded
	}
	if _, err := b.tx.Exec(ctx, `
		UPDATE `+b.o.table+` SET attempts = attempts + 1, last_error = $2,
			retry_at = clock_timestamp() + $3 * interval '1 microsecond'
		WHERE id = $1`, id, errText(cause), retryIn.Microseconds()); err != nil {
		return fmt.Errorf("postgres: outbox mark record %d failed: %w", id, err)
	}
	return nil
}

// Park implements [outbox.Batch].
func (b *pgBatch) Park(ctx context.Context, id int64, cause error) error {
	if b.done {
		return errBatchEnded
	}
	if _, err := b.tx.Exec(ctx, `
		UPDATE `+b.o.table+` SET attempts = attempts + 1, last_error = $2, retry_at = NULL, parked_at = clock_timestamp()
		WHERE id = $1`, id, errText(cause)); err != nil {
		return fmt.Errorf("postgres: outbox park record %d: %w", id, err)
	}
	return nil
}

func errText(err error) *string {
	if err == nil {
		return nil
	}
	s := err.Error()
	return &s
}

func (b *pgBatch) Commit(ctx context.Context) error {
	if b.done {
		if b.tx == nil {
			return nil // an empty batch
		}
		return errBatchEnded
	}
	b.done = true
	if err := b.tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: outbox commit: %w", err)
	}
	return nil
}

func (b *pgBatch) Rollback(ctx context.Context) error {
	if b.done {
		return nil
	}
	b.done = true
	return b.tx.Rollback(ctx)
}

// Listen implements [outbox.Waker] with LISTEN on a dedicated connection
// taken from the pool (and not returned to it). A lost connection is
// re-established; wake-ups in between are lost and polling covers them.
func (o *Outbox) Listen(ctx context.Context) (<-chan struct{}, error) {
	if o.channel == "-" {
		return nil, errors.New("postgres: outbox notifications are disabled (channel \"-\")")
	}
	return listen(ctx, o.pool, o.channel, "outbox")
}

// Parked implements [outbox.Parker]: up to limit parked records, oldest
// first, each with how many records of its key wait behind it.
func (o *Outbox) Parked(ctx context.Context, limit int) ([]outbox.Parked, error) {
	if limit < 1 {
		return nil, fmt.Errorf("postgres: outbox parked: limit %d, want >= 1", limit)
	}
	rows, err := o.pool.Query(ctx, `
		SELECT p.id, p.topic, p.key, p.uuid, p.attempts, coalesce(p.last_error, ''), p.created_at, p.parked_at,
			CASE WHEN p.key = '' THEN 0 ELSE (
				SELECT count(*) FROM `+o.table+` h WHERE h.key = p.key AND h.id > p.id AND h.published_at IS NULL) END
		FROM `+o.table+` p
		WHERE p.parked_at IS NOT NULL AND p.published_at IS NULL
		ORDER BY p.id LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: outbox parked in %s: %w", o.table, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (outbox.Parked, error) {
		var p outbox.Parked
		err := r.Scan(&p.ID, &p.Topic, &p.Key, &p.MessageID, &p.Attempts, &p.LastError, &p.CreatedAt, &p.ParkedAt, &p.Held)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: outbox parked in %s: %w", o.table, err)
	}
	return out, nil
}

// Unpark implements [outbox.Parker]: the records are due at once, with
// their attempts reset (the last error is kept until the next attempt),
// and relays are woken.
func (o *Outbox) Unpark(ctx context.Context, ids ...int64) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	return o.unpark(ctx, `id = ANY($1)`, ids)
}

// UnparkAll implements [outbox.Parker].
func (o *Outbox) UnparkAll(ctx context.Context) (int, error) {
	return o.unpark(ctx, `true`)
}

func (o *Outbox) unpark(ctx context.Context, where string, args ...any) (int, error) {
	tx, err := o.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("postgres: outbox unpark: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	tag, err := tx.Exec(ctx, `
		UPDATE `+o.table+` SET parked_at = NULL, retry_at = NULL, attempts = 0
		WHERE parked_at IS NOT NULL AND published_at IS NULL AND `+where, args...)
	if err != nil {
		return 0, fmt.Errorf("postgres: outbox unpark in %s: %w", o.table, err)
	}
	if tag.RowsAffected() > 0 && o.channel != "-" {
		if _, err := tx.Exec(ctx, `SELECT pg_notify($1, '')`, o.channel); err != nil {
			return 0, fmt.Errorf("postgres: outbox unpark: notify: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("postgres: outbox unpark: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// Pending returns how many records are not published yet, parked ones
// included.
func (o *Outbox) Pending(ctx context.Context) (int64, error) {
	var n int64
	if err := o.pool.QueryRow(ctx, `SELECT count(*) FROM `+o.table+` WHERE published_at IS NULL`).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: outbox pending: %w", err)
	}
	return n, nil
}

// Purge deletes records published before now minus olderThan and returns
// how many. Unpublished records are never purged.
func (o *Outbox) Purge(ctx context.Context, olderThan time.Duration) (int64, error) {
	tag, err := o.pool.Exec(ctx, `DELETE FROM `+o.table+` WHERE published_at < clock_timestamp() - $1 * interval '1 microsecond'`,
		olderThan.Microseconds())
	if err != nil {
		return 0, fmt.Errorf("postgres: outbox purge: %w", err)
	}
	return tag.RowsAffected(), nil
}
