//go:build !switchyard_no_kafka && !switchyard_no_amqp

package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-go/switchyard/config"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// Environment of the three-node clusters (scripts/cluster.sh writes them
// to .work/cluster/env).
const (
	envClusterKafka  = "SWITCHYARD_TEST_CLUSTER_KAFKA_BROKERS"
	envClusterAMQP   = "SWITCHYARD_TEST_CLUSTER_AMQP_URLS"
	envClusterNodes  = "SWITCHYARD_TEST_CLUSTER_AMQP_NODES"
	envClusterScript = "SWITCHYARD_TEST_CLUSTER_SCRIPT"
)

// clusterScenarios kill cluster nodes, never the single-node servers.
func clusterScenarios() []scenario {
	return []scenario{
		{"cluster-leader-kill9", config.BrokerKafka, func(ctx context.Context, e *env) *result {
			return e.clusterFault(ctx, "cluster-leader-kill9", config.BrokerKafka, faultLeaderKill)
		}},
		{"cluster-rolling-restart", config.BrokerKafka, func(ctx context.Context, e *env) *result {
			return e.clusterFault(ctx, "cluster-rolling-restart", config.BrokerKafka, faultRolling)
		}},
		{"cluster-leader-kill9", config.BrokerAMQP, func(ctx context.Context, e *env) *result {
			return e.clusterFault(ctx, "cluster-leader-kill9", config.BrokerAMQP, faultLeaderKill)
		}},
		{"cluster-publisher-node-kill9", config.BrokerAMQP, func(ctx context.Context, e *env) *result {
			return e.clusterFault(ctx, "cluster-publisher-node-kill9", config.BrokerAMQP, faultPublisherNodeKill)
		}},
		{"cluster-retry-dl-kill9", config.BrokerKafka, func(ctx context.Context, e *env) *result {
			return e.clusterRetryKill(ctx, config.BrokerKafka)
		}},
		{"cluster-retry-dl-kill9", config.BrokerAMQP, func(ctx context.Context, e *env) *result {
			return e.clusterRetryKill(ctx, config.BrokerAMQP)
		}},
	}
}

type clusterFaultKind int

const (
	faultLeaderKill clusterFaultKind = iota
	faultRolling
	faultPublisherNodeKill
)

// progressClock records when something made progress and reports the
// longest gap between two progress events in a window.
type progressClock struct {
	mu    sync.Mutex
	times []time.Time
}

func (c *progressClock) tick() {
	c.mu.Lock()
	c.times = append(c.times, time.Now())
	c.mu.Unlock()
}

// longestGap is the longest time without progress between from and to
// (from is counted as the start of a gap: a stall that began at the fault).
func (c *progressClock) longestGap(from, to time.Time) time.Duration {
	c.mu.Lock()
	ts := slices.Clone(c.times)
	c.mu.Unlock()
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	var best time.Duration
	prev := from
	for _, t := range ts {
		if t.Before(from) {
			continue
		}
		if t.After(to) {
			break
		}
		best = max(best, t.Sub(prev))
		prev = t
	}
	return best
}

// clusterConfig is the configuration of kind on the cluster: all nodes,
// RF 3 / acks all on Kafka, quorum queues on RabbitMQ. first is the index
// of the node a RabbitMQ client tries first (the list is rotated).
func clusterConfig(kind, ns string, first int) (config.Config, error) {
	c := baseConfig(kind, ns)
	switch kind {
	case config.BrokerKafka:
		v, err := need(envClusterKafka)
		if err != nil {
			return c, err
		}
		c.Broker.Kafka.Brokers = strings.Split(v, ",")
		c.Broker.Kafka.ClientID = "switchyard-faults"
		c.Broker.Kafka.ReplicationFactor = 3
		c.Broker.Kafka.Acks = "all"
		c.Broker.Kafka.Partitions = 1 // one leader: the one killed
	case config.BrokerAMQP:
		v, err := need(envClusterAMQP)
		if err != nil {
			return c, err
		}
		urls := strings.Split(v, ",")
		first %= len(urls)
		c.Broker.AMQP.URLs = append(urls[first:], urls[:first]...)
		c.Broker.AMQP.QueueType = "quorum"
		c.Broker.AMQP.ConnectionName = "switchyard-faults"
		c.Broker.AMQP.ReconnectBackoff = 50 * time.Millisecond
		c.Broker.AMQP.MaxReconnectBackoff = time.Second
	}
	return c, nil
}

