//go:build !switchyard_no_kafka && !switchyard_no_amqp

package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-go/switchyard/config"
)

// The membership scenarios change who consumes a group while a producer
// streams and handlers have work in flight: a member joins and one leaves
// (rebalance), or every member is replaced one by one (rolling restart).
// Consumers are child processes (see child.go) that record every handling
// with its key, position and time window, so that the driver checks, on
// top of lost=0, that no key was handled on two members at once and that
// each member kept per-key order, and measures how long the group made no
// progress (see windows.go).

// membershipLoad is the load of a membership scenario on one broker.
type membershipLoad struct {
	rate        float64       // messages published per second
	batch       int           // messages per Publish call: small, so that the stream is smooth and a gap is a stall
	workers     int           // publishing goroutines
	keys        int           // distinct keys (Tick.Keys)
	delay       time.Duration // time each handling takes
	slow        time.Duration // time every slowEvery-th handling takes instead
	slowEvery   int
	concurrency int // handlings at once per member
	// partitions of the Kafka topic: more than members, so that a join or
	// a leave moves some partitions and keeps others where they are.
	partitions int32
}

// loadFor is the load per broker. On Kafka work is always in flight when
// partitions move (about 75 handlings at once across the members), and one
// message in 40 takes 2s, longer than a rebalance takes to hand a partition
// to its new owner (about 1s here): a member that kept handling a revoked
// partition instead of draining it would still be at it when the new owner
// starts, and the same key would run on two members. Many keys keep
// per-key serialisation from limiting the throughput. RabbitMQ's ordered
// subscriptions hold one message at a time (single active consumer,
// prefetch 1), so they are fed less and their handlings are short; their
// producer publishes from one goroutine, so that per key the sequence
// number is the publish order the check compares against.
func loadFor(kind string) membershipLoad {
	if kind == config.BrokerKafka {
		return membershipLoad{rate: 300, batch: 10, workers: 4, keys: 256, delay: 200 * time.Millisecond,
			slow: 2 * time.Second, slowEvery: 40, concurrency: 64, partitions: 6}
	}
	return membershipLoad{rate: 150, batch: 15, workers: 1, keys: 2, delay: 5 * time.Millisecond, concurrency: 16}
}

// scenarioPrefix names a membership scenario after its broker, as issue 9
// names them: "kafka-rebalance", "amqp-rolling-restart".
func scenarioPrefix(kind string) string { return kind + "-" }

// member is one consumer child of a membership scenario.
type member struct {
	name string
	c    *child
}

// step is one change of membership, for the timeline and the stalls.
type step struct {
	what     string
	from, to time.Time
}

// membershipRun is one membership scenario in progress.
type membershipRun struct {
	e       *env
	f       *fixture
	r       *result
	kind    string
	load    membershipLoad
	args    []string
	members []*member         // running, oldest first
	names   map[int]string    // pid → member name, every member ever started
	leftAt  map[int]time.Time // pid → when it was sent SIGTERM to leave mid-run
	started int

	p         *producer
	pubDone   chan error
	loadStart time.Time
	steps     []step
}

func (e *env) newMembershipRun(ctx context.Context, name, kind string) (*membershipRun, *result) {
	r := &result{scenario: name, broker: kind}
	load := loadFor(kind)
	f, err := e.newFixtureWith(ctx, name, kind, fixtureOptions{ordered: true, partitions: load.partitions})
	if err != nil {
		return nil, r.setupFailed(err)
	}
	args := append(childArgs(kind, f.ns, f.table, false, e.verbose), "-ordered", "-delay", load.delay.String(),
		"-concurrency", strconv.Itoa(load.concurrency), "-slow", load.slow.String(), "-slow-every", strconv.Itoa(load.slowEvery))
	return &membershipRun{e: e, f: f, r: r, kind: kind, load: load, args: args, names: map[int]string{}, leftAt: map[int]time.Time{}}, r
}

// start starts a new member and waits until it subscribed.
func (g *membershipRun) start(ctx context.Context) error {
	g.started++
	name := "m" + strconv.Itoa(g.started)
	c, err := startChild(ctx, name, g.args...)
	if err != nil {
		return err
	}
	g.members = append(g.members, &member{name: name, c: c})
	g.names[c.pid()] = name
	return nil
}

// leave stops the oldest member gracefully (SIGTERM): on RabbitMQ that is
// the single active consumer, so every leave there is a handover.
func (g *membershipRun) leave() {
	m := g.members[0]
	g.members = g.members[1:]
	g.leftAt[m.c.pid()] = time.Now()
	took, err := m.c.stop(40 * time.Second)
	if err != nil {
		g.r.failf("member %s after SIGTERM: %v", m.name, err)
	}
	g.f.logger.Info("member left gracefully (SIGTERM)", "member", m.name, "pid", m.c.pid(), "sigterm_at", micros(g.leftAt[m.c.pid()].UnixMicro()),
		"shutdown", took.Round(time.Millisecond))
}

