//go:build !switchyard_no_kafka && !switchyard_no_amqp

package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// consumeCommand is the hidden subcommand a scenario re-executes this
// binary with to get a consumer it can kill.
const consumeCommand = "consume"

// readyLine is what a consumer child prints on standard output once it has
// subscribed.
const readyLine = "ready"

// consumeMain is the consumer child: it handles Ticks of the namespace's
// counter group and records each handling in a PostgreSQL table, until
// SIGTERM (graceful shutdown) or SIGKILL.
func consumeMain(args []string) int {
	fs := flag.NewFlagSet(consumeCommand, flag.ContinueOnError)
	kind := fs.String("broker", "amqp", "broker: amqp or kafka")
	ns := fs.String("ns", "", "service namespace of the scenario run")
	table := fs.String("table", "", "PostgreSQL table recording handlings")
	concurrency := fs.Int("concurrency", 16, "messages handled at once")
	exactlyOnce := fs.Bool("exactly-once", false, "record inside the idempotency transaction of adapters/postgres")
	delay := fs.Duration("delay", 0, "time each handling takes (work in flight during rebalances); a cancelled context cuts it short and fails the handling")
	slow := fs.Duration("slow", 0, "time the slow handlings take (see -slow-every)")
	slowEvery := fs.Int("slow-every", 0, "every n-th message (by sequence number) takes -slow instead of -delay; 0: none")
	ordered := fs.Bool("ordered", false, "ask for per-key order across consumers (single-active-consumer queue on RabbitMQ)")
	verbose := fs.Bool("v", false, "log at info level")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	pid := os.Getpid()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("child", pid)
	if *ns == "" || !validIdent(*table) {
		logger.Error("consume: -ns and a valid -table are required")
		return 2
	}
	ctx, stop := service.NotifyShutdown(context.Background())
	defer stop()

	pool, err := openPool(ctx)
	if err != nil {
		logger.Error("consume: postgres", "err", err)
		return 1
	}
	defer pool.Close()
	b, cfg, err := openBroker(ctx, *kind, *ns, logger)
	if err != nil {
		logger.Error("consume: broker", "err", err)
		return 1
	}
	opts := append(cfg.ServiceOptions(), service.WithLogger(logger))
	// Every handling is recorded with its key, sequence number, Kafka
	// partition and offset and its time window, so that the driver can
	// check that no key was handled on two consumers at once and that each
	// consumer kept per-key order. The window ends when the row is written
	// (the server's clock_timestamp(): the same host clock as time.Now
	// here), because the handling's effect is the row.
	insert := "INSERT INTO " + *table + " (id, pid, key, seq, part, off, started, ended) VALUES " +
		"($1, $2, $3, $4, $5, $6, $7, (extract(epoch from clock_timestamp()) * 1000000)::bigint)"
	record := func(ctx context.Context, t Tick) error {
		started := time.Now()
		took := *delay
		if *slowEvery > 0 && t.Seq%*slowEvery == 0 {
			took = *slow
		}
		if took > 0 {
			tm := time.NewTimer(took)
			select {
			case <-tm.C:
			case <-ctx.Done():
				tm.Stop()
				return ctx.Err()
			}
		}
		d := middleware.DeliveryFrom(ctx)
		_, err := pool.Exec(ctx, insert, d.Envelope.ID, pid, d.Envelope.Key, t.Seq,
			metaInt(d.Msg.Metadata.Get(header.KafkaPartition)), metaInt(d.Msg.Metadata.Get(header.KafkaOffset)),
			started.UnixMicro())
		return err
	}
	if *exactlyOnce {
		var eoOpts []service.Option
		eoOpts, record, err = exactlyOnceRecorder(ctx, pool, *table, pid)
		if err != nil {
			logger.Error("consume: exactly-once", "err", err)
			return 1
		}
		opts = append(opts, eoOpts...)
	}
	svc := service.New(b, opts...)
	hopts := []service.HandlerOption{service.Group(groupName), service.Concurrency(*concurrency)}
	if *ordered {
		hopts = append(hopts, service.WithPolicy(service.Policy{Ordered: service.On}))
	}
	if err := service.Handle(svc, groupName, record, hopts...); err != nil {
		logger.Error("consume: handle", "err", err)
		return 1
	}
	go func() {
		select {
		case <-svc.Ready():
			fmt.Println(readyLine)
		case <-ctx.Done():
		}
	}()
	runErr := svc.Run(ctx)
	closeErr := b.Close()
	st := svc.Stats()
	logger.Info("consumer stopped", "stats", fmt.Sprintf("%+v", st))
	if runErr != nil || closeErr != nil {
		logger.Error("consume: stopped with an error", "run", runErr, "close", closeErr)
		return 1
	}
	return 0
}

