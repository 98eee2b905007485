package config

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/adapters/postgres"
	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/pkg/outbox"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// Every problem of the idempotency, outbox and postgres sections is
// reported at once, each with its field path, value and what is allowed;
// a setting that does not apply to the selected store is an error.
func TestStoreSectionsReportEveryProblem(t *testing.T) {
	for name, tc := range map[string]struct {
		yaml string
		env  []string
		want []string
	}{
		"bad values": {
			yaml: `
idempotency: {store: redis, ttl: -1s, lease: -2s, max_entries: -3}
outbox: {store: mysql, table: "no such;table", batch_size: -1, poll_interval: -1s, max_attempts: -2, backoff: {max_attempts: 3}}
postgres: {max_conns: -1}
`,
			want: []string{
				`idempotency.store: "redis", want none (default), memory or postgres`,
				`idempotency.ttl: -1s, want > 0 (0 means the default 24h0m0s)`,
				`idempotency.lease: -2s, want > 0 (0 means a lease per handler)`,
				`idempotency.max_entries: -3, want >= 1 (0 means the default 100000)`,
				`outbox.store: "mysql", want none (default) or postgres`,
				`outbox.table: "no such;table", want an SQL identifier`,
				`outbox.batch_size: -1, want >= 1 (0 means the default 100)`,
				`outbox.poll_interval: -1s, want > 0 (0 means the default 1s)`,
				`outbox.max_attempts: -2, want >= 1 failed publishes before a record is parked (0 means the default 20)`,
				`outbox.backoff.max_attempts: 3, want 0: set outbox.max_attempts, the failed publishes that park a record`,
				`postgres.max_conns: -1, want >= 1`,
			},
		},
		"settings of another store": {
			yaml: "idempotency: {store: memory, purge_interval: 1m}\n",
			want: []string{`idempotency.purge_interval: set, but it applies only to store postgres and idempotency.store is "memory"`},
		},
		"settings with the store off": {
			yaml: "idempotency: {ttl: 1h}\noutbox: {batch_size: 5}\n",
			want: []string{
				`idempotency: settings given, but idempotency.store is "": want memory or postgres`,
				`outbox: settings given, but outbox.store is "": want postgres to run the relay`,
			},
		},
		"postgres without a dsn": {
			yaml: "idempotency: {store: postgres}\n",
			want: []string{"postgres.dsn: required when idempotency.store is postgres (or set SWITCHYARD_POSTGRES_DSN)"},
		},
		"a dsn that does not parse, its password kept out": {
			yaml: "outbox: {store: postgres}\npostgres: {dsn: \"postgres://u:hunter2@host:notaport/db\"}\n",
			want: []string{"postgres.dsn: cannot be parsed ("},
		},
		"the environment, misspelt and malformed": {
			env: []string{"SWITCHYARD_IDEMPOTENCY_STORE=memory", "SWITCHYARD_IDEMPOTENCY_TTL=forever", "SWITCHYARD_OUTBOX_BATCHSIZE=5"},
			want: []string{
				`SWITCHYARD_IDEMPOTENCY_TTL (idempotency.ttl): "forever" is not a duration`,
				"SWITCHYARD_OUTBOX_BATCHSIZE: no such setting; did you mean SWITCHYARD_OUTBOX_BATCH_SIZE?",
			},
		},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseEnviron([]byte(tc.yaml), tc.env, nil)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("missing %q in:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error shows the password:\n%v", err)
			}
		})
	}
}

