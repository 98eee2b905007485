package amqp

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Browse returns up to limit messages from the head of group's queue on
// topic without removing them, for the operator CLI (dead letters). The
// messages are fetched with basic.get on a channel of their own and handed
// back when Browse returns (the channel is closed, RabbitMQ requeues them in
// place); they are marked redelivered, and a quorum queue counts the
// browse as a delivery attempt. While Browse runs, the fetched messages are
// invisible to the group's consumers, so browse a queue nobody consumes (a
// dead-letter group) or expect a short hold-up.
func (b *Broker) Browse(ctx context.Context, topic, group string, limit int) ([]*message.Message, error) {
	queue := b.cfg.queueName(topic, group)
	fail := func(err error) ([]*message.Message, error) {
		return nil, fmt.Errorf("amqp: browse %q: %w", queue, err)
	}
	if limit <= 0 {
		return fail(fmt.Errorf("limit %d, want > 0", limit))
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
	defer ch.Close() // requeues every fetched message
	var msgs []*message.Message
	for len(msgs) < limit {
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		d, ok, err := ch.Get(queue, false)
		if err != nil {
			return fail(disconnectedErr(err))
		}
		if !ok {
			break
		}
		msgs = append(msgs, toMessage(&d))
	}
	return msgs, nil
}
