//go:build !switchyard_no_kafka && !switchyard_no_amqp

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard-go/switchyard/config"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// env is what every scenario gets from the driver.
type env struct {
	run     string // run id, part of every namespace
	scripts string // directory of rabbitmq.sh and kafka.sh
	logger  *slog.Logger
	// adapters is the adapters' logger: errors only unless -v, because
	// franz-go warns on every failed dial while a broker restarts.
	adapters *slog.Logger
	verbose  bool
	// declareDeadLetters declares each dead-letter topic for the operators'
	// group before a run. The service provisions it itself only on brokers
	// implementing broker.Provisioner; RabbitMQ's adapter does not (yet), so
	// without this a dead letter there is unroutable.
	declareDeadLetters bool
}

func (e *env) namespace(scenario, kind string) string {
	return fmt.Sprintf("faults.%s.%s-%s.", e.run, scenario, kind)
}

// fixture is what the child-process scenarios share: a publishing broker
// and service, the handlings table and its pool.
type fixture struct {
	ns     string
	names  names
	b      broker.Broker
	svc    *service.Service
	pool   *pgxpool.Pool
	table  string
	logger *slog.Logger
}

func (e *env) newFixture(ctx context.Context, scenario, kind string) (*fixture, error) {
	return e.newFixtureWith(ctx, scenario, kind, fixtureOptions{})
}

// fixtureOptions shape the topic and group a fixture declares.
type fixtureOptions struct {
	// ordered declares the group's RabbitMQ queue as a consumer asking for
	// per-key order does (single active consumer): broker.Provisioner
	// declares plain queues, which an ordered subscription then cannot
	// consume (RabbitMQ refuses a redeclaration with other arguments).
	ordered bool
	// partitions of the Kafka topic; 0 means the adapter's default.
	partitions int32
}

func (e *env) newFixtureWith(ctx context.Context, scenario, kind string, o fixtureOptions) (*fixture, error) {
	ns := e.namespace(scenario, kind)
	f := &fixture{ns: ns, names: namesFor(ns), table: handlingsTable(ns), logger: e.logger.With("scenario", scenario, "broker", kind)}
	var err error
	if f.pool, err = openPool(ctx); err != nil {
		return nil, err
	}
	if err = createHandlings(ctx, f.pool, f.table); err != nil {
		f.pool.Close()
		return nil, err
	}
	var cfg config.Config
	tune := func(c *config.Config) {
		if o.partitions > 0 {
			c.Broker.Kafka.Partitions = o.partitions
		}
	}
	if f.b, cfg, err = openBrokerWith(ctx, kind, ns, e.adapters.With("scenario", scenario, "broker", kind), tune); err != nil {
		f.pool.Close()
		return nil, err
	}
	f.svc = service.New(f.b, append(cfg.ServiceOptions(), service.WithLogger(nil))...)
	if o.ordered && kind == config.BrokerAMQP {
		err = declareOrdered(f.b, f.names.topic, f.names.group)
	} else {
		err = declare(ctx, f.b, f.names.topic, f.names.group)
	}
	if err == nil {
		err = declare(ctx, f.b, f.names.dlTopic, broker.DeadLetterGroup)
	}
	if err != nil {
		f.close(ctx, false)
		return nil, fmt.Errorf("faults: declare %q: %w", f.names.topic, err)
	}
	return f, nil
}

func (f *fixture) close(ctx context.Context, dropTable bool) {
	if dropTable {
		dropHandlings(ctx, f.pool, f.table)
	}
	_ = f.b.Close()
	f.pool.Close()
}

// waitHandled waits until every confirmed id is in the handlings table.
func (f *fixture) waitHandled(ctx context.Context, p *producer, timeout time.Duration) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	waitFor(wctx, 250*time.Millisecond, func() bool {
		n, err := distinctHandled(wctx, f.pool, f.table)
		return err == nil && n >= p.confirmed.len()
	})
}

// waitProgress waits until the table holds at least n distinct ids.
func (f *fixture) waitProgress(ctx context.Context, n int, timeout time.Duration) (int, bool) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	got := 0
	ok := waitFor(wctx, 100*time.Millisecond, func() bool {
		got, _ = distinctHandled(wctx, f.pool, f.table)
		return got >= n
	})
	return got, ok
}

// finish collects dead letters and handlings and fills r.
func (f *fixture) finish(ctx context.Context, r *result, p *producer, kind string) map[int]int {
	dead, err := collectDeadLetters(ctx, f.b, f.names.dlTopic, 0, 30*time.Second, deadLetterIdle(kind))
	if err != nil {
		r.failf("reading dead letters: %v", err)
	}
	byID, byPID, err := handledCounts(ctx, f.pool, f.table)
	if err != nil {
		r.failf("reading handlings: %v", err)
	}
	r.tally(p.confirmed.snapshot(), byID, dead)
	if len(dead) > 0 {
		r.failf("%d good messages dead-lettered: %v", len(dead), sample(dead))
	}
	f.logger.Info("scenario done", "publish_retries", p.retries.Load(), "handlings_per_consumer", byPID)
	return byPID
}

