package amqp

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// DelayUntilHeader carries, on a delayed message whose delay is longer than
// the largest tier, when it is due (Unix milliseconds). The subscription
// that receives it before then delays it again instead of handing it out,
// so that a long delay is a chain of tiers, never cut short. It is removed
// before the message is handed out.
const DelayUntilHeader = "switchyard_delay_until"

// Delay publishes msg so that it reaches only group's queue on topic again,
// no sooner than delay from now: the delay is rounded up to a
// [Config.DelayTiers] tier, and a delay longer than the largest tier waits
// in the largest tier as often as needed (see [DelayUntilHeader]). It
// returns once RabbitMQ has confirmed it. The group's queue must exist (the
// group subscribed at least once); it is checked on every call.
//
// How: the message waits in the tier's queue (x-message-ttl = tier) and then
// dead-letters through the default exchange with its routing key, the
// group's queue name. With quorum tiers ([Config.DelayQueueType], the
// default) that dead-lettering is at least once.
func (b *Broker) Delay(ctx context.Context, topic, group string, msg *message.Message, delay time.Duration) error {
	return b.delayUntil(ctx, topic, group, msg, time.Now().Add(delay))
}

// delayUntil is Delay to a due time: the next hop of a chained delay.
func (b *Broker) delayUntil(ctx context.Context, topic, group string, msg *message.Message, due time.Time) error {
	remaining := time.Until(due)
	tier := b.tier(remaining)
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
	if remaining > tier || msg.Metadata.Get(DelayUntilHeader) != "" {
		// Another hop follows, or this is the last one of a chain: the
		// header is set (or cleared) on a copy, so the caller's message
		// is left as it was.
		msg = msg.Copy()
		if remaining > tier {
			msg.Metadata.Set(DelayUntilHeader, strconv.FormatInt(due.UnixMilli(), 10))
		} else {
			delete(msg.Metadata, DelayUntilHeader)
		}
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

// dueAt reads [DelayUntilHeader] from a delivery's metadata: the zero time
// when absent or malformed (a malformed value is not worth holding a
// message back for: it is handed out).
func dueAt(msg *message.Message) time.Time {
	v := msg.Metadata.Get(DelayUntilHeader)
	if v == "" {
		return time.Time{}
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}