// waitMembers waits until the group has n members: a stable Kafka group of
// n, or n consumers on the RabbitMQ queue.
func (g *membershipRun) waitMembers(ctx context.Context, n int) error {
	if g.kind == config.BrokerKafka {
		return waitKafkaGroup(ctx, g.f.names.group, n, time.Minute)
	}
	return waitAMQPConsumers(ctx, g.f.names.topic+"."+g.f.names.group, n, time.Minute)
}

// startLoad starts the producer; it streams until finish stops it.
func (g *membershipRun) startLoad(ctx context.Context) {
	g.p = newProducer(g.f.svc, g.f.b.Publisher(), g.f.ns, 1_000_000, g.load.rate, g.f.logger)
	g.p.batch, g.p.workers, g.p.keys = g.load.batch, g.load.workers, g.load.keys
	g.pubDone = make(chan error, 1)
	g.loadStart = time.Now()
	go func() { g.pubDone <- g.p.run(ctx) }()
}

// advance waits until seconds' worth of load more than now was handled.
func (g *membershipRun) advance(ctx context.Context, seconds float64) {
	now, _ := distinctHandled(ctx, g.f.pool, g.f.table)
	want := now + int(g.load.rate*seconds)
	if got, ok := g.f.waitProgress(ctx, want, time.Minute); !ok {
		g.r.failf("no progress: %d handled after 1m, want %d", got, want)
	}
}

// change runs one membership change (fn) as a timed step: from its start
// until the group has want members again.
func (g *membershipRun) change(ctx context.Context, what string, want int, fn func() error) {
	st := step{what: what, from: time.Now()}
	if err := fn(); err != nil {
		g.r.failf("%s: %v", what, err)
	}
	if err := g.waitMembers(ctx, want); err != nil {
		g.r.failf("%s: %v", what, err)
	}
	st.to = time.Now()
	g.steps = append(g.steps, st)
	g.f.logger.Info("membership changed", "step", what, "at", g.rel(st.from), "took", st.to.Sub(st.from).Round(time.Millisecond),
		"published_so_far", g.p.confirmed.len())
}

func (g *membershipRun) rel(t time.Time) string {
	return "+" + t.Sub(g.loadStart).Round(time.Millisecond).String()
}

// finish stops the load, waits for every confirmed message to be handled,
// stops the members, fills r and checks the handling windows. It returns
// the handlings per member name.
func (g *membershipRun) finish(ctx context.Context) map[string]int {
	g.p.stop()
	if err := <-g.pubDone; err != nil {
		g.r.failf("publishing: %v", err)
	}
	loadEnd := time.Now()
	g.f.waitHandled(ctx, g.p, 2*time.Minute)
	for _, m := range g.members {
		if _, err := m.c.stop(40 * time.Second); err != nil {
			g.r.failf("member %s at the end: %v", m.name, err)
		}
	}
	g.members = nil
	byPID := g.f.finish(ctx, g.r, g.p, g.kind)
	byName := map[string]int{}
	for pid, n := range byPID {
		byName[g.names[pid]] += n
	}
	hs, err := loadHandlings(ctx, g.f.pool, g.f.table)
	if err != nil {
		g.r.failf("reading handling windows: %v", err)
		return byName
	}
	w := analyseWindows(hs, g.names, g.leftAt, g.loadStart, loadEnd)
	if w.overlaps > 0 {
		g.r.failf("%d handlings began while another member was handling the same key, e.g. %s", w.overlaps, strings.Join(w.overlapSamples, "; "))
	}
	if w.orderViolations > 0 {
		g.r.failf("%d handlings out of per-key order within a member, e.g. %s", w.orderViolations, strings.Join(w.orderSamples, "; "))
	}
	if w.afterRebalance > 0 {
		// A member that stays drains what it hands over: every handling of
		// a revoked partition (Kafka) or of the queue (RabbitMQ) ends long
		// before the drain time, and what it acked is committed before the
		// new owner starts. Only a member that leaves may cause repeats (see
		// the package doc).
		g.r.failf("%d handlings repeated what a member that stayed had handled, e.g. %s", w.afterRebalance, strings.Join(w.rebalanceSamples, "; "))
	}
	longest := w.longestStall(w.from, w.to)
	var perStep []string
	for _, st := range g.steps {
		// A change's stall can end after the group is whole again: the new
		// owner's first handling comes after its assignment.
		s := w.longestStall(st.from.UnixMicro(), st.to.Add(2*time.Second).UnixMicro())
		perStep = append(perStep, fmt.Sprintf("%s@%s took=%s stall=%s", strings.ReplaceAll(st.what, " ", "_"), g.rel(st.from),
			st.to.Sub(st.from).Round(time.Millisecond), s.length().Round(time.Millisecond)))
	}
	// The figures beside the result line: stderr, so that standard output
	// keeps one line per scenario.
	fmt.Fprintf(os.Stderr, "figures scenario=%s broker=%s load=%s overlaps=%d order_violations=%d duplicates_after_leave=%d duplicates_after_rebalance=%d redelivered_behind=%d "+
		"longest_stall=%s stall_stream=%q stall_at=%s stalls_over_1s=%d handlings=%v steps=[%s]\n",
		g.r.scenario, g.kind, loadEnd.Sub(g.loadStart).Round(time.Second), w.overlaps, w.orderViolations, w.afterLeave, w.afterRebalance, w.redeliveredBehind,
		longest.length().Round(time.Millisecond), longest.stream, g.rel(time.UnixMicro(longest.from)), w.stallsOver(time.Second),
		byName, strings.Join(perStep, " "))
	return byName
}

