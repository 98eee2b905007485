package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/switchyard-go/switchyard/adapters/postgres"
	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/idempotency"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/retry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func unique(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

func newPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	url := brokertest.PostgresURL(t)
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := postgres.Migrate(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	return pool
}

func TestMigrateIsIdempotentAndConcurrent(t *testing.T) {
	pool := newPool(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := postgres.Migrate(context.Background(), pool); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

func TestStoreClaimCompleteRelease(t *testing.T) {
	pool := newPool(t)
	s := postgres.NewStore(pool)
	ctx := context.Background()
	k := unique("store/")
	c, err := s.Claim(ctx, k, time.Minute)
	if err != nil || c.State != idempotency.Claimed {
		t.Fatalf("first claim: %v %v", c.State, err)
	}
	if o, err := s.Claim(ctx, k, time.Minute); err != nil || o.State != idempotency.InProgress || !o.Until.After(time.Now()) {
		t.Fatalf("second claim: %+v %v, want in_progress with the lease end", o, err)
	}
	if err := s.Release(ctx, k, c.Token); err != nil {
		t.Fatal(err)
	}
	c, err = s.Claim(ctx, k, time.Minute)
	if err != nil || c.State != idempotency.Claimed {
		t.Fatalf("claim after release: %v %v", c.State, err)
	}
	if err := s.Complete(ctx, k, "not-the-token"); !errors.Is(err, idempotency.ErrLeaseLost) {
		t.Fatalf("complete with a wrong token: %v, want ErrLeaseLost", err)
	}
	if err := s.Complete(ctx, k, c.Token); err != nil {
		t.Fatal(err)
	}
	if o, err := s.Claim(ctx, k, time.Minute); err != nil || o.State != idempotency.Completed {
		t.Fatalf("claim after complete: %v %v, want completed", o.State, err)
	}
}

func TestStoreExpiredLeaseIsTakenOver(t *testing.T) {
	pool := newPool(t)
	s := postgres.NewStore(pool)
	ctx := context.Background()
	k := unique("lease/")
	dead, err := s.Claim(ctx, k, time.Microsecond)
	if err != nil || dead.State != idempotency.Claimed {
		t.Fatalf("claim: %v %v", dead.State, err)
	}
	time.Sleep(5 * time.Millisecond) // let the database clock pass the lease
	c, err := s.Claim(ctx, k, time.Minute)
	if err != nil || c.State != idempotency.Claimed {
		t.Fatalf("claim after lease end: %v %v, want claimed", c.State, err)
	}
	if err := s.Release(ctx, k, dead.Token); !errors.Is(err, idempotency.ErrLeaseLost) {
		t.Fatalf("dead holder's release: %v, want ErrLeaseLost", err)
	}
}

// Extend keeps a claim that would otherwise end; only its holder can.
func TestStoreExtendKeepsTheClaim(t *testing.T) {
	pool := newPool(t)
	s := postgres.NewStore(pool)
	ctx := context.Background()
	k := unique("extend/")
	c, err := s.Claim(ctx, k, 50*time.Millisecond)
	if err != nil || c.State != idempotency.Claimed {
		t.Fatalf("claim: %v %v", c.State, err)
	}
	until, err := s.Extend(ctx, k, c.Token, time.Minute)
	if err != nil || !until.After(c.Until.Add(30*time.Second)) {
		t.Fatalf("extend: until %v (claimed until %v), %v; want about a minute from now", until, c.Until, err)
	}
	if other, err := s.Claim(ctx, k, time.Minute); err != nil || other.State != idempotency.InProgress {
		t.Fatalf("second claim after extend: %v %v, want in_progress", other.State, err)
	}
	if _, err := s.Extend(ctx, k, "not-the-holder", time.Minute); !errors.Is(err, idempotency.ErrLeaseLost) {
		t.Fatalf("extend by another token: %v, want ErrLeaseLost", err)
	}
	if err := s.Complete(ctx, k, c.Token); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Extend(ctx, k, c.Token, time.Minute); !errors.Is(err, idempotency.ErrLeaseLost) {
		t.Fatalf("extend after complete: %v, want ErrLeaseLost", err)
	}
}

func TestStoreConcurrentClaimsOnlyOneWins(t *testing.T) {
	pool := newPool(t)
	s := postgres.NewStore(pool)
	k := unique("race/")
	var won atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			c, err := s.Claim(context.Background(), k, time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			if c.State == idempotency.Claimed {
				won.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	if n := won.Load(); n != 1 {
		t.Fatalf("%d of 16 concurrent claims won, want 1", n)
	}
}

func delivery(id string) *middleware.Delivery {
	return &middleware.Delivery{
		Envelope: event.Envelope{ID: id, Type: "orders.order_placed"},
		Handler:  &middleware.Info{Name: "reserve", Group: unique("inventory-")},
		Attempt:  1,
	}
}

type noWait struct{}

func (noWait) Now() time.Time                                   { return time.Now() }
func (noWait) Sleep(ctx context.Context, _ time.Duration) error { return ctx.Err() }

// TestTransactionalExactlyOnceEffects delivers one message five times, all
// at once, to a handler that writes its effect through TxFrom; the first
// attempt fails after writing. The effect must exist exactly once.
func TestTransactionalExactlyOnceEffects(t *testing.T) {
	pool := newPool(t)
	ctx := context.Background()
	table := unique("effects_")
	if _, err := pool.Exec(ctx, `CREATE TABLE `+table+` (id serial PRIMARY KEY, order_id text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = pool.Exec(context.Background(), `DROP TABLE `+table) })

	// The run that succeeds holds its transaction open until the other
	// deliveries wait on its dedupe row: as many as TransactionalIdempotency
	// lets hold a transaction (MaxConns-1) besides it; the rest wait for
	// one of those.
	waiters := min(4, int(pool.Config().MaxConns)-2)
	watch, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = watch.Close(context.Background()) })
	var watchMu sync.Mutex // a broken idempotency may run handlers at once
	var runs, dups atomic.Int32
	var unwaited atomic.Bool
	fail := errors.New("crash after the write")
	handler := func(ctx context.Context, d *middleware.Delivery) error {
		tx := postgres.TxFrom(ctx)
		if tx == nil {
			return errors.New("no transaction in context")
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+table+` (order_id) VALUES ('o-1')`); err != nil {
			return err
		}
		if runs.Add(1) == 1 {
			return fail // the write must be rolled back with the dedupe row
		}
		var pid int32
		if err := tx.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
			return err
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			var blocked int
			watchMu.Lock()
			err := watch.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))`, pid).Scan(&blocked)
			watchMu.Unlock()
			if err != nil {
				return err
			}
			if blocked >= waiters {
				break
			}
			if time.Now().After(deadline) {
				unwaited.Store(true)
				break
			}
		}
		return nil
	}
	h := middleware.Chain(handler,
		middleware.Retry(middleware.RetryConfig{Clock: noWait{}}),
		postgres.TransactionalIdempotency(pool, postgres.TxConfig{
			OnDuplicate: func(*middleware.Delivery) { dups.Add(1) },
		}))

	id := unique("msg-")
	group := unique("inventory-")
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := delivery(id)
			d.Handler.Group = group
			if err := h(ctx, d); err != nil {
				t.Errorf("delivery: %v", err)
			}
		}()
	}
	wg.Wait()
	if unwaited.Load() {
		t.Errorf("fewer than %d deliveries waited on the handling one's transaction within 10s", waiters)
	}
	// And once more after everything settled: a late redelivery.
	d := delivery(id)
	d.Handler.Group = group
	if err := h(ctx, d); err != nil {
		t.Fatal(err)
	}

	var effects int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&effects); err != nil {
		t.Fatal(err)
	}
	if effects != 1 {
		t.Fatalf("effect rows = %d, want exactly 1 (handler ran %d times)", effects, runs.Load())
	}
	if dups.Load() < 4 {
		t.Fatalf("duplicates = %d, want at least 4 (5 deliveries and 1 late redelivery, 1 handled; a retry counts when it found the key)", dups.Load())
	}
	var status string
	if err := pool.QueryRow(ctx, `SELECT status FROM `+postgres.Table+` WHERE key = $1`, group+"/"+id).Scan(&status); err != nil || status != "completed" {
		t.Fatalf("dedupe row: %q %v, want completed", status, err)
	}
}