// deadLetterIdle is how long to wait for dead letters when none are
// expected: a Kafka consumer needs a few seconds to join its group.
func deadLetterIdle(kind string) time.Duration {
	switch kind {
	case config.BrokerKafka:
		return 8 * time.Second
	case config.BrokerAMQP:
		return 2 * time.Second
	}
	return 500 * time.Millisecond
}

func sample(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if len(out) == 5 {
			break
		}
		out[k] = v
	}
	return out
}

// kill9: a consumer child is killed with SIGKILL mid-stream and started
// again. With exactlyOnce the handler records inside the idempotency
// transaction of adapters/postgres and every id must be recorded once.
func (e *env) kill9(ctx context.Context, kind string, exactlyOnce bool) *result {
	name := "kill9"
	if exactlyOnce {
		name = "kill9-eo"
	}
	r := &result{scenario: name, broker: kind}
	const n = 10_000
	f, err := e.newFixture(ctx, name, kind)
	if err != nil {
		return r.setupFailed(err)
	}
	args := childArgs(kind, f.ns, f.table, exactlyOnce, e.verbose)
	c1, err := startChild(ctx, "first", args...)
	if err != nil {
		f.close(ctx, false)
		return r.setupFailed(err)
	}
	p := newProducer(f.svc, f.b.Publisher(), f.ns, n, 2500, f.logger)
	pubDone := make(chan error, 1)
	go func() { pubDone <- p.run(ctx) }()

	got, ok := f.waitProgress(ctx, n*3/10, 2*time.Minute)
	if !ok {
		r.failf("consumer handled only %d messages in 2m before the kill", got)
	}
	c1.kill()
	f.logger.Info("consumer killed with SIGKILL", "pid", c1.pid(), "handled_before", got, "published_so_far", p.sent.Load())
	c2, err := startChild(ctx, "restarted", args...)
	if err != nil {
		r.failf("restart after SIGKILL: %v", err)
	}
	if err := <-pubDone; err != nil {
		r.failf("publishing: %v", err)
	}
	if c2 != nil {
		f.waitHandled(ctx, p, 3*time.Minute)
		if _, err := c2.stop(40 * time.Second); err != nil {
			r.failf("restarted consumer: %v", err)
		}
	}
	f.finish(ctx, r, p, kind)
	if exactlyOnce {
		if r.duplicates != 0 {
			r.failf("exactly-once effects: %d ids recorded more than once", r.duplicates)
		}
		rows, err1 := countRows(ctx, f.pool, f.table)
		skipped, err2 := countRows(ctx, f.pool, skippedTable(f.table))
		if err := errors.Join(err1, err2); err != nil {
			r.failf("counting rows: %v", err)
		}
		if rows != r.published {
			r.failf("exactly-once effects: %d rows for %d published messages", rows, r.published)
		}
		f.logger.Info("exactly-once effects", "rows", rows, "published", r.published, "redeliveries_skipped_as_duplicates", skipped)
	}
	f.close(ctx, len(r.failures) == 0)
	return r
}

// groupLeave: two consumer children in one group; one leaves mid-stream
// with sig (SIGTERM: graceful; SIGKILL: crash), the other takes over.
func (e *env) groupLeave(ctx context.Context, kind string, graceful bool) *result {
	name := "group-sigkill"
	if graceful {
		name = "group-sigterm"
	}
	r := &result{scenario: name, broker: kind}
	const n = 6_000
	f, err := e.newFixture(ctx, name, kind)
	if err != nil {
		return r.setupFailed(err)
	}
	args := childArgs(kind, f.ns, f.table, false, e.verbose)
	a, err := startChild(ctx, "a", args...)
	if err != nil {
		f.close(ctx, false)
		return r.setupFailed(err)
	}
	b, err := startChild(ctx, "b", args...)
	if err != nil {
		a.kill()
		f.close(ctx, false)
		return r.setupFailed(err)
	}
	if kind == config.BrokerKafka {
		// b's joining rebalances the group; a record a acked just as its
		// partition was revoked is redelivered to b. That is at-least-once
		// at work, but not what this scenario is about.
		if err := waitKafkaGroup(ctx, f.names.group, 2, time.Minute); err != nil {
			r.failf("%v", err)
		}
	}
	p := newProducer(f.svc, f.b.Publisher(), f.ns, n, 1000, f.logger)
	pubDone := make(chan error, 1)
	go func() { pubDone <- p.run(ctx) }()

	got, ok := f.waitProgress(ctx, n*3/10, 2*time.Minute)
	if !ok {
		r.failf("consumers handled only %d messages in 2m before one left", got)
	}
	if graceful {
		took, err := a.stop(40 * time.Second)
		if err != nil {
			r.failf("consumer a after SIGTERM: %v", err)
		}
		f.logger.Info("consumer a left gracefully (SIGTERM)", "pid", a.pid(), "shutdown", took.Round(time.Millisecond), "handled_before", got)
	} else {
		a.kill()
		f.logger.Info("consumer a killed (SIGKILL)", "pid", a.pid(), "handled_before", got)
	}
	if err := <-pubDone; err != nil {
		r.failf("publishing: %v", err)
	}
	f.waitHandled(ctx, p, 3*time.Minute)
	if _, err := b.stop(40 * time.Second); err != nil {
		r.failf("consumer b: %v", err)
	}
	byPID := f.finish(ctx, r, p, kind)
	if graceful && r.duplicates != 0 {
		// A graceful leave lets in-flight handlers finish and ack, and
		// hands back (nacks, or leaves uncommitted) only what it never started.
		r.failf("graceful leave: %d handlings repeated, want 0", r.duplicates)
	}
	if byPID[b.pid()] == 0 {
		r.failf("consumer b handled nothing: the scenario did not exercise a takeover")
	}
	f.close(ctx, len(r.failures) == 0)
	return r
}

