package kafka_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/adapters/kafka"
	"github.com/switchyard-go/switchyard/pkg/broker"
)

// The critical loss: with initial_offset latest, a delayed record published
// while no member of the group runs (a rolling deploy, a restart) must still
// be delivered when the group comes back. Retry topics are created at
// Subscribe and read from the earliest offset by their own client.
func TestDelayWithLatestAcrossRestartIsDelivered(t *testing.T) {
	b := newBroker(t, func(c *kafka.Config) {
		c.InitialOffset = kafka.OffsetLatest
		c.DelayTiers = []time.Duration{time.Second, 3 * time.Second}
	})
	topic, group := uniqueName(t, "t"), uniqueName(t, "g")
	cleanupTopic(t, topic, group)

	first, _ := subscribe(t, b, group, topic, broker.SubscriberOptions{})
	waitStableGroup(t, group, 1)
	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Nobody of the group runs now; the retry group never committed.
	retried := newMsg("order-1", "retry me")
	if err := b.Delay(context.Background(), topic, group, retried, time.Second); err != nil {
		t.Fatalf("Delay: %v", err)
	}
	_, ch := subscribe(t, b, group, topic, broker.SubscriberOptions{})
	m := receive(t, ch, waitMsg)
	if m.UUID != retried.UUID {
		t.Fatalf("got %q, want the delayed message", m.Payload)
	}
	m.Ack()
}

// A delay longer than the last tier is chained through the tiers: it is
// never handed out before it is due, and it never holds its retry partition
// for longer than the tier (a later, shorter delay on the same partition
// comes first).
func TestDelayBeyondLastTierIsChainedNotEarly(t *testing.T) {
	b := newBroker(t, func(c *kafka.Config) {
		c.Partitions = 1 // both delays on one retry partition
		c.DelayTiers = []time.Duration{time.Second, 2 * time.Second}
	})
	topic, group := uniqueName(t, "t"), uniqueName(t, "g")
	cleanupTopic(t, topic, group)
	_, ch := subscribe(t, b, group, topic, broker.SubscriberOptions{})
	waitStableGroup(t, group, 1)

	long, short := newMsg("k", "long"), newMsg("k", "short")
	start := time.Now()
	if err := b.Delay(context.Background(), topic, group, long, 5*time.Second); err != nil {
		t.Fatalf("Delay: %v", err)
	}
	if err := b.Delay(context.Background(), topic, group, short, 2*time.Second); err != nil {
		t.Fatalf("Delay: %v", err)
	}
	m := receive(t, ch, waitMsg)
	if m.UUID != short.UUID {
		t.Fatalf("got %q first, want the 2s delay before the 5s one", m.Payload)
	}
	m.Ack()
	m = receive(t, ch, waitMsg)
	waited := time.Since(start)
	if m.UUID != long.UUID {
		t.Fatalf("got %q, want the long delay", m.Payload)
	}
	if waited < 5*time.Second {
		t.Errorf("5s delay handed out after %s: early", waited)
	}
	if waited > 8*time.Second {
		t.Errorf("5s delay handed out after %s, want about 5s", waited)
	}
	if m.Metadata.Get(kafka.MetadataRetryUntil) != "" || m.Metadata.Get(kafka.MetadataRetryDue) != "" {
		t.Errorf("retry headers leaked into metadata: %v", m.Metadata)
	}
	m.Ack()
	expectNone(t, ch, time.Second)
}

