package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard-go/switchyard/pkg/schedule"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// DefaultScheduleTable is the table of [Schedule] when none is named.
const DefaultScheduleTable = "switchyard_schedule"

// Schedule is a [schedule.Store] in PostgreSQL: scheduled messages survive
// restarts of the service and of the broker, and relays on several
// instances share the table (a claim takes rows with FOR UPDATE SKIP
// LOCKED and holds them by a lease, claimed_until). Cancel deletes a row
// that no relay claimed.
type Schedule struct {
	pool  *pgxpool.Pool
	table string
}

var _ schedule.Store = (*Schedule)(nil)

// NewSchedule returns the store on table ("" means [DefaultScheduleTable]).
// Run [Schedule.Migrate] once first.
func NewSchedule(pool *pgxpool.Pool, table string) (*Schedule, error) {
	if table == "" {
		table = DefaultScheduleTable
	}
	if !identRE.MatchString(table) {
		return nil, fmt.Errorf("postgres: schedule table: %q, want a name of letters, digits and _ (optionally schema.table)", table)
	}
	return &Schedule{pool: pool, table: table}, nil
}

// Migrate creates the table and its index if they do not exist.
func (s *Schedule) Migrate(ctx context.Context) error {
	return migrate(ctx, s.pool, s.table,
		`CREATE TABLE IF NOT EXISTS `+s.table+` (
			id            text PRIMARY KEY,
			topic         text NOT NULL,
			metadata      jsonb NOT NULL DEFAULT '{}',
			payload       bytea NOT NULL,
			due_at        timestamptz NOT NULL,
			claimed_until timestamptz,
			created_at    timestamptz NOT NULL DEFAULT clock_timestamp()
		)`,
		`CREATE INDEX IF NOT EXISTS `+s.base()+`_due ON `+s.table+` (due_at)`,
	)
}

// Add inserts e; an id already stored is left as it is.
func (s *Schedule) Add(ctx context.Context, e schedule.Entry) error {
	md := map[string]string(e.Message.Metadata)
	if md == nil {
		md = map[string]string{}
	}
	payload := e.Message.Payload
	if payload == nil {
		payload = []byte{}
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO `+s.table+` (id, topic, metadata, payload, due_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING`,
		e.ID, e.Topic, md, payload, e.Due)
	if err != nil {
		return fmt.Errorf("postgres: schedule %q: %w", e.ID, err)
	}
	return nil
}

// Cancel deletes the row id unless a relay holds its claim.
func (s *Schedule) Cancel(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM `+s.table+` WHERE id = $1 AND (claimed_until IS NULL OR claimed_until < clock_timestamp())`, id)
	if err != nil {
		return fmt.Errorf("postgres: cancel scheduled %q: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: cancel scheduled %q: %w", id, service.ErrScheduleNotFound)
	}
	return nil
}

// Claim takes up to limit rows due at now that no live claim holds.
func (s *Schedule) Claim(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]schedule.Entry, error) {
	if limit < 1 {
		return nil, errors.New("postgres: schedule claim: limit < 1")
	}
	rows, err := s.pool.Query(ctx, `UPDATE `+s.table+` SET claimed_until = clock_timestamp() + $3 * interval '1 microsecond'
		WHERE id IN (SELECT id FROM `+s.table+`
			WHERE due_at <= $1 AND (claimed_until IS NULL OR claimed_until < clock_timestamp())
			ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED)
		RETURNING id, topic, metadata, payload, due_at`, now, limit, lease.Microseconds())
	if err != nil {
		return nil, fmt.Errorf("postgres: schedule claim: %w", err)
	}
	defer rows.Close()
	var out []schedule.Entry
	for rows.Next() {
		var (
			e       schedule.Entry
			md      map[string]string
			payload []byte
		)
		if err := rows.Scan(&e.ID, &e.Topic, &md, &payload, &e.Due); err != nil {
			return nil, fmt.Errorf("postgres: schedule claim: %w", err)
		}
		e.Message = message.NewMessage(e.ID, payload)
		e.Message.Metadata = md
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: schedule claim: %w", err)
	}
	// UPDATE ... RETURNING gives no order: earliest first, as promised.
	slices.SortFunc(out, func(a, b schedule.Entry) int { return a.Due.Compare(b.Due) })
	return out, nil
}

// Done deletes the published row id.
func (s *Schedule) Done(ctx context.Context, id string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM `+s.table+` WHERE id = $1`, id); err != nil {
		return fmt.Errorf("postgres: schedule done %q: %w", id, err)
	}
	return nil
}

// Release clears the claims of ids.
func (s *Schedule) Release(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := s.pool.Exec(ctx, `UPDATE `+s.table+` SET claimed_until = NULL WHERE id = ANY($1)`, ids); err != nil {
		return fmt.Errorf("postgres: schedule release: %w", err)
	}
	return nil
}

// Pending is how many rows wait (claimed or not).
func (s *Schedule) Pending(ctx context.Context) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM `+s.table).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: schedule pending: %w", err)
	}
	return n, nil
}

// base is the table's name without its schema, for index names.
func (s *Schedule) base() string {
	if i := strings.IndexByte(s.table, '.'); i >= 0 {
		return s.table[i+1:]
	}
	return s.table
}
