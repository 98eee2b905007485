package kafka

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/header"
)

// MetadataRetryDue is the record header of a delayed redelivery that says
// when it is due, in Unix milliseconds. It is removed from the metadata of
// the message handed out.
const MetadataRetryDue = "sy_kafka_retry_due"

// retryTopic names the retry topic of topic for one delay tier, e.g.
// "orders.retry.5s".
func retryTopic(topic string, tier time.Duration) string {
	return topic + ".retry." + tier.String()
}

// retryTopics are the retry topics of topic, one per delay tier.
func (b *Broker) retryTopics(topic string) []string {
	ts := make([]string, len(b.cfg.DelayTiers))
	for i, d := range b.cfg.DelayTiers {
		ts[i] = retryTopic(topic, d)
	}
	return ts
}

// tier returns the delay tier a delay goes to: the smallest tier not shorter
// than delay, or the longest tier.
func (b *Broker) tier(delay time.Duration) time.Duration {
	for _, t := range b.cfg.DelayTiers {
		if delay <= t {
			return t
		}
	}
	return b.cfg.DelayTiers[len(b.cfg.DelayTiers)-1]
}

// Delay publishes msg to the retry topic of topic whose tier is delay rounded
// up ("<topic>.retry.<tier>"), marked for group and due at now + tier (or
// now + delay when delay is longer than the last tier). Subscribers of group
// on topic also consume its retry topics: they skip records meant for other
// groups, and pause a retry partition until its head record is due, so
// neither the main topic nor other partitions wait. Delay returns once the
// record is acknowledged.
func (b *Broker) Delay(ctx context.Context, topic, group string, msg *message.Message, delay time.Duration) error {
	if group == "" {
		return fmt.Errorf("kafka: delay to %q: consumer group required", topic)
	}
	tier := b.tier(delay)
	due := time.Now().Add(max(tier, delay))
	rt := retryTopic(topic, tier)
	b.pub.mu.RLock()
	defer b.pub.mu.RUnlock()
	if b.pub.closed {
		return fmt.Errorf("kafka: delay to %q: %w", rt, broker.ErrClosed)
	}
	if err := b.ensureTopics(ctx, rt); err != nil {
		return fmt.Errorf("kafka: delay to %q: %w", rt, err)
	}
	extra := []kgo.RecordHeader{
		{Key: header.RetryTarget, Value: []byte(group)},
		{Key: MetadataRetryDue, Value: []byte(strconv.FormatInt(due.UnixMilli(), 10))},
	}
	return b.pub.produce(ctx, rt, []*message.Message{msg}, extra)
}

// retryInfo reads the target group and due time of a retry record. A record
// without a valid due time is due at once.
func retryInfo(r *kgo.Record) (group string, due time.Time) {
	for _, h := range r.Headers {
		switch h.Key {
		case header.RetryTarget:
			group = string(h.Value)
		case MetadataRetryDue:
			if ms, err := strconv.ParseInt(string(h.Value), 10, 64); err == nil {
				due = time.UnixMilli(ms)
			}
		}
	}
	return group, due
}
