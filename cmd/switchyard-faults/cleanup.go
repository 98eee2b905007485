//go:build !switchyard_no_kafka && !switchyard_no_amqp

package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-go/switchyard/adapters/postgres"
	"github.com/switchyard-go/switchyard/config"
	"github.com/switchyard-go/switchyard/pkg/broker"
)

// cleanup deletes what a passing scenario run left on the brokers: its
// RabbitMQ queues and exchanges, its Kafka topics (every topic of the
// namespace, retry topics included) and its idempotency keys. A failed run
// keeps everything for inspection. Errors are logged, never fatal.
func (e *env) cleanup(ctx context.Context, kind, ns string) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	nm := namesFor(ns)
	switch kind {
	case config.BrokerAMQP:
		u, err := need(envAMQPURL)
		if err != nil {
			return
		}
		conn, err := amqp091.Dial(u)
		if err != nil {
			e.logger.Warn("cleanup: amqp", "err", err)
			return
		}
		defer conn.Close()
		del := func(fn func(ch *amqp091.Channel) error) {
			// A failed delete closes the channel: one channel per delete.
			if ch, err := conn.Channel(); err == nil {
				_ = fn(ch)
				_ = ch.Close()
			}
		}
		for _, q := range []string{nm.topic + "." + nm.group, nm.dlTopic + "." + broker.DeadLetterGroup} {
			del(func(ch *amqp091.Channel) error { _, err := ch.QueueDelete(q, false, false, false); return err })
		}
		for _, x := range []string{nm.topic, nm.dlTopic} {
			del(func(ch *amqp091.Channel) error { return ch.ExchangeDelete(x, false, false) })
		}
	case config.BrokerKafka:
		u, err := need(envKafkaBrokers)
		if err != nil {
			return
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(u, ",")...))
		if err != nil {
			return
		}
		defer cl.Close()
		adm := kadm.NewClient(cl)
		topics, err := adm.ListTopics(ctx)
		if err != nil {
			e.logger.Warn("cleanup: kafka list topics", "err", err)
			return
		}
		var mine []string
		for _, t := range topics.Names() {
			if strings.HasPrefix(t, ns) {
				mine = append(mine, t)
			}
		}
		if len(mine) > 0 {
			if _, err := adm.DeleteTopics(ctx, mine...); err != nil {
				e.logger.Warn("cleanup: kafka delete topics", "err", err)
			}
		}
	}
	if pool, err := openPool(ctx); err == nil {
		_, _ = pool.Exec(ctx, "DELETE FROM "+postgres.Table+" WHERE key LIKE $1", nm.group+"/%")
		pool.Close()
	}
}

// waitKafkaGroup waits until the Kafka consumer group is stable with
// members members, so that a scenario's stream does not overlap the
// rebalance of consumers joining (whose redeliveries would be counted
// against what the scenario tests).
func waitKafkaGroup(ctx context.Context, group string, members int, timeout time.Duration) error {
	u, err := need(envKafkaBrokers)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(u, ",")...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var state string
	var n int
	if waitFor(wctx, 200*time.Millisecond, func() bool {
		gs, err := adm.DescribeGroups(wctx, group)
		if err != nil {
			return false
		}
		g, ok := gs[group]
		if !ok || g.Err != nil {
			return false
		}
		state, n = g.State, len(g.Members)
		return state == "Stable" && n == members
	}) {
		return nil
	}
	return fmt.Errorf("faults: kafka group %q not stable with %d members after %s (state %q, %d members)", group, members, timeout, state, n)
}