// A burst of delayed records not due yet must not stop the main topic: the
// retry topics have their own client and fetch budget.
func TestRetryBurstDoesNotStopMainTopic(t *testing.T) {
	b := newBroker(t, func(c *kafka.Config) {
		c.DelayTiers = []time.Duration{time.Second, time.Minute}
	})
	topic, group := uniqueName(t, "t"), uniqueName(t, "g")
	cleanupTopic(t, topic, group)
	_, ch := subscribe(t, b, group, topic, broker.SubscriberOptions{Prefetch: 4})
	waitStableGroup(t, group, 1)

	// Far more than prefetch + fetch buffer, all due in a minute.
	const burst = 600
	ctx := context.Background()
	msgs := make([]*message.Message, burst)
	errs := make(chan error, burst)
	for i := range msgs {
		msgs[i] = newMsg("k"+strconv.Itoa(i%30), "later")
		go func() { errs <- b.Delay(ctx, topic, group, msgs[i], time.Minute) }()
	}
	for range burst {
		if err := <-errs; err != nil {
			t.Fatalf("Delay: %v", err)
		}
	}
	// Give the retry client time to fetch the burst before the main topic
	// sees anything: that is when a shared budget would stop fetching.
	waitRetryFetched(t, b, group)

	start := time.Now()
	for i := range 20 {
		if err := b.Publisher().Publish(topic, newMsg("m"+strconv.Itoa(i), "now")); err != nil {
			t.Fatal(err)
		}
	}
	for range 20 {
		m := receive(t, ch, 10*time.Second)
		if string(m.Payload) != "now" {
			t.Fatalf("got %q, want main-topic messages while the burst waits", m.Payload)
		}
		m.Ack()
	}
	t.Logf("20 main-topic messages after a burst of %d delayed records in %s", burst, time.Since(start))
}

// waitRetryFetched waits until the retry group of group has joined and got
// its partitions, so that the retry client is fetching.
func waitRetryFetched(t *testing.T, b *kafka.Broker, group string) {
	t.Helper()
	waitStableGroup(t, group+".retry", 1)
}

// Changing DelayTiers in a rolling deploy strands nothing: a record delayed
// by the old deployment to a tier the new one no longer has is still read
// from that tier's topic (the retry client subscribes to every retry topic
// of the group by pattern) and handed out once, when due, not sooner.
func TestDelayToATierNoLongerConfiguredIsDelivered(t *testing.T) {
	const oldTier = 8 * time.Second
	topic, group := uniqueName(t, "t"), uniqueName(t, "g")
	cleanupTopic(t, topic, group)

	old := newBroker(t, func(c *kafka.Config) { c.DelayTiers = []time.Duration{time.Second, oldTier} })
	subscribe(t, old, group, topic, broker.SubscriberOptions{})
	waitStableGroup(t, group, 1)
	retried := newMsg("order-1", "delayed by the old deployment")
	start := time.Now()
	if err := old.Delay(context.Background(), topic, group, retried, oldTier); err != nil {
		t.Fatalf("Delay: %v", err)
	}
	if err := old.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Closing may outlast the delay on a loaded machine; the record is in
	// the old tier's topic either way (the old member acked nothing), so
	// the new deployment must still read it from there.
	if took := time.Since(start); took >= oldTier {
		t.Logf("old deployment closed %s after the delay, when it was already due", took)
	}

	// The new deployment's tiers do not include the old one.
	b := newBroker(t, func(c *kafka.Config) { c.DelayTiers = []time.Duration{time.Second, 2 * time.Second} })
	_, ch := subscribe(t, b, group, topic, broker.SubscriberOptions{})
	m := receive(t, ch, oldTier+20*time.Second)
	waited := time.Since(start)
	if m.UUID != retried.UUID {
		t.Fatalf("got %q, want the delayed message", m.Payload)
	}
	if waited < oldTier {
		t.Errorf("handed out %s after a %s delay: early", waited, oldTier)
	}
	if want := topic + ".retry." + group + "." + oldTier.String(); m.Metadata.Get(kafka.MetadataTopic) != want {
		t.Errorf("read from %q, want the old tier's topic %q", m.Metadata.Get(kafka.MetadataTopic), want)
	}
	m.Ack()
	expectNone(t, ch, 3*time.Second) // once
	t.Logf("delivered from the old %s tier after %s", oldTier, waited)
}