// The environment reaches every setting of the three sections, and the
// effective configuration fills the selected store's defaults.
func TestStoreSectionsFromTheEnvironment(t *testing.T) {
	c, err := ParseEnviron(nil, []string{
		"SWITCHYARD_IDEMPOTENCY_STORE=postgres",
		"SWITCHYARD_IDEMPOTENCY_LEASE=90s",
		"SWITCHYARD_OUTBOX_STORE=postgres",
		"SWITCHYARD_OUTBOX_TABLE=app.events_out",
		"SWITCHYARD_OUTBOX_BATCH_SIZE=7",
		"SWITCHYARD_OUTBOX_BACKOFF_INITIAL_INTERVAL=50ms",
		"SWITCHYARD_POSTGRES_DSN=postgres://u:p@db:5432/app",
		"SWITCHYARD_POSTGRES_MIGRATE=false",
		"SWITCHYARD_POSTGRES_MAX_CONNS=3",
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := c.Effective()
	if got := e.Idempotency; got.Store != StorePostgres || got.Lease != 90*time.Second || got.TTL != 24*time.Hour || got.PurgeInterval != time.Hour || got.MaxEntries != 0 {
		t.Errorf("idempotency: %+v", got)
	}
	if got := e.Outbox; got.Table != "app.events_out" || got.Channel != "app_events_out" || got.BatchSize != 7 ||
		got.PollInterval != time.Second || got.Backoff.InitialInterval != 50*time.Millisecond || got.Backoff.MaxInterval != 30*time.Second || got.Backoff.MaxAttempts != 0 || got.MaxAttempts != outbox.DefaultMaxAttempts {
		t.Errorf("outbox: %+v", got)
	}
	if got := e.Postgres; got.DSN != "postgres://u:p@db:5432/app" || got.MaxConns != 3 || got.migrate() {
		t.Errorf("postgres: %+v", got)
	}
	if got := Defaults().Effective(); got.Idempotency.Store != StoreNone || got.Outbox.Store != StoreNone {
		t.Errorf("defaults: %+v %+v", got.Idempotency, got.Outbox)
	}
}

// idemService is a service on the memory broker whose handler counts what
// it handles; it is running when idemService returns.
func idemService(t *testing.T, c Config) (*memory.Broker, *service.Service, *atomic.Int64, func() error) {
	t.Helper()
	b, err := memory.New(c.Broker.Memory, nil)
	if err != nil {
		t.Fatal(err)
	}
	svc := service.New(b, c.serviceOptions(io.Discard)...)
	var handled atomic.Int64
	if err := service.Handle(svc, "count", func(context.Context, placed) error { handled.Add(1); return nil },
		service.Group("count-"+strings.ReplaceAll(t.Name(), "/", "-"))); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	select {
	case <-svc.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("not ready")
	}
	var runErr error
	var once sync.Once
	stop := func() error { once.Do(func() { cancel(); runErr = <-done }); return runErr }
	t.Cleanup(func() { _ = stop(); _ = b.Close() })
	return b, svc, &handled, stop
}

// until waits for cond, failing the test after d.
func until(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// publishTwice sends one message twice, as a broker redelivering it would.
// It returns the message's id.
func publishTwice(t *testing.T, b *memory.Broker, svc *service.Service, id string) string {
	t.Helper()
	m, topic, err := svc.NewMessage(context.Background(), placed{ID: id})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publisher().Publish(topic, m, m.Copy()); err != nil {
		t.Fatal(err)
	}
	return m.UUID
}

// idempotency.store: memory alone makes the handlers skip a redelivery.
func TestIdempotencyMemoryFromTheFile(t *testing.T) {
	c, err := Parse([]byte("idempotency: {store: memory, max_entries: 10}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, svc, handled, _ := idemService(t, c)
	publishTwice(t, b, svc, "o-1")
	until(t, 10*time.Second, "the copy counted as a duplicate", func() bool { return svc.Stats().Duplicates == 1 })
	if n := handled.Load(); n != 1 {
		t.Errorf("handled %d times, want 1", n)
	}
}

// pgConfig is a configuration on the test database with the given
// sections, its outbox table and pool named after the test, so that tests
// running at once on the shared server do not meet.
func pgConfig(t *testing.T, sections string) (Config, string) {
	t.Helper()
	dsn := brokertest.PostgresURL(t)
	app := fmt.Sprintf("sy_cfg_%d", time.Now().UnixNano())
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	dsn += sep + "application_name=" + app
	c, err := ParseEnviron([]byte(sections), []string{"SWITCHYARD_POSTGRES_DSN=" + dsn, "SWITCHYARD_OUTBOX_TABLE=" + app}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c, app
}

// connections counts the server's connections of application name app.
func connections(t *testing.T, pool *pgxpool.Pool, app string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// On the real PostgreSQL: idempotency.store: postgres and outbox.store:
// postgres from the file alone migrate their tables, skip a redelivery
// through the shared table, relay what a transaction added to the outbox,
// and close their pool when Run returns.
func TestPostgresStoresFromTheFile(t *testing.T) {
	c, app := pgConfig(t, "idempotency: {store: postgres}\noutbox: {store: postgres, poll_interval: 50ms}\n")
	ctx := context.Background()
	own, err := pgxpool.New(ctx, brokertest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	defer own.Exec(ctx, `DROP TABLE IF EXISTS `+app)

	b, svc, handled, stop := idemService(t, c)
	if connections(t, own, app) == 0 {
		t.Error("Run started without connecting to the database")
	}

	// A redelivery is skipped: the key is in switchyard_processed.
	msgID := publishTwice(t, b, svc, "pg-"+app)
	until(t, 20*time.Second, "the copy counted as a duplicate", func() bool { return svc.Stats().Duplicates == 1 })
	if n := handled.Load(); n != 1 {
		t.Errorf("handled %d times, want 1", n)
	}
	var keys int
	if err := own.QueryRow(ctx, `SELECT count(*) FROM `+postgres.Table+` WHERE handler = 'count' AND status = 'completed' AND strpos(key, $1) > 0`, msgID).Scan(&keys); err != nil {
		t.Fatal(err)
	}
	if keys != 1 {
		t.Errorf("%d completed keys of the message in %s, want 1", keys, postgres.Table)
	}

	// What a committed transaction adds to the outbox (migrated at start) is relayed.
	ob, err := postgres.NewOutbox(own, c.Outbox.PostgresConfig())
	if err != nil {
		t.Fatal(err)
	}
	m, err := outbox.New(ctx, svc, placed{ID: "outbox-" + app})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := own.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ob.Add(ctx, tx, m); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	until(t, 20*time.Second, "the outbox record handled", func() bool { return handled.Load() == 2 })
	until(t, 20*time.Second, "the outbox record marked published", func() bool {
		n, err := ob.Pending(ctx)
		return err == nil && n == 0
	})

	if err := stop(); err != nil {
		t.Fatal(err)
	}
	until(t, 20*time.Second, "the pool closed after Run returned", func() bool { return connections(t, own, app) == 0 })
}

// A database that cannot be reached ends Run before anything is
// subscribed, saying why.
func TestPostgresUnreachableEndsRun(t *testing.T) {
	c, err := Parse([]byte("idempotency: {store: postgres}\npostgres: {dsn: \"postgres://u:p@127.0.0.1:1/db?connect_timeout=2\"}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := memory.New(c.Broker.Memory, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	svc := service.New(b, c.serviceOptions(io.Discard)...)
	if err := service.Handle(svc, "h", func(context.Context, placed) error { return nil }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = svc.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "config: postgres: connect") {
		t.Fatalf("Run: %v, want the connect error", err)
	}
}
