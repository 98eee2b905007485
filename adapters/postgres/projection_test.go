package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/adapters/postgres"
	"github.com/switchyard-go/switchyard/pkg/eventstore"
	"github.com/switchyard-go/switchyard/pkg/projection"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// summaries is a read model in PostgreSQL whose rows count how often an
// event was applied to them, so that a duplicate effect shows.
type summaries struct {
	pool *pgxpool.Pool
	name string // projection name; targets name_v1, name_v2; the view is name
	// hook, if set, runs in the handler after its write, with the order id.
	hook func(ctx context.Context, orderID string) error
}

func newSummaries(t *testing.T, pool *pgxpool.Pool) *summaries {
	t.Helper()
	s := &summaries{pool: pool, name: unique("sum_")}
	t.Cleanup(func() {
		ctx := context.Background()
		_, _ = pool.Exec(ctx, `DROP VIEW IF EXISTS `+s.name)
		for g := 1; g <= 3; g++ {
			_, _ = pool.Exec(ctx, fmt.Sprintf(`DROP TABLE IF EXISTS %s_v%d`, s.name, g))
		}
	})
	return s
}

func newProjectionStore(t *testing.T, pool *pgxpool.Pool) *postgres.ProjectionStore {
	t.Helper()
	s, err := postgres.NewProjectionStore(pool, postgres.ProjectionStoreConfig{Table: unique("projections_")})
	t.Cleanup(func() { _, _ = pool.Exec(context.Background(), `DROP TABLE IF EXISTS `+s.Table()+`_seen`) })
	return migrated(t, pool, s, err)
}