// openPool connects to the PostgreSQL of the tests. Commits do not wait
// for the WAL flush: the scenarios kill consumers, never PostgreSQL, and a
// committed row survives a client's death either way.
func openPool(ctx context.Context) (*pgxpool.Pool, error) {
	u, err := need(envPostgresURL)
	if err != nil {
		return nil, err
	}
	pc, err := pgxpool.ParseConfig(u)
	if err != nil {
		return nil, fmt.Errorf("faults: %s: %w", envPostgresURL, err)
	}
	pc.MaxConns = 24
	pc.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(cctx, pc)
	if err != nil {
		return nil, fmt.Errorf("faults: connect to postgres: %w", err)
	}
	if err := pool.Ping(cctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("faults: connect to postgres: %w", err)
	}
	return pool, nil
}

// handlingsTable is the table of one scenario run's handlings: one row per
// successful handling (no unique key, so duplicates show).
func handlingsTable(ns string) string {
	var sb strings.Builder
	for _, r := range strings.ToLower(ns) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			sb.WriteRune(r)
		} else {
			sb.WriteByte('_')
		}
	}
	return strings.Trim(sb.String(), "_") + "_handled"
}

func validIdent(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

func createHandlings(ctx context.Context, pool *pgxpool.Pool, table string) error {
	for _, t := range []string{table, skippedTable(table)} {
		if _, err := pool.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+t+
			" (id text NOT NULL, pid integer NOT NULL, at timestamptz NOT NULL DEFAULT now(),"+
			" key text, seq integer, part integer, off bigint, started bigint, ended bigint)"); err != nil {
			return err
		}
	}
	return nil
}

func dropHandlings(ctx context.Context, pool *pgxpool.Pool, table string) {
	_, _ = pool.Exec(ctx, "DROP TABLE IF EXISTS "+table+", "+skippedTable(table))
}

// countRows is the number of rows of table.
func countRows(ctx context.Context, pool *pgxpool.Pool, table string) (int, error) {
	var n int
	err := pool.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n)
	return n, err
}

// distinctHandled is how many distinct ids the table holds.
func distinctHandled(ctx context.Context, pool *pgxpool.Pool, table string) (int, error) {
	var n int
	err := pool.QueryRow(ctx, "SELECT count(DISTINCT id) FROM "+table).Scan(&n)
	return n, err
}

// handledCounts returns the handlings per id and per consumer pid.
func handledCounts(ctx context.Context, pool *pgxpool.Pool, table string) (byID map[string]int, byPID map[int]int, err error) {
	rows, err := pool.Query(ctx, "SELECT id, pid, count(*) FROM "+table+" GROUP BY id, pid")
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	byID, byPID = map[string]int{}, map[int]int{}
	for rows.Next() {
		var id string
		var pid, n int
		if err := rows.Scan(&id, &pid, &n); err != nil {
			return nil, nil, err
		}
		byID[id] += n
		byPID[pid] += n
	}
	return byID, byPID, rows.Err()
}

// child is a consumer child process.
type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // set when done is closed
}

// startChild re-executes this binary as a consumer and waits until it has
// subscribed.
func startChild(ctx context.Context, name string, args ...string) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, append([]string{consumeCommand}, args...)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("faults: start consumer %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		signalled := false
		for sc.Scan() {
			if sc.Text() == readyLine && !signalled {
				close(ready)
				signalled = true
			}
		}
		_, _ = io.Copy(io.Discard, out)
		c.err = cmd.Wait()
		close(c.done)
	}()
	select {
	case <-ready:
		return c, nil
	case <-c.done:
		return nil, fmt.Errorf("faults: consumer %s exited before it was ready: %v", name, c.err)
	case <-time.After(90 * time.Second):
		c.kill()
		return nil, fmt.Errorf("faults: consumer %s not ready after 90s", name)
	case <-ctx.Done():
		c.kill()
		return nil, ctx.Err()
	}
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// kill sends SIGKILL and waits for the process to be gone.
func (c *child) kill() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}

// stop sends SIGTERM and waits up to timeout for a graceful exit; it
// returns the exit error (nil for status 0) or an error on timeout, after
// which the process is killed.
func (c *child) stop(timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		return time.Since(start), c.err
	case <-time.After(timeout):
		c.kill()
		return time.Since(start), errors.New("did not exit after SIGTERM within " + timeout.String() + "; killed")
	}
}

func childArgs(kind, ns, table string, exactlyOnce, verbose bool) []string {
	return []string{"-broker", kind, "-ns", ns, "-table", table,
		"-exactly-once=" + strconv.FormatBool(exactlyOnce), "-v=" + strconv.FormatBool(verbose)}
}

// metaInt is a decimal metadata value, or nil (SQL NULL) when it is absent
// or not a number (RabbitMQ deliveries have no partition or offset).
func metaInt(v string) any {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return nil
	}
	return n
}
