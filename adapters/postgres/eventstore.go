package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/eventstore"
	"github.com/switchyard-go/switchyard/pkg/outbox"
)

// DefaultEventsTable is the events table when [EventStoreConfig.Table] is
// empty.
const DefaultEventsTable = "switchyard_events"

// EventStoreConfig configures an [EventStore].
type EventStoreConfig struct {
	// Table is the events table, optionally schema-qualified. Default
	// "switchyard_events".
	Table string `yaml:"table"`
	// Source is the envelope source of appended events (the service
	// name). Default empty.
	Source string `yaml:"source"`
	// Namespace prefixes the topic of events written to the outbox, like
	// service.WithNamespace. Default empty.
	Namespace string `yaml:"namespace"`
	// Encoder encodes events; its Source, if set, wins over Source.
	// Default: JSON, time.Now.
	Encoder eventstore.Encoder `yaml:"-"`
	// Channel is the NOTIFY channel that each append notifies on commit,
	// so that catch-up subscriptions following the store live wake at once
	// ([EventStore.Listen]) instead of waiting for their next poll.
	// Default: the table name with dots replaced by underscores; "-" for
	// none.
	Channel string `yaml:"channel"`
	// Outbox, if set, receives every appended event in the append's
	// transaction, to its topic (event.TopicOf) under Namespace, so that a
	// relay publishes each stored event at least once.
	Outbox *Outbox `yaml:"-"`
}

// Validate reports every problem at once.
func (c EventStoreConfig) Validate() error {
	var err error
	if c.Table != "" && !identRE.MatchString(c.Table) {
		err = errors.Join(err, fmt.Errorf("eventstore.table: %q, want an SQL identifier ([A-Za-z_][A-Za-z0-9_]*), optionally schema-qualified", c.Table))
	}
	if c.Channel != "" && c.Channel != "-" && (!identRE.MatchString(c.Channel) || strings.Contains(c.Channel, ".")) {
		err = errors.Join(err, fmt.Errorf("eventstore.channel: %q, want an SQL identifier without dots, or \"-\" for none", c.Channel))
	}
	return err
}

// EventStore is an [eventstore.Store] in PostgreSQL: one row per event,
// unique on (stream_id, version), so of concurrent appends at one version
// exactly one commits and the others get [eventstore.ErrConcurrencyConflict].
//
// # Global position
//
// The table's position column orders every event of every stream, in
// commit order, and [EventStore.ReadAll] reads from a position. An identity
// column alone is not commit-ordered: a transaction that took position 7
// may commit after one that took 8, and a reader that already went past 8
// would never see 7. So every append takes a transaction-level advisory
// lock (one per table) before it inserts, and holds it until its
// transaction ends: positions are drawn only by the lock holder, and the
// next holder gets the lock only after the previous commit is visible.
// The cost is that appends to one table commit one at a time, from the
// insert to the end of the transaction: keep the transactions of
// [EventStore.AppendTx] short after the append.
type EventStore struct {
	pool    *pgxpool.Pool
	table   string
	channel string
	base    string
	ns      string
	enc     eventstore.Encoder
	ob      *Outbox
}

var (
	_ eventstore.Store        = (*EventStore)(nil)
	_ eventstore.AllReader    = (*EventStore)(nil)
	_ eventstore.StreamReader = (*EventStore)(nil)
)

// NewEventStore returns an event store on pool. Run [EventStore.Migrate]
// once first (and the outbox's Migrate if there is one).
func NewEventStore(pool *pgxpool.Pool, cfg EventStoreConfig) (*EventStore, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if cfg.Table == "" {
		cfg.Table = DefaultEventsTable
	}
	if cfg.Encoder.Source == "" {
		cfg.Encoder.Source = cfg.Source
	}
	if cfg.Channel == "" {
		cfg.Channel = strings.ReplaceAll(cfg.Table, ".", "_")
	}
	base := cfg.Table
	if i := strings.IndexByte(base, '.'); i >= 0 {
		base = base[i+1:]
	}
	return &EventStore{pool: pool, table: cfg.Table, channel: cfg.Channel, base: base, ns: cfg.Namespace, enc: cfg.Encoder, ob: cfg.Outbox}, nil
}

// Table returns the events table's name.
func (s *EventStore) Table() string { return s.table }