// projection returns the summaries projection on store; its switch points
// the view at the new table and drops the old one.
func (s *summaries) projection(t *testing.T, store projection.Store, opts ...projection.Option) *projection.Projection {
	t.Helper()
	opts = append([]projection.Option{
		projection.WithBatchSize(10),
		projection.WithPollInterval(5 * time.Millisecond),
		projection.WithSetup(func(ctx context.Context, target string) error {
			_, err := postgres.TxFrom(ctx).Exec(ctx, `CREATE TABLE `+target+` (order_id text PRIMARY KEY, status text NOT NULL, applied integer NOT NULL)`)
			return err
		}),
		projection.WithSwitch(func(ctx context.Context, from, to string) error {
			tx := postgres.TxFrom(ctx)
			if _, err := tx.Exec(ctx, `CREATE OR REPLACE VIEW `+s.name+` AS SELECT * FROM `+to); err != nil || from == "" {
				return err
			}
			_, err := tx.Exec(ctx, `DROP TABLE `+from)
			return err
		}),
	}, opts...)
	p, err := projection.New(s.name, store, nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	err = projection.Handle(p, func(ctx context.Context, e orderPlaced) error {
		_, err := postgres.TxFrom(ctx).Exec(ctx, `INSERT INTO `+projection.Target(ctx)+` AS t (order_id, status, applied) VALUES ($1, 'placed', 1)
			ON CONFLICT (order_id) DO UPDATE SET applied = t.applied + 1`, e.OrderID)
		if err == nil && s.hook != nil {
			err = s.hook(ctx, e.OrderID)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	err = projection.Handle(p, func(ctx context.Context, e orderPaid) error {
		// An upsert, commutative with the placed one: a broker does not
		// order events of different topics.
		_, err := postgres.TxFrom(ctx).Exec(ctx, `INSERT INTO `+projection.Target(ctx)+` AS t (order_id, status, applied) VALUES ($1, 'paid', 1)
			ON CONFLICT (order_id) DO UPDATE SET status = 'paid', applied = t.applied + 1`, e.OrderID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type row struct {
	status  string
	applied int
}

func (s *summaries) rows(t *testing.T, table string) map[string]row {
	t.Helper()
	rows, err := s.pool.Query(context.Background(), `SELECT order_id, status, applied FROM `+table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]row{}
	for rows.Next() {
		var id string
		var r row
		if err := rows.Scan(&id, &r.status, &r.applied); err != nil {
			t.Fatal(err)
		}
		out[id] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// appendOrders appends orders o<from>..o<to-1>: placed, and paid for even
// numbers.
func appendOrders(t *testing.T, es eventstore.Store, from, to int) {
	t.Helper()
	ctx := context.Background()
	for i := from; i < to; i++ {
		id := fmt.Sprintf("o%d", i)
		if err := es.Append(ctx, id, 0, orderPlaced{OrderID: id}); err != nil {
			t.Error(err)
			return
		}
		if i%2 == 0 {
			if err := es.Append(ctx, id, 1, orderPaid{OrderID: id}); err != nil {
				t.Error(err)
				return
			}
		}
	}
}

// expected is the read model the events up to position upTo give, each
// applied once.
func expected(t *testing.T, es *postgres.EventStore, upTo int64) map[string]row {
	t.Helper()
	recs, err := es.ReadAll(context.Background(), 0, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]row{}
	for _, r := range recs {
		if r.Position > upTo {
			break
		}
		switch r.Type() {
		case "orders.order_placed":
			out[r.StreamID] = row{"placed", 1}
		case "orders.order_paid":
			out[r.StreamID] = row{"paid", out[r.StreamID].applied + 1}
		}
	}
	return out
}

func checkpoint(t *testing.T, store *postgres.ProjectionStore, name string) projection.Checkpoint {
	t.Helper()
	cp, err := store.Checkpoint(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

func runProjection(t *testing.T, p *projection.Projection, src eventstore.AllReader) (cancel func(), done <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- p.Run(ctx, src) }()
	t.Cleanup(func() { cancel(); <-errc })
	return cancel, errc
}

// killFixture is an event store with 30 orders (45 events), a
// projection store and a summaries read model.
func killFixture(t *testing.T) (*postgres.EventStore, *postgres.ProjectionStore, *summaries) {
	t.Helper()
	pool := newPool(t)
	es := newEventStore(t, pool, postgres.EventStoreConfig{})
	appendOrders(t, es, 0, 30)
	return es, newProjectionStore(t, pool), newSummaries(t, pool)
}

// TestProjectionKilledMidBatchResumesWithoutDuplicates kills a projection
// in the middle of a batch, after a handler's write and before the commit,
// in two real ways: its database connection is terminated by the server
// (pg_terminate_backend), and its process stops (Run's context cancelled,
// a new projection on a new pool takes over). Each time the read model
// matches its checkpoint exactly, and once caught up every event was
// applied exactly once.
func TestProjectionKilledMidBatchResumesWithoutDuplicates(t *testing.T) {
	ctx := context.Background()
	t.Run("ConnectionTerminated", func(t *testing.T) {
		es, store, sum := killFixture(t)
		var killed atomic.Bool
		sum.hook = func(ctx context.Context, id string) error {
			if id != "o13" || !killed.CompareAndSwap(false, true) {
				return nil
			}
			var pid uint32
			if err := postgres.TxFrom(ctx).QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
				return err
			}
			_, err := sum.pool.Exec(context.WithoutCancel(ctx), `SELECT pg_terminate_backend($1)`, pid)
			return err // nil: the commit is what fails
		}
		p := sum.projection(t, store)
		runProjection(t, p, es)
		head, _ := es.Head(ctx)
		eventually(t, func() bool { return checkpoint(t, store, sum.name).Position == head })
		if !killed.Load() {
			t.Fatal("the connection was never terminated")
		}
		if got, want := sum.rows(t, sum.name+"_v1"), expected(t, es, head); !maps.Equal(got, want) {
			t.Fatalf("read model after the kill:\n got %v\nwant %v", got, want)
		}
		if st := p.Status(); st.Applied != 45 {
			t.Fatalf("status applied %d, want 45 (the killed batch counts once, when it committed)", st.Applied)
		}
	})

	t.Run("ProcessStopped", func(t *testing.T) {
		es, store, sum := killFixture(t)

		// The first process: its own pool, stopped after the write of the
		// last event of a batch (o19's order_placed, at position 30 with
		// batches of 10), so that only the commit is left to fail.
		recs, _ := es.ReadAll(ctx, 29, 1)
		if len(recs) != 1 || recs[0].StreamID != "o19" || recs[0].Position != 30 {
			t.Fatalf("position 30 holds %v, want o19's order_placed", recs)
		}
		pool1 := newPool(t)
		store1, err := postgres.NewProjectionStore(pool1, postgres.ProjectionStoreConfig{Table: store.Table()})
		if err != nil {
			t.Fatal(err)
		}
		first := sum.projection(t, store1)
		runCtx, stop := context.WithCancel(ctx)
		sum.hook = func(_ context.Context, id string) error {
			if id == "o19" {
				stop()
			}
			return nil
		}
		if err := first.Run(runCtx, es); err != nil {
			t.Fatalf("Run of the stopped process: %v", err)
		}
		pool1.Close()
		cp := checkpoint(t, store, sum.name)
		if cp.Position == 0 {
			t.Fatal("nothing was committed before the stop; the test needs a batch before o13's")
		}
		if got, want := sum.rows(t, sum.name+"_v1"), expected(t, es, cp.Position); !maps.Equal(got, want) {
			t.Fatalf("read model at the stop does not match its checkpoint %d:\n got %v\nwant %v", cp.Position, got, want)
		}
		if _, ok := sum.rows(t, sum.name+"_v1")["o19"]; ok || cp.Position != 20 {
			t.Fatalf("checkpoint %d, o19 written %v: want the batch of o19 undone, the checkpoint at 20", cp.Position, ok)
		}

		// The next process resumes from the checkpoint.
		sum.hook = nil
		second := sum.projection(t, store)
		runProjection(t, second, es)
		head, _ := es.Head(ctx)
		eventually(t, func() bool { return checkpoint(t, store, sum.name).Position == head })
		if got, want := sum.rows(t, sum.name+"_v1"), expected(t, es, head); !maps.Equal(got, want) {
			t.Fatalf("read model after the restart:\n got %v\nwant %v", got, want)
		}
	})
}

// TestProjectionRebuildMatchesLive rebuilds a projection on PostgreSQL
// while writers append and readers read its view, next to a second
// projection that is never rebuilt: after the switch and once both caught
// up, the rebuilt table equals the live one and the expected model, the
// view points at it, and the view answered every read during the rebuild.
func TestProjectionRebuildMatchesLive(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t)
	es := newEventStore(t, pool, postgres.EventStoreConfig{})
	store := newProjectionStore(t, pool)
	live, rebuilt := newSummaries(t, pool), newSummaries(t, pool)
	appendOrders(t, es, 0, 100)
	pl, pr := live.projection(t, store), rebuilt.projection(t, store)
	runProjection(t, pl, es)
	runProjection(t, pr, es)
	eventually(t, func() bool {
		head, _ := es.Head(ctx)
		return checkpoint(t, store, rebuilt.name).Position == head && checkpoint(t, store, live.name).Position == head
	})

	var wg sync.WaitGroup
	writersDone := make(chan struct{})
	for w := range 3 {
		wg.Go(func() { appendOrders(t, es, 1000*(w+1), 1000*(w+1)+40) })
	}
	go func() { wg.Wait(); close(writersDone) }()
	readerStop := make(chan struct{})
	readerDone := make(chan error, 1)
	go func() {
		most := 0
		for {
			select {
			case <-readerStop:
				readerDone <- nil
				return
			default:
			}
			var n int
			if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+rebuilt.name).Scan(&n); err != nil {
				readerDone <- fmt.Errorf("reading the view during the rebuild: %w", err)
				return
			}
			if n < most {
				readerDone <- fmt.Errorf("the view went from %d rows to %d during the rebuild", most, n)
				return
			}
			most = n
		}
	}()

	sawRebuilding := make(chan bool, 1)
	go func() {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if pr.Status().Rebuilding {
				sawRebuilding <- true
				return
			}
			time.Sleep(time.Millisecond)
		}
		sawRebuilding <- false
	}()
	if err := pr.Rebuild(ctx, es); err != nil {
		t.Fatal(err)
	}
	<-writersDone
	close(readerStop)
	if err := <-readerDone; err != nil {
		t.Fatal(err)
	}
	if !<-sawRebuilding {
		t.Error("Status never said rebuilding during the rebuild")
	}
	head, _ := es.Head(ctx)
	eventually(t, func() bool {
		return checkpoint(t, store, rebuilt.name).Position == head && checkpoint(t, store, live.name).Position == head
	})
	cp := checkpoint(t, store, rebuilt.name)
	if cp.Target != rebuilt.name+"_v2" || cp.Generation != 2 || cp.Rebuild != nil {
		t.Fatalf("checkpoint after the rebuild %+v", cp)
	}
	want := expected(t, es, head)
	if got := live.rows(t, live.name+"_v1"); !maps.Equal(got, want) {
		t.Fatalf("live model is not the expected one: %d rows, want %d", len(got), len(want))
	}
	if got := rebuilt.rows(t, rebuilt.name); !maps.Equal(got, want) {
		t.Fatalf("rebuilt model (through the view) differs from the live one: %d rows, want %d", len(got), len(want))
	}
	var old bool
	_ = pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, rebuilt.name+"_v1").Scan(&old)
	if old {
		t.Error("the old table is still there after the switch")
	}
	if st := pr.Status(); st.Rebuilding || st.Target != rebuilt.name+"_v2" || st.Lag != 0 {
		t.Errorf("status after the rebuild %+v", st)
	}
	if target, err := pr.Target(ctx); err != nil || target != rebuilt.name+"_v2" {
		t.Errorf("Target after the rebuild: %q, %v", target, err)
	}
}

// TestProjectionFromBrokerAppliesEachMessageOnce feeds a projection from a
// consumer group (the memory broker: what is under test is the PostgreSQL
// unit of work) with every message delivered twice and one attempt that
// fails after its write: each event is applied exactly once.
func TestProjectionFromBrokerAppliesEachMessageOnce(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t)
	es := newEventStore(t, pool, postgres.EventStoreConfig{})
	store := newProjectionStore(t, pool)
	sum := newSummaries(t, pool)
	var failed atomic.Bool
	sum.hook = func(_ context.Context, id string) error {
		if id == "o3" && failed.CompareAndSwap(false, true) {
			return errors.New("failing after the write")
		}
		return nil
	}
	p := sum.projection(t, store)
	b, err := memory.New(memory.Config{NackBackoff: time.Millisecond, MaxNackBackoff: 5 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	svc := service.New(b)
	if err := p.Subscribe(svc, service.Concurrency(4)); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- svc.Run(runCtx) }()
	defer func() { cancel(); <-done }()
	<-svc.Ready()

	appendOrders(t, es, 0, 10)
	recs, _ := es.ReadAll(ctx, 0, 100)
	for range 2 {
		for _, r := range recs {
			topic := "orders"
			if r.Type() == "orders.order_placed" {
				topic = "orders.order_placed"
			}
			if err := b.Publisher().Publish(topic, r.Message()); err != nil {
				t.Fatal(err)
			}
		}
	}
	eventually(t, func() bool { return svc.Stats().Handled == int64(2*len(recs)) })
	head, _ := es.Head(ctx)
	if got, want := sum.rows(t, sum.name+"_v1"), expected(t, es, head); !maps.Equal(got, want) {
		t.Fatalf("broker-fed model:\n got %v\nwant %v", got, want)
	}
	if !failed.Load() {
		t.Fatal("the failing attempt never ran")
	}
}

// TestSubscriptionNeverMissesLateCommits: writers append in transactions
// whose commits are deliberately delayed by random amounts, so that
// appends commit out of the order they began in, while a catch-up
// subscription follows the store live. The subscription sees every event
// exactly once, each stream in version order.
func TestSubscriptionNeverMissesLateCommits(t *testing.T) {
	pool := newPool(t)
	es := newEventStore(t, pool, postgres.EventStoreConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const writers, appends = 4, 20
	var wg sync.WaitGroup
	defer wg.Wait()
	for w := range writers {
		wg.Go(func() {
			id := fmt.Sprintf("order-%d", w)
			for v := range appends {
				tx, err := pool.Begin(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				if err := es.AppendTx(ctx, tx, id, v, orderPlaced{OrderID: id}); err != nil {
					_ = tx.Rollback(ctx)
					t.Error(err)
					return
				}
				time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond) // the delayed commit
				if err := tx.Commit(ctx); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	sub, err := eventstore.NewSubscription(es, 0, eventstore.SubscriptionConfig{BatchSize: 3, PollInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	total := 0
	rctx, rcancel := context.WithTimeout(ctx, 60*time.Second)
	defer rcancel()
	for total < writers*appends {
		recs, err := sub.Next(rctx)
		if err != nil {
			t.Fatalf("after %d of %d events: %v", total, writers*appends, err)
		}
		for _, r := range recs {
			if r.Version != seen[r.StreamID]+1 {
				t.Fatalf("read %s version %d at position %d after version %d: an event committed late was skipped", r.StreamID, r.Version, r.Position, seen[r.StreamID])
			}
			seen[r.StreamID] = r.Version
			total++
		}
	}
}

// TestEventStoreListenWakesSubscriptions: with an hour between polls, a
// caught-up subscription and a projection still see an append at once,
// woken by the append's NOTIFY.
func TestEventStoreListenWakesSubscriptions(t *testing.T) {
	pool := newPool(t)
	es := newEventStore(t, pool, postgres.EventStoreConfig{})
	store := newProjectionStore(t, pool)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wakeSub, err := es.Listen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wakeProj, err := es.Listen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sum := newSummaries(t, pool)
	p := sum.projection(t, store, projection.WithPollInterval(time.Hour), projection.WithWake(wakeProj))
	runProjection(t, p, es)
	sub, err := eventstore.NewSubscription(es, 0, eventstore.SubscriptionConfig{PollInterval: time.Hour, Wake: wakeSub})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return p.Status().Target != "" }) // Run is past its first read
	got := make(chan []eventstore.Record, 1)
	go func() {
		recs, err := sub.Next(ctx)
		if err != nil && ctx.Err() == nil {
			t.Error(err)
		}
		got <- recs
	}()
	appendOrders(t, es, 0, 1)
	select {
	case recs := <-got:
		if len(recs) == 0 || recs[0].StreamID != "o0" {
			t.Fatalf("woken with %v", recs)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the subscription was not woken by the append")
	}
	eventually(t, func() bool { return maps.Equal(sum.rows(t, sum.name+"_v1"), map[string]row{"o0": {"paid", 2}}) })
	if _, err := (func() (*postgres.EventStore, error) {
		return postgres.NewEventStore(pool, postgres.EventStoreConfig{Channel: "a.b", Table: "bad table"})
	})(); err == nil || !strings.Contains(err.Error(), "eventstore.channel") || !strings.Contains(err.Error(), "eventstore.table") {
		t.Fatalf("bad config: %v, want both fields named", err)
	}
}

// TestProjectionTwoProcessesApplyEachEventOnce runs one projection in two
// processes (two pools) while writers append: the checkpoint row's lock
// lets one batch at a time commit and the other process continues from the
// moved checkpoint, so every event is applied exactly once.
func TestProjectionTwoProcessesApplyEachEventOnce(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t)
	es := newEventStore(t, pool, postgres.EventStoreConfig{})
	store := newProjectionStore(t, pool)
	sum := newSummaries(t, pool)
	for range 2 {
		other, err := postgres.NewProjectionStore(newPool(t), postgres.ProjectionStoreConfig{Table: store.Table()})
		if err != nil {
			t.Fatal(err)
		}
		runProjection(t, sum.projection(t, other), es)
	}
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() { appendOrders(t, es, 100*w, 100*w+30) })
	}
	wg.Wait()
	head, _ := es.Head(ctx)
	eventually(t, func() bool { return checkpoint(t, store, sum.name).Position == head })
	if got, want := sum.rows(t, sum.name+"_v1"), expected(t, es, head); !maps.Equal(got, want) {
		t.Fatalf("two processes: %d rows, want %d, or an event applied twice", len(got), len(want))
	}
}

// TestProjectionRebuildResumesAfterAStop stops a rebuild half-way (its
// context cancelled inside a handler): the live target still serves, the
// rebuild's progress is in the checkpoint, and the next Rebuild resumes it
// and produces the model once.
func TestProjectionRebuildResumesAfterAStop(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t)
	es := newEventStore(t, pool, postgres.EventStoreConfig{})
	store := newProjectionStore(t, pool)
	sum := newSummaries(t, pool)
	appendOrders(t, es, 0, 40)
	rctx, stop := context.WithCancel(ctx)
	sum.hook = func(ctx context.Context, id string) error {
		if id == "o25" && projection.Target(ctx) == sum.name+"_v2" {
			stop()
		}
		return nil
	}
	p := sum.projection(t, store)
	if err := p.Rebuild(rctx, es); !errors.Is(err, context.Canceled) {
		t.Fatalf("stopped rebuild: %v, want context.Canceled", err)
	}
	cp := checkpoint(t, store, sum.name)
	if cp.Rebuild == nil || cp.Rebuild.Position == 0 || cp.Target != sum.name+"_v1" {
		t.Fatalf("checkpoint after the stop %+v, want a rebuild in progress beside v1", cp)
	}
	sum.hook = nil
	if err := sum.projection(t, store).Rebuild(ctx, es); err != nil {
		t.Fatal(err)
	}
	head, _ := es.Head(ctx)
	if got, want := sum.rows(t, sum.name), expected(t, es, head); !maps.Equal(got, want) {
		t.Fatalf("resumed rebuild: %d rows, want %d (or an event applied twice)", len(got), len(want))
	}
}

// TestProjectionStorePrunesSeenIDs: PruneSeen deletes, chunk by chunk,
// every id seen before the retention and none seen after; a pruned id is
// no longer seen, a kept one still is.
func TestProjectionStorePrunesSeenIDs(t *testing.T) {
	pool := newPool(t)
	ctx := context.Background()
	store := newProjectionStore(t, pool)
	mark := func(id string) bool {
		t.Helper()
		tx, err := store.Begin(ctx, "feed")
		if err != nil {
			t.Fatal(err)
		}
		seen, err := tx.MarkSeen(ctx, "feed_v1", id)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx, projection.Checkpoint{Target: "feed_v1", Generation: 1}); err != nil {
			t.Fatal(err)
		}
		return seen
	}
	mark("recent")
	mark("old")
	// 2,500 more ids seen two days ago: more than two chunks.
	if _, err := pool.Exec(ctx, `INSERT INTO `+store.Table()+`_seen (projection, target, message_id, seen_at)
		SELECT 'feed', 'feed_v1', 'old-' || i, now() - interval '2 days' FROM generate_series(1, 2500) i`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE `+store.Table()+`_seen SET seen_at = now() - interval '2 days' WHERE message_id = 'old'`); err != nil {
		t.Fatal(err)
	}
	if _, err := store.PruneSeen(ctx, 0); err == nil || !strings.Contains(err.Error(), "older than 0s, want > 0") {
		t.Fatalf("PruneSeen(0) = %v, want it refused", err)
	}
	n, err := store.PruneSeen(ctx, 24*time.Hour)
	if err != nil || n != 2501 {
		t.Fatalf("PruneSeen(24h) = %d, %v; want the 2501 ids seen two days ago", n, err)
	}
	var left int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+store.Table()+`_seen`).Scan(&left); err != nil || left != 1 {
		t.Fatalf("%d ids left (%v), want the recent one", left, err)
	}
	if !mark("recent") {
		t.Error("the recent id is no longer seen")
	}
	if mark("old") {
		t.Error("the pruned id is still seen")
	}
}
