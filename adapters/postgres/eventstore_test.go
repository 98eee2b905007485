package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard-go/switchyard/adapters/postgres"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/eventstore"
	"github.com/switchyard-go/switchyard/pkg/eventstore/eventstoretest"
	"github.com/switchyard-go/switchyard/pkg/outbox"
)

func newEventStore(t *testing.T, pool *pgxpool.Pool, cfg postgres.EventStoreConfig) *postgres.EventStore {
	t.Helper()
	cfg.Table = unique("events_")
	s, err := postgres.NewEventStore(pool, cfg)
	return migrated(t, pool, s, err)
}

func TestEventStoreConformance(t *testing.T) {
	pool := newPool(t)
	s := newEventStore(t, pool, postgres.EventStoreConfig{Source: "test"})
	eventstoretest.Run(t, func(*testing.T) eventstore.Store { return s })
	snaps := newSnapshotStore(t, pool)
	eventstoretest.RunSnapshots(t, func(*testing.T) eventstore.Store { return s }, func(*testing.T) eventstore.SnapshotStore { return snaps })
}

func newSnapshotStore(t *testing.T, pool *pgxpool.Pool) *postgres.SnapshotStore {
	t.Helper()
	s, err := postgres.NewSnapshotStore(pool, postgres.SnapshotStoreConfig{Table: unique("snapshots_")})
	return migrated(t, pool, s, err)
}

// migrated fails the test on err, migrates s and drops its table after
// the test.
func migrated[S interface {
	Migrate(context.Context) error
	Table() string
}](t *testing.T, pool *pgxpool.Pool, s S, err error) S {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = pool.Exec(context.Background(), `DROP TABLE `+s.Table()) })
	return s
}

type orderPaid struct {
	OrderID string `json:"order_id"`
}

func (orderPaid) EventType() string  { return "orders.order_paid" }
func (orderPaid) EventVersion() int  { return 1 }
func (orderPaid) EventTopic() string { return "orders" }

