//go:build !switchyard_no_kafka && !switchyard_no_amqp

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-go/switchyard/adapters/amqp"
	"github.com/switchyard-go/switchyard/config"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/retry"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// The failure paths of cluster-retry-dl-kill9: every tenth message always
// fails (dead-lettered after retryAttempts), the next one fails its first
// attempt (handled on a delayed redelivery); the rest succeed at once.
const (
	retryAttempts = 3
	retryTier     = time.Second // the only delay tier: one retry queue/topic
)

func isPoison(seq int) bool  { return seq%10 == 0 }
func failsOnce(seq int) bool { return seq%10 == 1 }

// attemptLog counts the attempts of each message id in this process (the
// two consumers of the group share it) and times the delayed redeliveries.
type attemptLog struct {
	mu       sync.Mutex
	attempts map[string]int
	lastAt   map[string]time.Time // when the id's latest attempt began
}

func (a *attemptLog) add(id string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.attempts[id]++
	a.lastAt[id] = time.Now()
	return a.attempts[id]
}

func (a *attemptLog) get(id string) (int, time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.attempts[id], a.lastAt[id]
}

// clusterRetryKill streams through the cluster of kind with a handler
// whose failures go through delayed retry (a 1s tier) and the dead-letter
// topic, and SIGKILLs the node leading the retry queue/topic (also made
// the dead-letter queue/topic's leader) while delayed messages are under
// way, then brings it back. Every confirmed message must be handled or,
// the always-failing ones, present in the dead-letter topic afterwards.
func (e *env) clusterRetryKill(ctx context.Context, kind string) *result {
	const name = "cluster-retry-dl-kill9"
	r := &result{scenario: name, broker: kind}
	const n = 4_000
	ns := e.namespace(name, kind)
	nm := namesFor(ns)
	logger := e.logger.With("scenario", name, "broker", kind)
	tune := func(c *config.Config) {
		c.Broker.Kafka.DelayTiers = []time.Duration{retryTier}
		c.Broker.AMQP.DelayTiers = []time.Duration{retryTier}
	}
	open := func(first int, side string) (broker.Broker, config.Config, error) {
		return e.openCluster(ctx, name, kind, ns, first, side, tune)
	}
	pubB, cfg, err := open(0, "publisher")
	if err != nil {
		return r.setupFailed(err)
	}
	defer pubB.Close()
	if err := declare(ctx, pubB, nm.topic, nm.group); err != nil {
		return r.setupFailed(err)
	}
	pubSvc := service.New(pubB, append(cfg.ServiceOptions(), service.WithLogger(nil))...)

	// The retry queue/topic exists once something was delayed: delay one
	// warm-up message (Seq -1, ignored by the handler), then find its
	// leader, the node to kill.
	d, ok := pubB.(broker.Delayer)
	if !ok {
		return r.setupFailed(fmt.Errorf("%s adapter cannot delay redelivery", kind))
	}
	warm, topic, err := pubSvc.NewMessage(ctx, Tick{Seq: -1}, service.WithID(ns+"warmup"))
	if err != nil {
		return r.setupFailed(err)
	}
	if err := d.Delay(ctx, topic, nm.group, warm, retryTier); err != nil {
		return r.setupFailed(fmt.Errorf("warm-up delay: %w", err))
	}
	retryQueue, victim, err := e.retryLeader(ctx, kind, nm)
	if err != nil {
		return r.setupFailed(err)
	}
	// The dead-letter queue/topic gets the same leader, so that one kill
	// takes both: a quorum queue's leader is where its declaring client is
	// connected (RabbitMQ's client-local default), a Kafka partition's is
	// its preferred replica once elected.
	dlB, _, err := open(victim-1, "dead-letter-declare")
	if err != nil {
		return r.setupFailed(err)
	}
	err = declare(ctx, dlB, nm.dlTopic, broker.DeadLetterGroup)
	_ = dlB.Close()
	if err != nil {
		return r.setupFailed(err)
	}
	dlQueue, dlLeader, replicated, err := e.deadLetterLeader(ctx, kind, nm, victim)
	if err != nil {
		return r.setupFailed(err)
	}
	if replicated != "" {
		r.failf("%s", replicated)
	}
	logger.Info("failure paths placed", "retry", retryQueue, "retry_leader", victim, "dead_letter", dlQueue, "dead_letter_leader", dlLeader)

	attempts := &attemptLog{attempts: map[string]int{}, lastAt: map[string]time.Time{}}
	handled := newIDSet()
	var consumed, redelivered progressClock
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	var runs []chan error
	var consBs []broker.Broker
	defer func() {
		for _, b := range consBs {
			_ = b.Close()
		}
	}()
	policy := service.Policy{
		OrderOnRetry:     service.OrderRelease,
		MaxInProcessWait: 100 * time.Millisecond, // every wait goes through the broker
		Retry: retry.Policy{
			MaxAttempts: retryAttempts, InitialInterval: retryTier, MaxInterval: retryTier, Jitter: retry.NoJitter,
		},
	}
	errPoison := errors.New("faults: this message always fails")
	errOnce := errors.New("faults: this message fails its first attempt")
	for i, first := range []int{victim - 1, victim % 3} {
		b, _, err := open(first, "consumer-"+strconv.Itoa(i))
		if err != nil {
			return r.setupFailed(err)
		}
		consBs = append(consBs, b)
		svc := service.New(b, append(cfg.ServiceOptions(), service.WithLogger(nil))...)
		if err := service.Handle(svc, groupName, func(ctx context.Context, t Tick) error {
			if t.Seq < 0 {
				return nil // the warm-up
			}
			id := middleware.DeliveryFrom(ctx).Envelope.ID
			k := attempts.add(id)
			if k > 1 {
				redelivered.tick()
			}
			switch {
			case isPoison(t.Seq):
				return errPoison
			case failsOnce(t.Seq) && k == 1:
				return errOnce
			}
			handled.add(id)
			consumed.tick()
			return nil
		}, service.Group(groupName), service.Concurrency(8), service.WithPolicy(policy)); err != nil {
			return r.setupFailed(err)
		}
		done, err := runUntilReady(runCtx, svc, i)
		if err != nil {
			return r.setupFailed(err)
		}
		runs = append(runs, done)
	}

	p := newProducer(pubSvc, pubB.Publisher(), ns, n, 200, logger)
	pubDone := make(chan error, 1)
	go func() { pubDone <- p.run(ctx) }()
	// Dead-lettered so far: poison ids past their last attempt.
	deadSoFar := func() int {
		k := 0
		for seq := 0; seq < n; seq += 10 {
			if a, _ := attempts.get(msgID(ns, seq)); a >= retryAttempts {
				k++
			}
		}
		return k
	}
	sctx, scancel := context.WithTimeout(ctx, 2*time.Minute)
	if !waitFor(sctx, 50*time.Millisecond, func() bool { return p.sent.Load() >= n/4 && deadSoFar() >= 10 }) {
		r.failf("only %d confirmed, %d at their last attempt in 2m before the fault", p.sent.Load(), deadSoFar())
	}
	scancel()

	faultAt := time.Now()
	logger.Info("killing the failure paths' leader with SIGKILL", "node", victim, "published_so_far", p.sent.Load(), "dead_so_far", deadSoFar())
	healedAt := e.killAndRestore(ctx, r, kind, victim, p, n, logger)
	if err := <-pubDone; err != nil {
		r.failf("publishing: %v", err)
	}
	pubEnd := time.Now()
	confirmed := p.confirmed.snapshot()
	// Done: every good message handled, every poison one at its last attempt.
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	waitFor(wctx, 250*time.Millisecond, func() bool {
		for seq := 0; seq < n; seq++ {
			id := msgID(ns, seq)
			if confirmed[id] == 0 {
				continue
			}
			if a, _ := attempts.get(id); isPoison(seq) && a < retryAttempts || !isPoison(seq) && !handled.has(id) {
				return false
			}
		}
		return true
	})
	cancel()
	end := healedAt // from the fault until the cluster was whole or the stream ended
	if pubEnd.Before(end) {
		end = pubEnd
	}
	consGap := consumed.longestGap(faultAt, end)
	retryGap := redelivered.longestGap(faultAt, end)
	stopRun() // a dead letter is confirmed before its delivery is acked: shutdown waits for it
	for i, done := range runs {
		if err := <-done; err != nil {
			r.failf("consumer %d: %v", i, err)
		}
	}

	var wantDead, retriedOK, deadAfterKill int
	for seq := 0; seq < n; seq++ {
		id := msgID(ns, seq)
		if confirmed[id] == 0 {
			continue
		}
		switch {
		case isPoison(seq):
			wantDead++
			if _, at := attempts.get(id); at.After(faultAt) {
				deadAfterKill++
			}
		case failsOnce(seq) && handled.has(id):
			retriedOK++
		}
	}
	dead, err := collectDeadLetters(ctx, pubB, nm.dlTopic, wantDead, 2*time.Minute, deadLetterIdle(kind))
	if err != nil {
		r.failf("reading dead letters: %v", err)
	}
	r.tally(confirmed, handled.snapshot(), dead)
	var missing, wrong []string
	for seq := 0; seq < n; seq++ {
		id := msgID(ns, seq)
		if confirmed[id] > 0 && isPoison(seq) && dead[id] == "" {
			missing = append(missing, id)
		}
	}
	for id := range dead {
		if seq, err := strconv.Atoi(id[strings.LastIndex(id, "m")+1:]); err != nil || !isPoison(seq) {
			wrong = append(wrong, id)
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		r.failf("%d of %d always-failing messages are not in the dead-letter topic after the kill, e.g. %v", len(missing), wantDead, missing[:min(len(missing), 10)])
	}
	if len(wrong) > 0 {
		r.failf("%d messages that succeed were dead-lettered, e.g. %v", len(wrong), wrong[:min(len(wrong), 10)])
	}
	r.figures = fmt.Sprintf("killed_node=%d retry_leader=%d dead_letter_leader=%d retried_ok=%d dead_letters_found=%d/%d dead_lettered_after_kill=%d redelivery_stall=%s consumer_stall=%s fault_to_whole=%s publish_retries=%d",
		victim, victim, dlLeader, retriedOK, len(dead)-len(wrong), wantDead, deadAfterKill,
		retryGap.Round(time.Millisecond), consGap.Round(time.Millisecond), healedAt.Sub(faultAt).Round(100*time.Millisecond), p.retries.Load())
	logger.Info("scenario done", "figures", r.figures)
	return r
}

// retryLeader names the delay queue (RabbitMQ) or retry topic (Kafka) of
// the scenario's group and returns the node leading it.
func (e *env) retryLeader(ctx context.Context, kind string, nm names) (string, int, error) {
	if kind == config.BrokerAMQP {
		q := "switchyard.delay." + amqp.QueueTypeQuorum + "." + retryTier.String()
		leader, qtype, err := e.rabbitQueue(ctx, q)
		if err == nil && qtype != amqp.QueueTypeQuorum {
			err = fmt.Errorf("delay queue %q is %s, want quorum (replicated)", q, qtype)
		}
		return q, leader, err
	}
	adm, closeAdm, err := clusterAdmin()
	if err != nil {
		return "", 0, err
	}
	defer closeAdm()
	var topic string
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	waitFor(wctx, 250*time.Millisecond, func() bool {
		tds, err := adm.ListTopics(wctx)
		if err != nil {
			return false
		}
		for _, t := range tds.Names() {
			if strings.HasPrefix(t, nm.topic+".retry.") {
				topic = t
				return true
			}
		}
		return false
	})
	if topic == "" {
		return "", 0, fmt.Errorf("no retry topic %s.retry.* after a delayed message", nm.topic)
	}
	leader, err := kafkaLeader(ctx, topic)
	if err == nil {
		err = kafkaReplicated(ctx, adm, topic)
	}
	return topic, leader, err
}

// deadLetterLeader returns the dead-letter queue/topic of the scenario and
// its leader; on Kafka it first makes want the partition's preferred
// replica and elects it. replicated says what is wrong when the dead
// letters are not replicated.
func (e *env) deadLetterLeader(ctx context.Context, kind string, nm names, want int) (name string, leader int, replicated string, err error) {
	if kind == config.BrokerAMQP {
		q := nm.dlTopic + "." + broker.DeadLetterGroup
		leader, qtype, err := e.rabbitQueue(ctx, q)
		if err == nil && qtype != amqp.QueueTypeQuorum {
			replicated = fmt.Sprintf("dead-letter queue %q is %s, want quorum", q, qtype)
		}
		// RabbitMQ 3.10 cannot transfer a leadership: the (still empty)
		// queue is shrunk to its replica on want, which then leads, and
		// the other replicas are added back. Removing only the leader's
		// replica hands the leadership to either survivor (a trial run
		// bounced it between the two others five times).
		if err == nil && leader != want {
			e.logger.Info("moving the dead-letter queue's leader", "queue", q, "from", leader, "to", want)
			nodes := strings.Split(os.Getenv(envClusterNodes), ",")
			for _, op := range []string{"delete_member", "add_member"} {
				for i, node := range nodes {
					if i+1 != want && err == nil {
						err = e.clusterScript(ctx, "rabbitmq-queues", strconv.Itoa(want), "-q", op, q, node)
					}
				}
			}
			if err == nil {
				leader, _, err = e.rabbitQueue(ctx, q)
			}
		}
		return q, leader, replicated, err
	}
	adm, closeAdm, err := clusterAdmin()
	if err != nil {
		return "", 0, "", err
	}
	defer closeAdm()
	topic := nm.dlTopic
	if err := kafkaReplicated(ctx, adm, topic); err != nil {
		replicated = err.Error()
	}
	tds, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return topic, 0, replicated, err
	}
	reps := tds[topic].Partitions[0].Replicas
	if i := slices.Index(reps, int32(want)); i > 0 {
		e.logger.Info("making the wanted node the dead-letter topic's preferred leader", "topic", topic, "replicas", reps, "to", want)
		order := append([]int32{int32(want)}, slices.Delete(slices.Clone(reps), i, i+1)...)
		req := kadm.AlterPartitionAssignmentsReq{}
		req.Assign(topic, 0, order)
		if _, err := adm.AlterPartitionAssignments(ctx, req); err != nil {
			return topic, 0, replicated, fmt.Errorf("reorder the replicas of %q: %w", topic, err)
		}
		var s kadm.TopicsSet
		s.Add(topic, 0)
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		waitFor(wctx, 500*time.Millisecond, func() bool {
			_, _ = adm.ElectLeaders(wctx, kadm.ElectPreferredReplica, s)
			l, err := kafkaLeader(wctx, topic)
			return err == nil && l == want
		})
		cancel()
	}
	leader, err = kafkaLeader(ctx, topic)
	return topic, leader, replicated, err
}

// kafkaReplicated checks that partition 0 of topic has three replicas, all in sync.
func kafkaReplicated(ctx context.Context, adm *kadm.Client, topic string) error {
	tds, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return err
	}
	p := tds[topic].Partitions[0]
	if len(p.Replicas) != 3 || len(p.ISR) != 3 {
		return fmt.Errorf("topic %q has replicas %v, in sync %v: want 3 in sync", topic, p.Replicas, p.ISR)
	}
	return nil
}

// clusterAdmin is an admin client of the Kafka cluster.
func clusterAdmin() (*kadm.Client, func(), error) {
	v, err := need(envClusterKafka)
	if err != nil {
		return nil, nil, err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(v, ",")...))
	if err != nil {
		return nil, nil, err
	}
	return kadm.NewClient(cl), cl.Close, nil
}