// brokerRestart: the broker is restarted with its script while a publisher
// and a consumer (in this process, on separate connections) stream.
func (e *env) brokerRestart(ctx context.Context, kind string) *result {
	script, name := "rabbitmq.sh", "rabbitmq-restart"
	if kind == config.BrokerKafka {
		script, name = "kafka.sh", "kafka-restart"
	}
	r := &result{scenario: name, broker: kind}
	const n = 6_000
	ns := e.namespace(name, kind)
	nm := namesFor(ns)
	logger := e.logger.With("scenario", name, "broker", kind)
	pubB, cfg, err := openBroker(ctx, kind, ns, e.adapters.With("scenario", name, "side", "publisher"))
	if err != nil {
		return r.setupFailed(err)
	}
	defer pubB.Close()
	if err := declareStream(ctx, pubB, nm); err != nil {
		return r.setupFailed(err)
	}
	consB, _, err := openBroker(ctx, kind, ns, e.adapters.With("scenario", name, "side", "consumer"))
	if err != nil {
		return r.setupFailed(err)
	}
	cons, handled, err := e.countingService(consB, cfg, logger, groupName)
	if err != nil {
		consB.Close()
		return r.setupFailed(err)
	}
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	runDone := make(chan error, 1)
	go func() { runDone <- cons.Run(runCtx) }()
	select {
	case <-cons.Ready():
	case err := <-runDone:
		consB.Close()
		return r.setupFailed(fmt.Errorf("consumer stopped before it was ready: %v", err))
	}

	pubSvc := service.New(pubB, append(cfg.ServiceOptions(), service.WithLogger(nil))...)
	p := newProducer(pubSvc, pubB.Publisher(), ns, n, 300, logger)
	pubDone := make(chan error, 1)
	go func() { pubDone <- p.run(ctx) }()
	sctx, scancel := context.WithTimeout(ctx, 2*time.Minute)
	if !waitFor(sctx, 50*time.Millisecond, func() bool { return p.sent.Load() >= n/5 }) {
		r.failf("only %d messages confirmed in 2m before the restart", p.sent.Load())
	}
	scancel()

	start := time.Now()
	logger.Info("restarting the broker", "script", script, "published_so_far", p.sent.Load(), "handled_so_far", handled.len())
	cmd := exec.CommandContext(ctx, "bash", e.scripts+"/"+script, "restart")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		r.failf("%s restart: %v", script, err)
	}
	logger.Info("broker restarted", "took", time.Since(start).Round(time.Second), "published_so_far", p.sent.Load(), "handled_so_far", handled.len())

	if err := <-pubDone; err != nil {
		r.failf("publishing: %v", err)
	}
	logger.Info("publishing done", "took_since_restart", time.Since(start).Round(time.Second), "publish_retries", p.retries.Load())
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	waitFor(wctx, 250*time.Millisecond, func() bool {
		return allAccounted(p.confirmed.snapshot(), handled.has, func(string) bool { return false }) == 0
	})
	cancel()
	select {
	case err := <-runDone:
		r.failf("consumer stopped by itself during the run: %v", err)
	default:
	}
	stopRun()
	if err := <-runDone; err != nil {
		r.failf("consumer shutdown: %v", err)
	}
	_ = consB.Close()
	dead, err := collectDeadLetters(ctx, pubB, nm.dlTopic, 0, 30*time.Second, deadLetterIdle(kind))
	if err != nil {
		r.failf("reading dead letters: %v", err)
	}
	r.tally(p.confirmed.snapshot(), handled.snapshot(), dead)
	if len(dead) > 0 {
		r.failf("%d good messages dead-lettered: %v", len(dead), sample(dead))
	}
	logger.Info("scenario done", "consumer_stats", fmt.Sprintf("%+v", cons.Stats()))
	return r
}

func (r *result) setupFailed(err error) *result {
	if errors.Is(err, errSkip) {
		r.skipped = err.Error()
		return r
	}
	r.failf("setup: %v", err)
	return r
}