// TestEventStoreWritesToOutbox: appended events reach the outbox in the
// append's transaction, with the stored envelope; a conflicting append
// leaves nothing there.
func TestEventStoreWritesToOutbox(t *testing.T) {
	pool := newPool(t)
	ctx := context.Background()
	ob := newOutbox(t, pool, postgres.OutboxConfig{})
	s := newEventStore(t, pool, postgres.EventStoreConfig{Source: "orders-svc", Namespace: "prod.", Outbox: ob})
	if err := s.Append(ctx, "order-1", 0, orderPlaced{OrderID: "order-1"}, orderPaid{OrderID: "order-1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, "order-1", 0, orderPaid{OrderID: "order-1"}); !errors.Is(err, eventstore.ErrConcurrencyConflict) {
		t.Fatalf("stale append: %v, want ErrConcurrencyConflict", err)
	}
	recs, err := s.Load(ctx, "order-1")
	if err != nil || len(recs) != 2 {
		t.Fatalf("load: %d %v", len(recs), err)
	}
	pub := &recordingPublisher{}
	if n, err := (&outbox.Relay{Store: ob, Publisher: pub}).Flush(ctx); n != 2 || err != nil {
		t.Fatalf("Flush = %d, %v; want the two appended events only", n, err)
	}
	got := pub.snapshot()
	for i, m := range got {
		env, err := event.ReadEnvelope(m)
		if err != nil {
			t.Fatal(err)
		}
		if env != recs[i].Envelope {
			t.Errorf("published envelope %+v, stored %+v", env, recs[i].Envelope)
		}
		if env.Source != "orders-svc" || env.Key != "order-1" || string(m.Payload) != string(recs[i].Data) {
			t.Errorf("published %+v %s", env, m.Payload)
		}
	}
	var topics []string
	rows, _ := pool.Query(ctx, `SELECT topic FROM `+ob.Table()+` ORDER BY id`)
	for rows.Next() {
		var tp string
		_ = rows.Scan(&tp)
		topics = append(topics, tp)
	}
	rows.Close()
	if len(topics) != 2 || topics[0] != "prod.orders.order_placed" || topics[1] != "prod.orders" {
		t.Fatalf("outbox topics %v, want the events' topics under the namespace", topics)
	}
}

// TestEventStoreAppendTxRollsBackWithTheBusinessWrite: events appended in
// a transaction that rolls back are neither stored nor in the outbox.
func TestEventStoreAppendTxRollsBackWithTheBusinessWrite(t *testing.T) {
	pool := newPool(t)
	ctx := context.Background()
	ob := newOutbox(t, pool, postgres.OutboxConfig{})
	s := newEventStore(t, pool, postgres.EventStoreConfig{Outbox: ob})
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AppendTx(ctx, tx, "order-2", 0, orderPlaced{OrderID: "order-2"}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if recs, _ := s.Load(ctx, "order-2"); len(recs) != 0 {
		t.Fatalf("%d events stored after rollback", len(recs))
	}
	if n, _ := ob.Pending(ctx); n != 0 {
		t.Fatalf("%d outbox records after rollback", n)
	}
}

// readAllFrom follows the global position like a projection: it reads from
// after until a read returns nothing and returns what it read and the last
// position.
func readAllFrom(t *testing.T, s *postgres.EventStore, after int64) ([]eventstore.Record, int64) {
	t.Helper()
	var out []eventstore.Record
	for {
		recs, err := s.ReadAll(context.Background(), after, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			return out, after
		}
		for _, r := range recs {
			if r.Position <= after {
				t.Fatalf("ReadAll after %d returned position %d", after, r.Position)
			}
			after = r.Position
		}
		out = append(out, recs...)
	}
}

// TestEventStorePositionsFollowCommitOrder holds one append's transaction
// open while another append commits, with a reader following the global
// position in between. The reader must see both events, the one committed
// first at the lower position: with positions drawn at insert the held
// transaction's event would get the lower position and commit after the
// reader went past it, and be skipped for ever.
func TestEventStorePositionsFollowCommitOrder(t *testing.T) {
	pool := newPool(t)
	ctx := context.Background()
	s := newEventStore(t, pool, postgres.EventStoreConfig{})

	held, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Rollback(ctx)
	if err := s.AppendTx(ctx, held, "order-held", 0, orderPlaced{OrderID: "order-held"}); err != nil {
		t.Fatal(err)
	}

	second, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Rollback(ctx)
	var secondPID uint32
	if err := second.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&secondPID); err != nil {
		t.Fatal(err)
	}
	secondDone := make(chan error, 1)
	go func() {
		if err := s.AppendTx(ctx, second, "order-quick", 0, orderPlaced{OrderID: "order-quick"}); err != nil {
			secondDone <- err
			return
		}
		secondDone <- second.Commit(ctx)
	}()
	// Go on once the second append committed or waits for the first.
	var secondErr error
	finished := false
	eventually(t, func() bool {
		select {
		case secondErr = <-secondDone:
			finished = true
			return true
		default:
		}
		var waiting bool
		err := pool.QueryRow(ctx, `SELECT coalesce(wait_event_type = 'Lock', false) FROM pg_stat_activity WHERE pid = $1`, secondPID).Scan(&waiting)
		return err == nil && waiting
	})
	if secondErr != nil {
		t.Fatal(secondErr)
	}

	// The reader passes by while the first transaction is still open.
	got, pos := readAllFrom(t, s, 0)
	if err := held.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if !finished {
		if err := <-secondDone; err != nil {
			t.Fatal(err)
		}
	}
	more, _ := readAllFrom(t, s, pos)
	got = append(got, more...)

	var streams []string
	for _, r := range got {
		streams = append(streams, r.StreamID)
	}
	if len(got) != 2 || got[0].StreamID != "order-held" || got[1].StreamID != "order-quick" {
		t.Fatalf("the reader saw %v, want [order-held order-quick]: both events, in commit order", streams)
	}
	if got[0].Position >= got[1].Position {
		t.Fatalf("positions %d, %d: want the first commit lower", got[0].Position, got[1].Position)
	}
}

// TestEventStoreReadAllUnderConcurrentWriters: writers append to their own
// streams concurrently while a reader follows the global position; at the
// end the reader has seen every event exactly once, each stream in version
// order.
func TestEventStoreReadAllUnderConcurrentWriters(t *testing.T) {
	pool := newPool(t)
	s := newEventStore(t, pool, postgres.EventStoreConfig{})
	const writers, appends = 4, 25
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel, before the table is dropped
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for w := range writers {
		wg.Go(func() {
			stream := fmt.Sprintf("order-%d", w)
			for v := range appends {
				if err := s.Append(ctx, stream, v, orderPlaced{OrderID: stream}); err != nil {
					if ctx.Err() == nil {
						t.Error(err)
					}
					return
				}
			}
		})
	}
	writersDone := make(chan struct{})
	go func() { wg.Wait(); close(writersDone) }()

	seen := map[string]int{} // stream → last version read
	var after int64
	total := 0
	deadline := time.Now().Add(30 * time.Second)
	for done := false; ; {
		select {
		case <-writersDone:
			done = true
		default:
		}
		recs, err := s.ReadAll(ctx, after, 7)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Version != seen[r.StreamID]+1 {
				t.Fatalf("read %s version %d at position %d after version %d: an event was skipped or repeated", r.StreamID, r.Version, r.Position, seen[r.StreamID])
			}
			seen[r.StreamID] = r.Version
			after = r.Position
			total++
		}
		if done && len(recs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("read %d of %d events within 30s", total, writers*appends)
		}
	}
	if total != writers*appends {
		t.Fatalf("read %d events, want %d", total, writers*appends)
	}
}