// rebalance: two members consume under load, a third joins, later the
// oldest leaves gracefully. On Kafka every change moves partitions with
// work in flight; on RabbitMQ (ordered: single active consumer) the join
// adds a standby and the leave hands the queue over to the next member.
func (e *env) rebalance(ctx context.Context, kind string) *result {
	g, r := e.newMembershipRun(ctx, scenarioPrefix(kind)+"rebalance", kind)
	if g == nil {
		return r
	}
	for range 2 {
		if err := g.start(ctx); err != nil {
			g.abort(ctx)
			return r.setupFailed(err)
		}
	}
	if err := g.waitMembers(ctx, 2); err != nil {
		g.abort(ctx)
		return r.setupFailed(err)
	}
	g.startLoad(ctx)
	g.advance(ctx, 3)
	g.change(ctx, "m3 joins", 3, func() error { return g.start(ctx) })
	g.advance(ctx, 3)
	if len(g.members) == 0 {
		r.failf("no member left to leave")
		g.abort(ctx)
		return r
	}
	leaving := g.members[0].name
	g.change(ctx, leaving+" leaves", 2, func() error { g.leave(); return nil })
	g.advance(ctx, 3)
	byName := g.finish(ctx)
	switch {
	case byName[leaving] == 0:
		r.failf("member %s, which left, handled nothing: the leave moved no work", leaving)
	case kind == config.BrokerKafka && byName["m3"] == 0:
		r.failf("member m3 joined but handled nothing: the join moved no partition")
	case kind == config.BrokerAMQP && byName["m2"]+byName["m3"] == 0:
		// RabbitMQ picks the next single active consumer itself (not
		// always the oldest standby).
		r.failf("no member took over the queue when %s left", leaving)
	}
	g.f.close(ctx, len(r.failures) == 0)
	return r
}

// rollingRestart: three members under load are replaced one by one, the
// oldest first (SIGTERM, wait for it to exit, start its replacement, wait
// until the group is whole), as a rolling deploy does.
func (e *env) rollingRestart(ctx context.Context, kind string) *result {
	g, r := e.newMembershipRun(ctx, scenarioPrefix(kind)+"rolling-restart", kind)
	if g == nil {
		return r
	}
	for range 3 {
		if err := g.start(ctx); err != nil {
			g.abort(ctx)
			return r.setupFailed(err)
		}
	}
	if err := g.waitMembers(ctx, 3); err != nil {
		g.abort(ctx)
		return r.setupFailed(err)
	}
	g.startLoad(ctx)
	g.advance(ctx, 3)
	for range 3 {
		if len(g.members) == 0 {
			break // a replacement failed to start: already a failure
		}
		old := g.members[0].name
		g.change(ctx, "restart "+old, 3, func() error { g.leave(); return g.start(ctx) })
		g.advance(ctx, 2)
	}
	byName := g.finish(ctx)
	for _, m := range []string{"m1", "m2", "m3"} {
		if kind == config.BrokerKafka && byName[m] == 0 {
			r.failf("member %s handled nothing before its restart", m)
		}
	}
	g.f.close(ctx, len(r.failures) == 0)
	return r
}

// abort kills the members after a failed setup; the fixture is kept.
func (g *membershipRun) abort(ctx context.Context) {
	for _, m := range g.members {
		m.c.kill()
	}
	g.f.close(ctx, false)
}

// waitAMQPConsumers waits until queue has n consumers.
func waitAMQPConsumers(ctx context.Context, queue string, n int, timeout time.Duration) error {
	u, err := need(envAMQPURL)
	if err != nil {
		return err
	}
	conn, err := amqp091.Dial(u)
	if err != nil {
		return err
	}
	defer conn.Close()
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	got := -1
	if waitFor(wctx, 100*time.Millisecond, func() bool {
		// A failed passive declare closes the channel: one per attempt.
		ch, err := conn.Channel()
		if err != nil {
			return false
		}
		defer ch.Close()
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		if err != nil {
			return false
		}
		got = q.Consumers
		return got == n
	}) {
		return nil
	}
	return fmt.Errorf("faults: queue %q has %d consumers after %s, want %d", queue, got, timeout, n)
}
