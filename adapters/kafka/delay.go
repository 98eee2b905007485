package kafka

import (
	"context"
	"fmt"
	"hash/fnv"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/header"
)

// MetadataRetryDue is the record header of a delayed redelivery that says
// when it is due on its retry topic, in Unix milliseconds. It is removed
// from the metadata of the message handed out.
const MetadataRetryDue = "sy_kafka_retry_due"

// MetadataRetryUntil is the record header of a delayed redelivery longer
// than the last delay tier: when it is finally due, in Unix milliseconds.
// A record due on its tier before that is forwarded to a tier again
// (chained) instead of being handed out. Removed from the metadata handed out.
const MetadataRetryUntil = "sy_kafka_retry_until"

// retryGroup is the consumer group that reads the retry topics of group: a
// group of its own, so that it reads from the earliest offset whatever
// InitialOffset says (a retry topic only ever holds records for its group)
// and its rebalances do not disturb the main topic's.
func retryGroup(group string) string { return group + ".retry" }

// topicSafe maps a group name to the characters Kafka allows in topic names.
func topicSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if legalTopicName(string(r)) {
			return r
		}
		return '_'
	}, s)
}

// Kafka topic names are at most 249 characters; retryPrefix leaves room
// for the tier.
const (
	maxTopicName = 249
	maxTierName  = 24
)

// retryPrefix is the name of the retry topics of topic for group without
// the tier: "<topic>.retry.<group>.", or, when that would make a topic name
// too long (group names often repeat the topic), its start followed by a
// hash of topic and group.
func retryPrefix(topic, group string) string {
	p := topic + ".retry." + topicSafe(group) + "."
	if len(p) <= maxTopicName-maxTierName {
		return p
	}
	h := fnv.New64a()
	h.Write([]byte(topic + "\x00" + group))
	sum := fmt.Sprintf("-%016x.", h.Sum64())
	return p[:maxTopicName-maxTierName-len(sum)] + sum
}

// retryTopic names the retry topic of topic for group and one delay tier,
// e.g. "orders.retry.billing.5s". Retry topics are per group, so no group
// reads (and skips) another's delayed records.
func retryTopic(topic, group string, tier time.Duration) string {
	return retryPrefix(topic, group) + tier.String()
}

// retryTopicPattern matches every retry topic of topic for group, whatever
// its tier (a tier is a Go duration string such as "1m30s" or "1.5s"), so
// that records in the topics of tiers no longer configured are still read.
func retryTopicPattern(topic, group string) string {
	return "^" + regexp.QuoteMeta(retryPrefix(topic, group)) +
		`([0-9]+(\.[0-9]+)?(h|m|s|ms|us|µs|ns))+$`
}

// retryTopics are the retry topics of topic for group, one per delay tier.
func (b *Broker) retryTopics(topic, group string) []string {
	ts := make([]string, len(b.cfg.DelayTiers))
	for i, d := range b.cfg.DelayTiers {
		ts[i] = retryTopic(topic, group, d)
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

// Delay publishes msg to the retry topic of topic and group whose tier is
// delay rounded up ("<topic>.retry.<group>.<tier>"), due at now + tier. A
// delay longer than the last tier goes to the last tier with its final due
// time ([MetadataRetryUntil]); subscribers forward it through the tiers
// again until that time, so it is never handed out early and never holds
// a retry partition longer than its tier. Subscribers of group on topic
// read its retry topics with a client of their own, from the earliest
// offset, and pause a retry partition until its head record is due, so
// neither the main topic nor other partitions wait. The retry topics are
// created by Subscribe (Config.Provision), before any record can be
// delayed to them. Delay returns once the record is acknowledged.
func (b *Broker) Delay(ctx context.Context, topic, group string, msg *message.Message, delay time.Duration) error {
	if group == "" {
		return fmt.Errorf("kafka: delay to %q: consumer group required", topic)
	}
	if _, ok := msg.Context().(*txnContext); ok || txnIn(ctx) != nil {
		return fmt.Errorf("kafka: delay to %q: a delayed redelivery cannot join an exactly-once transaction (use order_on_retry: keep)", topic)
	}
	return b.delayUntil(ctx, topic, group, msg, time.Now().Add(delay), false)
}

// delayUntil publishes msg to the retry tier that suits until. With exact
// false the due time is rounded up to the tier (Delay's promise); a
// forwarded record (exact true) keeps its final due time when it is within
// the tier.
func (b *Broker) delayUntil(ctx context.Context, topic, group string, msg *message.Message, until time.Time, exact bool) error {
	now := time.Now()
	delay := until.Sub(now)
	tier := b.tier(delay)
	due := now.Add(tier)
	if exact && delay < tier {
		due = until
	}
	rt := retryTopic(topic, group, tier)
	b.pub.mu.RLock()
	defer b.pub.mu.RUnlock()
	if b.pub.closed {
		return fmt.Errorf("kafka: delay to %q: %w", rt, broker.ErrClosed)
	}
	// Normally a cache hit: Subscribe provisioned the group's retry topics.
	// A process that delays without subscribing (a replay tool) looks the
	// topic up once.
	if err := b.ensureRetryTopics(ctx, rt); err != nil {
		return fmt.Errorf("kafka: delay to %q: %w", rt, err)
	}
	extra := []kgo.RecordHeader{
		{Key: header.RetryTarget, Value: []byte(group)},
		{Key: MetadataRetryDue, Value: []byte(strconv.FormatInt(ceilMilli(due), 10))},
	}
	if until.After(due) {
		extra = append(extra, kgo.RecordHeader{Key: MetadataRetryUntil, Value: []byte(strconv.FormatInt(ceilMilli(until), 10))})
	}
	return b.pub.produce(ctx, rt, []*message.Message{msg}, extra)
}

// retryInfo reads the target group, the due time on its tier and the final
// due time of a retry record. A record without a valid due time is due at
// once; until is zero unless the delay is chained.
func retryInfo(r *kgo.Record) (group string, due, until time.Time) {
	for _, h := range r.Headers {
		switch h.Key {
		case header.RetryTarget:
			group = string(h.Value)
		case MetadataRetryDue:
			if ms, err := strconv.ParseInt(string(h.Value), 10, 64); err == nil {
				due = time.UnixMilli(ms)
			}
		case MetadataRetryUntil:
			if ms, err := strconv.ParseInt(string(h.Value), 10, 64); err == nil {
				until = time.UnixMilli(ms)
			}
		}
	}
	return group, due, until
}

// ceilMilli is t in Unix milliseconds rounded up: the headers carry
// milliseconds, and a due time rounded down would hand a record out up to
// a millisecond before its delay ends ("no sooner than").
func ceilMilli(t time.Time) int64 {
	ms := t.UnixMilli()
	if time.UnixMilli(ms).Before(t) {
		ms++
	}
	return ms
}
