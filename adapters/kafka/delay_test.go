package kafka_test

import (
	"context"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/adapters/kafka"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/header"
)

func TestDelayRedeliversToItsGroupOnlyAfterTheDelay(t *testing.T) {
	b := newBroker(t, func(c *kafka.Config) {
		c.DelayTiers = []time.Duration{time.Second, 3 * time.Second}
	})
	topic, mine, other := uniqueName(t, "t"), uniqueName(t, "g"), uniqueName(t, "o")
	cleanupTopic(t, topic, mine, other)

	_, ch := subscribe(t, b, mine, topic, broker.SubscriberOptions{})
	_, otherCh := subscribe(t, b, other, topic, broker.SubscriberOptions{})
	waitStableGroup(t, mine, 1)
	waitStableGroup(t, other, 1)

	retried := newMsg("order-1", "retry me")
	retried.Metadata.Set(header.Attempt, "1")
	start := time.Now()
	// 2s rounds up to the 3s tier.
	if err := b.Delay(context.Background(), topic, mine, retried, 2*time.Second); err != nil {
		t.Fatalf("Delay: %v", err)
	}
	// The main topic keeps flowing while the retry record waits.
	fresh := newMsg("order-2", "fresh")
	if err := b.Publisher().Publish(topic, fresh); err != nil {
		t.Fatal(err)
	}
	m := receive(t, ch, waitMsg)
	if m.UUID != fresh.UUID {
		t.Fatalf("got %q first, want the fresh message while the retry waits", m.Payload)
	}
	m.Ack()
	m = receive(t, ch, waitMsg)
	if m.UUID != retried.UUID {
		t.Fatalf("got %q, want the retried message", m.Payload)
	}
	if waited := time.Since(start); waited < 3*time.Second-50*time.Millisecond {
		t.Errorf("retried message after %s, want >= 3s (2s rounded up to the 3s tier)", waited)
	}
	if m.Metadata.Get(header.Attempt) != "1" || m.Metadata.Get(header.Key) != "order-1" {
		t.Errorf("metadata not kept: %v", m.Metadata)
	}
	if want := topic + ".retry." + mine + ".3s"; m.Metadata.Get(kafka.MetadataTopic) != want {
		t.Errorf("topic metadata %q, want %q", m.Metadata.Get(kafka.MetadataTopic), want)
	}
	if m.Metadata.Get(kafka.MetadataRetryDue) != "" {
		t.Errorf("due header leaked into metadata")
	}
	m.Ack()

	// The other group sees the fresh message, never the retry.
	m = receive(t, otherCh, waitMsg)
	if m.UUID != fresh.UUID {
		t.Fatalf("other group got %q", m.Payload)
	}
	m.Ack()
	expectNone(t, otherCh, time.Second)
}
