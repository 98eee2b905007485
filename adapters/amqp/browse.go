package amqp

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pkg/broker"
)

// Browse implements [broker.Browser]: it calls fn with each message of
// group's queue on topic, oldest first, without removing any, until fn
// returns false or the queue is exhausted. The messages are fetched with
// basic.get on a channel of their own and handed back when Browse returns
// (nacked with requeue, then the channel is closed: RabbitMQ requeues them
// in place); they are marked
// redelivered, and a quorum queue counts the browse as a delivery attempt:
// the dead-letter group's queues ([broker.DeadLetterGroup]) are declared
// without a delivery limit for this reason, so browsing them loses nothing,
// while browsing another quorum queue uses up its [Config.DeliveryLimit].
// While Browse runs, the fetched messages are invisible to the group's
// consumers, so browse a queue nobody consumes (a dead-letter group) or
// expect a short hold-up.
func (b *Broker) Browse(ctx context.Context, topic, group string, fn func(*message.Message) bool) error {
	queue := b.cfg.queueName(topic, group)
	fail := func(err error) error {
		return fmt.Errorf("amqp: browse %q: %w", queue, err)
	}
	if err := b.topo.queueExists(queue); err != nil {
		return fail(err)
	}
	conn, _, err := b.pubLink.get()
	if err != nil {
		return fail(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		return fail(disconnectedErr(err))
	}
	var last uint64 // the last delivery tag fetched
	defer func() {
		// Hand everything back explicitly before closing: the channel's
		// close alone requeues too, but RabbitMQ may do it after close-ok,
		// so a browse right after this one could find the queue empty.
		if last > 0 {
			_ = ch.Nack(last, true, true)
		}
		_ = ch.Close()
	}()
	for {
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		d, ok, err := ch.Get(queue, false)
		if err != nil {
			return fail(disconnectedErr(err))
		}
		if ok {
			last = d.DeliveryTag
		}
		if !ok || !fn(toMessage(&d)) {
			return nil
		}
	}
}

// Provision implements [broker.Provisioner]: it declares topic's exchange
// and group's durable queue bound to it, so messages published from now on
// are kept for group even before anyone consumes them.
func (b *Broker) Provision(ctx context.Context, topic, group string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := b.topo.workQueue(topic, group, false); err != nil {
		return fmt.Errorf("amqp: provision %q for %q: %w", topic, group, err)
	}
	return nil
}

var (
	_ broker.Browser     = (*Broker)(nil)
	_ broker.Provisioner = (*Broker)(nil)
)