// Migrate creates the events table if it does not exist. It is idempotent
// and safe to run from several instances at once.
func (s *EventStore) Migrate(ctx context.Context) error {
	return migrate(ctx, s.pool, s.table,
		`CREATE TABLE IF NOT EXISTS `+s.table+` (
			position       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			stream_id      text NOT NULL,
			version        integer NOT NULL CHECK (version > 0),
			event_id       text NOT NULL,
			type           text NOT NULL,
			schema_version integer NOT NULL,
			metadata       jsonb NOT NULL,
			data           bytea NOT NULL,
			recorded_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
			CONSTRAINT `+s.base+`_stream_version UNIQUE (stream_id, version)
		)`,
	)
}

// Append implements [eventstore.Store] in a transaction of its own.
func (s *EventStore) Append(ctx context.Context, streamID string, expectedVersion int, events ...event.Event) error {
	if len(events) == 0 {
		return nil
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: append to %q: %w", streamID, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := s.AppendTx(ctx, tx, streamID, expectedVersion, events...); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		if isUniqueViolation(err) {
			return eventstore.ConflictError(streamID, expectedVersion, -1)
		}
		return fmt.Errorf("postgres: append to %q: commit: %w", streamID, err)
	}
	return nil
}

// AppendTx appends in the caller's transaction, so that business writes
// (a read model, other tables) commit with the events. On
// [eventstore.ErrConcurrencyConflict] the transaction is aborted: roll it
// back. A concurrent append at the same version waits for this
// transaction to end, so keep it short.
func (s *EventStore) AppendTx(ctx context.Context, tx pgx.Tx, streamID string, expectedVersion int, events ...event.Event) error {
	if len(events) == 0 {
		return nil
	}
	if expectedVersion < eventstore.AnyVersion {
		return fmt.Errorf("postgres: append to %q: expected version %d, want >= 0 or eventstore.AnyVersion", streamID, expectedVersion)
	}
	if expectedVersion == eventstore.AnyVersion {
		// Serialize blind appends to the stream so that they do not
		// collide on the version they compute.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, s.table+"/"+streamID); err != nil {
			return fmt.Errorf("postgres: append to %q: %w", streamID, err)
		}
	}
	var cur int
	var last string
	err := tx.QueryRow(ctx, `SELECT version, type FROM `+s.table+` WHERE stream_id = $1 ORDER BY version DESC LIMIT 1`, streamID).Scan(&cur, &last)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("postgres: append to %q: %w", streamID, err)
	}
	if last == eventstore.StreamDeletedType {
		return eventstore.DeletedError(streamID)
	}
	if expectedVersion != eventstore.AnyVersion && cur != expectedVersion {
		return eventstore.ConflictError(streamID, expectedVersion, cur)
	}
	recs, err := s.enc.Encode(ctx, streamID, cur, events)
	if err != nil {
		return err
	}
	// Positions in commit order: see the type's doc. Taken after the
	// version check and before the insert, so a conflicting append does
	// not wait for it.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(`+positionLockClass+`, hashtext($1))`, s.table); err != nil {
		return fmt.Errorf("postgres: append to %q: take the position lock: %w", streamID, err)
	}
	b := &pgx.Batch{}
	for _, r := range recs {
		md := message.Metadata{}
		r.Envelope.Write(md)
		b.Queue(`INSERT INTO `+s.table+` (stream_id, version, event_id, type, schema_version, metadata, data)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			r.StreamID, r.Version, r.Envelope.ID, r.Envelope.Type, r.Envelope.Version, map[string]string(md), r.Data)
	}
	if s.channel != "-" {
		b.Queue(`SELECT pg_notify($1, '')`, s.channel) // delivered on commit, once per transaction
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		if isUniqueViolation(err) {
			// Another append at this version committed while we checked.
			return eventstore.ConflictError(streamID, expectedVersion, -1)
		}
		return fmt.Errorf("postgres: append to %q: %w", streamID, err)
	}
	if s.ob != nil {
		msgs := make([]outbox.Message, len(recs))
		for i, r := range recs {
			msgs[i] = outbox.Message{Topic: s.ns + event.TopicOf(events[i]), Message: r.Message()}
		}
		if err := s.ob.Add(ctx, tx, msgs...); err != nil {
			return fmt.Errorf("postgres: append to %q: %w", streamID, err)
		}
	}
	return nil
}

// positionLockClass is the first key of the two-key advisory lock that
// orders positions (the second is the table's hash). Two-key locks are a
// space of their own, apart from the one-key locks of migrate and of
// blind appends to a stream.
const positionLockClass = "1937204598" // "swev" in ASCII

// Listen returns a channel that receives (without blocking: a wake-up
// stands for one or more commits) after appends commit, for
// eventstore.SubscriptionConfig.Wake or projection.WithWake. It LISTENs
// on a dedicated connection taken from the pool until ctx ends; a lost
// connection is re-established and polling covers what it missed.
//
// Each wake-up is received once: give each follower a channel of its own
// (one Listen each), since followers sharing one would take turns and
// the others wait out their poll interval.
func (s *EventStore) Listen(ctx context.Context) (<-chan struct{}, error) {
	if s.channel == "-" {
		return nil, errors.New("postgres: event store notifications are disabled (channel \"-\")")
	}
	return listen(ctx, s.pool, s.channel, "event store")
}

// Load implements [eventstore.Store].
func (s *EventStore) Load(ctx context.Context, streamID string) ([]eventstore.Record, error) {
	recs, err := s.query(ctx, `SELECT position, stream_id, version, event_id, metadata, data FROM `+s.table+` WHERE stream_id = $1 ORDER BY version`, streamID)
	if err != nil {
		return nil, fmt.Errorf("postgres: load %q: %w", streamID, err)
	}
	return recs, nil
}

// ReadAll implements [eventstore.AllReader]: up to limit records of every
// stream with a position greater than after, of the given types (none:
// all), in position order, which is commit order (see [EventStore]).
func (s *EventStore) ReadAll(ctx context.Context, after int64, limit int, types ...string) ([]eventstore.Record, error) {
	if limit < 1 {
		return nil, fmt.Errorf("postgres: read all from %d: limit %d, want >= 1", after, limit)
	}
	const cols = `SELECT position, stream_id, version, event_id, metadata, data FROM `
	var recs []eventstore.Record
	var err error
	if len(types) == 0 {
		recs, err = s.query(ctx, cols+s.table+` WHERE position > $1 ORDER BY position LIMIT $2`, after, limit)
	} else {
		recs, err = s.query(ctx, cols+s.table+` WHERE position > $1 AND type = ANY($3) ORDER BY position LIMIT $2`, after, limit, types)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: read all from %d: %w", after, err)
	}
	return recs, nil
}

// Head implements [eventstore.AllReader]. Like ReadAll it sees committed
// appends only, and since positions follow commit order every position
// below the head that will ever exist already does.
func (s *EventStore) Head(ctx context.Context) (int64, error) {
	var head int64
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(position), 0) FROM `+s.table).Scan(&head); err != nil {
		return 0, fmt.Errorf("postgres: head of %s: %w", s.table, err)
	}
	return head, nil
}

// LoadAfter implements [eventstore.StreamReader].
func (s *EventStore) LoadAfter(ctx context.Context, streamID string, after int) ([]eventstore.Record, error) {
	recs, err := s.query(ctx, `SELECT position, stream_id, version, event_id, metadata, data FROM `+s.table+` WHERE stream_id = $1 AND version > $2 ORDER BY version`, streamID, after)
	if err != nil {
		return nil, fmt.Errorf("postgres: load %q after version %d: %w", streamID, after, err)
	}
	return recs, nil
}

func (s *EventStore) query(ctx context.Context, sql string, args ...any) ([]eventstore.Record, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var recs []eventstore.Record
	for rows.Next() {
		var r eventstore.Record
		var id string
		var md map[string]string
		if err := rows.Scan(&r.Position, &r.StreamID, &r.Version, &id, &md, &r.Data); err != nil {
			return nil, err
		}
		m := message.NewMessage(id, nil)
		for k, v := range md {
			m.Metadata[k] = v
		}
		env, err := event.ReadEnvelope(m)
		if err != nil {
			return nil, fmt.Errorf("%q version %d: %w", r.StreamID, r.Version, err)
		}
		r.Envelope = env
		recs = append(recs, r)
	}
	return recs, rows.Err()
}

func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}