func TestTransactionalHandlerErrorLeavesNothing(t *testing.T) {
	pool := newPool(t)
	ctx := context.Background()
	table := unique("effects_")
	if _, err := pool.Exec(ctx, `CREATE TABLE `+table+` (id serial PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = pool.Exec(context.Background(), `DROP TABLE `+table) })
	fail := errors.New("boom")
	h := middleware.Chain(func(ctx context.Context, d *middleware.Delivery) error {
		if _, err := postgres.TxFrom(ctx).Exec(ctx, `INSERT INTO `+table+` DEFAULT VALUES`); err != nil {
			return err
		}
		return fail
	}, postgres.TransactionalIdempotency(pool, postgres.TxConfig{}))
	d := delivery(unique("msg-"))
	if err := h(ctx, d); !errors.Is(err, fail) {
		t.Fatalf("err = %v, want the handler's", err)
	}
	var effects, keys int
	_ = pool.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&effects)
	_ = pool.QueryRow(ctx, `SELECT count(*) FROM `+postgres.Table+` WHERE key = $1`, middleware.IdempotencyKey(d)).Scan(&keys)
	if effects != 0 || keys != 0 {
		t.Fatalf("after a failure: %d effect rows, %d dedupe rows; want none", effects, keys)
	}
	if postgres.TxFrom(ctx) != nil {
		t.Fatal("TxFrom outside the middleware must be nil")
	}
}

func TestPurgeDeletesOldCompletedKeys(t *testing.T) {
	pool := newPool(t)
	ctx := context.Background()
	s := postgres.NewStore(pool)
	k := unique("purge/")
	c, err := s.Claim(ctx, k, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(ctx, k, c.Token); err != nil {
		t.Fatal(err)
	}
	if _, err := postgres.Purge(ctx, pool, time.Hour); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.Claim(ctx, k, time.Minute); c.State != idempotency.Completed {
		t.Fatalf("a fresh key was purged: %v", c.State)
	}
	if _, err := pool.Exec(ctx, `UPDATE `+postgres.Table+` SET completed_at = completed_at - interval '2 hours' WHERE key = $1`, k); err != nil {
		t.Fatal(err)
	}
	if n, err := postgres.Purge(ctx, pool, time.Hour); err != nil || n < 1 {
		t.Fatalf("purge: %d %v", n, err)
	}
	if c, _ := s.Claim(ctx, k, time.Minute); c.State != idempotency.Claimed {
		t.Fatalf("an old key survived purge: %v", c.State)
	}
}

// Parked keys are kept once per group and key, behind the first dead
// letter, and released by anyone sharing the database.
func TestParkedKeys(t *testing.T) {
	pool := newPool(t)
	p := postgres.NewParkedKeys(pool)
	ctx := context.Background()
	g := unique("group/")
	if first, err := p.Park(ctx, g, "k", "m1"); err != nil || first != "m1" {
		t.Fatalf("Park = %q, %v", first, err)
	}
	if first, err := p.Park(ctx, g, "k", "m2"); err != nil || first != "m1" {
		t.Fatalf("second Park = %q, %v; want it to stay behind m1", first, err)
	}
	if id, ok, err := p.Lookup(ctx, g, "k"); err != nil || !ok || id != "m1" {
		t.Fatalf("Lookup = %q, %v, %v", id, ok, err)
	}
	if _, err := p.Park(ctx, g, "j", "m3"); err != nil {
		t.Fatal(err)
	}
	l, err := p.List(ctx, g)
	if err != nil || len(l) != 2 || l[0].Key != "k" || l[1].Key != "j" || l[0].Group != g {
		t.Fatalf("List = %+v, %v; want k then j", l, err)
	}
	// Another instance (another store on the same database) releases it.
	if err := postgres.NewParkedKeys(pool).Release(ctx, g, "k"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := p.Lookup(ctx, g, "k"); ok {
		t.Error("released key still parked")
	}
}

// TestTransactionalNoPoolDeadlockAtMaxConns runs more deliveries at once
// than the pool has connections, each handler writing through its
// transaction and then through the pool itself. Were every connection held
// by a transaction whose handler waits for another, none would finish.
func TestTransactionalNoPoolDeadlockAtMaxConns(t *testing.T) {
	base := newPool(t) // skips or fails without a server; migrates
	pc := base.Config()
	pc.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	table := unique("effects_")
	if _, err := pool.Exec(ctx, `CREATE TABLE `+table+` (id text PRIMARY KEY, via text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = base.Exec(context.Background(), `DROP TABLE `+table) })

	h := middleware.Chain(func(ctx context.Context, d *middleware.Delivery) error {
		// Hold the transaction's connection while some work runs...
		tx := postgres.TxFrom(ctx)
		if _, err := tx.Exec(ctx, `INSERT INTO `+table+` VALUES ($1, 'tx')`, d.Envelope.ID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SELECT pg_sleep(0.05)`); err != nil {
			return err
		}
		// ...then use the pool as well, as handlers calling other stores do.
		_, err := pool.Exec(ctx, `INSERT INTO `+table+` VALUES ($1, 'pool')`, d.Envelope.ID+"/pool")
		return err
	}, postgres.TransactionalIdempotency(pool, postgres.TxConfig{}))

	const deliveries = 6 // concurrency 6 on MaxConns 2
	group := unique("inventory-")
	errs := make(chan error, deliveries)
	for i := range deliveries {
		go func() {
			d := delivery(fmt.Sprintf("msg-%d", i))
			d.Handler.Group = group
			errs <- h(ctx, d)
		}()
	}
	for range deliveries {
		if err := <-errs; err != nil {
			t.Fatalf("delivery: %v (a pool deadlock ends in the 20s deadline)", err)
		}
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&n); err != nil || n != 2*deliveries {
		t.Fatalf("%d effect rows, %v; want %d", n, err, 2*deliveries)
	}
}

// TestIdempotencyLeaseRenewedWhileHandlerRuns: a handler runs four times
// longer than its lease on one consumer while a second consumer (its own
// pool, as another instance) gets the same message. The second must not
// run the handler: the first keeps renewing its claim, and once it
// completes the second finds the key done and acks it as a duplicate.
func TestIdempotencyLeaseRenewedWhileHandlerRuns(t *testing.T) {
	const lease = 300 * time.Millisecond
	var runs, dups atomic.Int32
	started := make(chan struct{}, 2)
	handler := func(ctx context.Context, d *middleware.Delivery) error {
		runs.Add(1)
		started <- struct{}{}
		select {
		case <-time.After(4 * lease): // the work outlives the lease
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	consumer := func() middleware.Handler {
		store := postgres.NewStore(newPool(t))
		return middleware.Chain(handler, middleware.Idempotency(middleware.IdempotencyConfig{
			Store: store, Lease: lease,
			Backoff:     retryPolicy(20 * time.Millisecond),
			OnDuplicate: func(*middleware.Delivery) { dups.Add(1) },
		}))
	}
	first, second := consumer(), consumer()
	id, group := unique("msg-"), unique("inventory-")
	d1, d2 := delivery(id), delivery(id)
	d1.Handler.Group, d2.Handler.Group = group, group
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	done := make(chan error, 2)
	go func() { done <- first(ctx, d1) }()
	<-started
	go func() { done <- second(ctx, d2) }()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if runs.Load() != 1 || dups.Load() != 1 {
		t.Fatalf("handler ran %d times, %d duplicates; want 1 run and the second consumer's copy acked as a duplicate", runs.Load(), dups.Load())
	}
}

func retryPolicy(every time.Duration) retry.Policy {
	return retry.Policy{InitialInterval: every, MaxInterval: every, Jitter: -1}
}