// TestEventStoreMigrateIndexesType: Migrate adds the (type, position)
// index that ReadAll by type reads, also to a table created before it,
// and running it again changes nothing.
func TestEventStoreMigrateIndexesType(t *testing.T) {
	pool := newPool(t)
	ctx := context.Background()
	s := newEventStore(t, pool, postgres.EventStoreConfig{Source: "test"})
	indexdef := func() string {
		t.Helper()
		var def string
		err := pool.QueryRow(ctx, `SELECT coalesce(string_agg(indexdef, '; '), '') FROM pg_indexes
			WHERE tablename = $1 AND indexdef LIKE '%(type, "position")%'`, s.Table()).Scan(&def)
		if err != nil {
			t.Fatal(err)
		}
		return def
	}
	if def := indexdef(); def == "" {
		t.Fatalf("no index on (type, position) of %s after Migrate", s.Table())
	}
	// A table from before the index: Migrate adds it, twice is harmless.
	if _, err := pool.Exec(ctx, `DROP INDEX `+s.Table()+`_type_position`); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("Migrate on an existing table: %v", err)
		}
	}
	if def := indexdef(); def == "" {
		t.Fatalf("Migrate did not add the (type, position) index to an existing table")
	}
}

// TestSnapshotStoreMigratesOldTable: a snapshot table from before
// event_id gains the column on Migrate; its rows load with no event id,
// which Load does not trust.
func TestSnapshotStoreMigratesOldTable(t *testing.T) {
	pool := newPool(t)
	ctx := context.Background()
	table := unique("snapshots_")
	if _, err := pool.Exec(ctx, `CREATE TABLE `+table+` (stream_id text PRIMARY KEY, version integer NOT NULL CHECK (version > 0),
		schema_version integer NOT NULL, data bytea NOT NULL, taken_at timestamptz NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = pool.Exec(context.Background(), `DROP TABLE `+table) })
	if _, err := pool.Exec(ctx, `INSERT INTO `+table+` VALUES ('old', 3, 1, '{}', now())`); err != nil {
		t.Fatal(err)
	}
	s, err := postgres.NewSnapshotStore(pool, postgres.SnapshotStoreConfig{Table: table})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("Migrate on an old table: %v", err)
		}
	}
	if snap, ok, err := s.LoadSnapshot(ctx, "old"); err != nil || !ok || snap.Version != 3 || snap.EventID != "" {
		t.Fatalf("old row after Migrate: %+v %v %v", snap, ok, err)
	}
	if err := s.SaveSnapshot(ctx, eventstore.Snapshot{StreamID: "old", Version: 4, EventID: "e4", SchemaVersion: 1, Data: []byte(`{}`), Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if snap, _, err := s.LoadSnapshot(ctx, "old"); err != nil || snap.EventID != "e4" {
		t.Fatalf("after a new snapshot: %+v %v, want event id e4", snap, err)
	}
}