// openCluster opens a client of the cluster of kind for scenario name
// (clusterConfig's first; tune, when set, adjusts the configuration).
func (e *env) openCluster(ctx context.Context, name, kind, ns string, first int, side string, tune func(*config.Config)) (broker.Broker, config.Config, error) {
	c, err := clusterConfig(kind, ns, first)
	if err != nil {
		return nil, c, err
	}
	if tune != nil {
		tune(&c)
	}
	octx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	b, err := config.Open(octx, c, e.adapters.With("scenario", name, "side", side))
	return b, c, err
}

func (e *env) clusterScript(ctx context.Context, args ...string) error {
	script, err := need(envClusterScript)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "bash", append([]string{script}, args...)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("scripts/cluster.sh %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// kafkaLeader is the node id (1..3) leading partition 0 of topic.
func kafkaLeader(ctx context.Context, topic string) (int, error) {
	v, err := need(envClusterKafka)
	if err != nil {
		return 0, err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(v, ",")...))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	tds, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	if err != nil {
		return 0, err
	}
	p, ok := tds[topic].Partitions[0]
	if !ok || p.Leader < 1 {
		return 0, fmt.Errorf("topic %q partition 0 has no leader", topic)
	}
	return int(p.Leader), nil
}

// rabbitLeader is the node (1..3) hosting the leader of quorum queue queue.
func (e *env) rabbitLeader(ctx context.Context, queue string) (int, error) {
	leader, _, err := e.rabbitQueue(ctx, queue)
	return leader, err
}

// rabbitQueue is the node (1..3) hosting the leader of queue, and the
// queue's type ("quorum", "classic").
func (e *env) rabbitQueue(ctx context.Context, queue string) (leader int, qtype string, err error) {
	script, err := need(envClusterScript)
	if err != nil {
		return 0, "", err
	}
	nodes := strings.Split(os.Getenv(envClusterNodes), ",")
	for try := 1; ; try++ {
		out, err := exec.CommandContext(ctx, "bash", script, "rabbitmqctl", "1", "-q", "list_queues", "--no-table-headers", "name", "leader", "type").Output()
		if err != nil {
			return 0, "", fmt.Errorf("list_queues: %w", err)
		}
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) == 3 && f[0] == queue {
				if i := slices.Index(nodes, f[1]); i >= 0 {
					return i + 1, f[2], nil
				}
			}
		}
		if try == 10 {
			return 0, "", fmt.Errorf("queue %q: no leader among %v in rabbitmqctl list_queues:\n%s", queue, nodes, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// clusterFault streams through the cluster of kind while a node is killed
// (or, faultRolling, each node restarted in turn) and checks nothing
// confirmed is lost. It measures the longest time without a confirmed
// publish (producer side) and without a handling (consumer side) from the
// fault until the cluster was whole again.
func (e *env) clusterFault(ctx context.Context, name, kind string, fault clusterFaultKind) *result {
	r := &result{scenario: name, broker: kind}
	const n = 8_000
	ns := e.namespace(name, kind)
	nm := namesFor(ns)
	logger := e.logger.With("scenario", name, "broker", kind)
	open := func(first int, side string) (broker.Broker, config.Config, error) {
		return e.openCluster(ctx, name, kind, ns, first, side, nil)
	}
	pubB, cfg, err := open(0, "publisher")
	if err != nil {
		return r.setupFailed(err)
	}
	defer pubB.Close()
	if err := declareStream(ctx, pubB, nm); err != nil {
		return r.setupFailed(err)
	}
	// The node to kill, and where the clients connect.
	victim := 0
	switch {
	case kind == config.BrokerKafka && fault == faultLeaderKill:
		if victim, err = kafkaLeader(ctx, nm.topic); err != nil {
			return r.setupFailed(err)
		}
	case kind == config.BrokerAMQP && fault == faultLeaderKill:
		if victim, err = e.rabbitLeader(ctx, nm.topic+"."+nm.group); err != nil {
			return r.setupFailed(err)
		}
	case fault == faultPublisherNodeKill:
		victim = 1 // the publisher's URLs start with node 1
	}
	// Two consumers of the group: on RabbitMQ one on the victim and one on
	// another node (faultPublisherNodeKill: the publisher's node is node 1;
	// the consumers start on nodes 2 and 1).
	firsts := []int{0, 1}
	if victim > 0 {
		firsts = []int{victim - 1, victim % 3}
	}
	handled := newIDSet()
	var consumed, produced progressClock
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	var runs []chan error
	var consBs []broker.Broker
	for i, first := range firsts {
		b, _, err := open(first, "consumer-"+strconv.Itoa(i))
		if err != nil {
			return r.setupFailed(err)
		}
		consBs = append(consBs, b)
		svc := service.New(b, append(cfg.ServiceOptions(), service.WithLogger(nil))...)
		if err := service.Handle(svc, groupName, func(ctx context.Context, _ Tick) error {
			handled.add(middleware.DeliveryFrom(ctx).Envelope.ID)
			consumed.tick()
			return nil
		}, service.Group(groupName), service.Concurrency(8)); err != nil {
			return r.setupFailed(err)
		}
		done, err := runUntilReady(runCtx, svc, i)
		if err != nil {
			return r.setupFailed(err)
		}
		runs = append(runs, done)
	}
	defer func() {
		for _, b := range consBs {
			_ = b.Close()
		}
	}()

	pubSvc := service.New(pubB, append(cfg.ServiceOptions(), service.WithLogger(nil))...)
	// A rolling restart outlasts n messages at 400/s: its producer streams
	// (at 200/s, which two cores carry beside three restarting JVMs) until
	// the last broker is back with its replicas in sync, then stops.
	total, rate := n, 400.0
	if fault == faultRolling {
		total, rate = rollingMax, 200
	}
	p := newProducer(pubSvc, pubB.Publisher(), ns, total, rate, logger)
	p.onConfirm = produced.tick
	pubDone := make(chan error, 1)
	go func() { pubDone <- p.run(ctx) }()
	sctx, scancel := context.WithTimeout(ctx, 2*time.Minute)
	if !waitFor(sctx, 50*time.Millisecond, func() bool { return p.sent.Load() >= n/5 && handled.len() >= n/10 }) {
		r.failf("only %d confirmed, %d handled in 2m before the fault", p.sent.Load(), handled.len())
	}
	scancel()

	faultAt := time.Now()
	sentAtFault := p.sent.Load()
	var healedAt time.Time
	var duringFault int64 // confirmed between the fault and the cluster whole again
	var restarts []string // faultRolling: each node's stop-to-in-sync time
	switch fault {
	case faultRolling:
		for node := 1; node <= 3; node++ {
			logger.Info("rolling restart", "node", node, "published_so_far", p.sent.Load(), "handled_so_far", handled.len())
			began := time.Now()
			if err := e.clusterScript(ctx, "stop", kind2service(kind), strconv.Itoa(node)); err != nil {
				r.failf("%v", err)
			}
			// start returns once the cluster is whole: all replicas in sync.
			if err := e.clusterScript(ctx, "start", kind2service(kind), strconv.Itoa(node)); err != nil {
				r.failf("%v", err)
			}
			restarts = append(restarts, time.Since(began).Round(100*time.Millisecond).String())
		}
		healedAt = time.Now()
		duringFault = p.sent.Load() - sentAtFault
		p.stop()
		if p.sent.Load() >= rollingMax {
			r.failf("the stream of %d messages ended before the rolling restart did", rollingMax)
		}
	default:
		logger.Info("killing node with SIGKILL", "node", victim, "published_so_far", p.sent.Load(), "handled_so_far", handled.len())
		healedAt = e.killAndRestore(ctx, r, kind, victim, p, n, logger)
	}
	if err := <-pubDone; err != nil {
		r.failf("publishing: %v", err)
	}
	pubEnd := time.Now()
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	waitFor(wctx, 250*time.Millisecond, func() bool {
		return allAccounted(p.confirmed.snapshot(), handled.has, func(string) bool { return false }) == 0
	})
	cancel()
	// The window: from the fault until the cluster was whole again or the
	// stream ended, whichever came first.
	end := healedAt
	if pubEnd.Before(end) {
		end = pubEnd
	}
	prodGap := produced.longestGap(faultAt, end)
	consGap := consumed.longestGap(faultAt, end)
	stopRun()
	for i, done := range runs {
		if err := <-done; err != nil {
			r.failf("consumer %d: %v", i, err)
		}
	}
	dead, err := collectDeadLetters(ctx, pubB, nm.dlTopic, 0, 30*time.Second, deadLetterIdle(kind))
	if err != nil {
		r.failf("reading dead letters: %v", err)
	}
	r.tally(p.confirmed.snapshot(), handled.snapshot(), dead)
	if len(dead) > 0 {
		r.failf("%d good messages dead-lettered: %v", len(dead), sample(dead))
	}
	r.figures = fmt.Sprintf("killed_node=%d producer_stall=%s consumer_stall=%s fault_to_whole=%s publish_retries=%d",
		victim, prodGap.Round(time.Millisecond), consGap.Round(time.Millisecond), healedAt.Sub(faultAt).Round(100*time.Millisecond), p.retries.Load())
	if fault == faultRolling {
		r.figures = fmt.Sprintf("producer_stall=%s consumer_stall=%s restart_all=%s node_restarts=%s published_during_restart=%d published_after_restart=%d publish_retries=%d",
			prodGap.Round(time.Millisecond), consGap.Round(time.Millisecond), healedAt.Sub(faultAt).Round(100*time.Millisecond),
			strings.Join(restarts, ","), duringFault, p.sent.Load()-sentAtFault-duringFault, p.retries.Load())
	}
	logger.Info("scenario done", "figures", r.figures)
	return r
}

// rollingMax bounds the rolling restart's stream (at 200/s, over two
// hours): the restart ends it long before.
const rollingMax = 2_000_000

// killAndRestore SIGKILLs node victim of the cluster of kind, lets the
// cluster run on two nodes until n/10 more messages are confirmed (or the
// stream ended), starts the node again and returns when the cluster is
// whole.
func (e *env) killAndRestore(ctx context.Context, r *result, kind string, victim int, p *producer, n int, logger *slog.Logger) time.Time {
	faultAt := time.Now()
	if err := e.clusterScript(ctx, "kill", kind2service(kind), strconv.Itoa(victim)); err != nil {
		r.failf("%v", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	base := p.sent.Load()
	waitFor(wctx, 100*time.Millisecond, func() bool { return p.sent.Load() >= base+int64(n/10) || p.sent.Load() >= int64(n) })
	cancel()
	logger.Info("bringing the node back", "node", victim, "after", time.Since(faultAt).Round(time.Millisecond))
	if err := e.clusterScript(ctx, "start", kind2service(kind), strconv.Itoa(victim)); err != nil {
		r.failf("%v", err)
	}
	return time.Now()
}

// runUntilReady runs consumer i's service until ctx ends and returns
// once it is ready; done receives what Run returned.
func runUntilReady(ctx context.Context, svc *service.Service, i int) (done chan error, err error) {
	done = make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	select {
	case <-svc.Ready():
		return done, nil
	case err := <-done:
		return nil, fmt.Errorf("consumer %d stopped before it was ready: %v", i, err)
	case <-time.After(2 * time.Minute):
		return nil, fmt.Errorf("consumer %d not ready in 2m", i)
	}
}

func kind2service(kind string) string {
	if kind == config.BrokerAMQP {
		return "rabbitmq"
	}
	return "kafka"
}
