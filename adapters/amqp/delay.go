package amqp

import (
	"context"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Delay publishes msg so that it reaches only group's queue on topic again,
// no sooner than delay from now (rounded up to a [Config.DelayTiers] tier,
// capped at the largest). It returns once RabbitMQ has confirmed it. The
// group's queue must exist (the group subscribed at least once).
//
// How: the message waits in the tier's queue "switchyard.delay.<tier>"
// (x-message-ttl = tier) and then dead-letters through the default exchange
// with its routing key, the group's queue name.
func (b *Broker) Delay(ctx context.Context, topic, group string, msg *message.Message, delay time.Duration) error {
	tier := b.tier(delay)
	queue := b.cfg.queueName(topic, group)
	fail := func(err error) error {
		return fmt.Errorf("amqp: delay %s to %q: %w", tierName(tier), queue, err)
	}
	if err := b.topo.queueExists(queue); err != nil {
		return fail(err)
	}
	exchange, err := b.topo.delayTier(tier)
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.ConfirmTimeout)
	defer cancel()
	return b.pub.publish(ctx, nil, topic, exchange, queue, true, []*message.Message{msg})
}

// tier rounds d up to the first tier that is at least d, or the largest.
func (b *Broker) tier(d time.Duration) time.Duration {
	for _, t := range b.cfg.DelayTiers {
		if t >= d {
			return t
		}
	}
	return b.cfg.DelayTiers[len(b.cfg.DelayTiers)-1]
}
