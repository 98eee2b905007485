package kafka_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-go/switchyard/adapters/kafka"
	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/pkg/broker"
)

// listTopics describes topics (all of them when none is given) on the
// test broker.
func listTopics(t *testing.T, topics ...string) kadm.TopicDetails {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokertest.KafkaBrokers(t), ",")...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ds, err := kadm.NewClient(cl).ListTopics(ctx, topics...)
	if err != nil {
		t.Fatalf("ListTopics: %v", err)
	}
	return ds
}

// topicExists asks the test broker whether topic exists.
func topicExists(t *testing.T, topic string) bool {
	t.Helper()
	d, ok := listTopics(t, topic)[topic]
	return ok && d.Err == nil && len(d.Partitions) > 0
}

func TestProvisionVerifyFailsClearlyOnMissingTopic(t *testing.T) {
	b := newBroker(t, func(c *kafka.Config) { c.Provision = kafka.ProvisionVerify })
	topic, group := uniqueName(t, "t"), uniqueName(t, "g")
	cleanupTopic(t, topic, group)

	sub, err := b.Subscriber(group, broker.SubscriberOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	_, err = sub.Subscribe(context.Background(), topic)
	if err == nil {
		t.Fatal("Subscribe to a missing topic with provision verify: no error")
	}
	if !errors.Is(err, kafka.ErrTopicMissing) || !strings.Contains(err.Error(), topic) ||
		!strings.Contains(err.Error(), "broker.kafka.provision") {
		t.Errorf("Subscribe error %q, want one naming the topic, ErrTopicMissing and broker.kafka.provision", err)
	}
	if err := b.Publisher().Publish(topic, newMsg("k", "x")); !errors.Is(err, kafka.ErrTopicMissing) {
		t.Errorf("Publish to a missing topic with provision verify: %v, want ErrTopicMissing", err)
	}
	if topicExists(t, topic) {
		t.Fatal("provision verify created the topic")
	}

	// Once the topic and its retry topics exist (made by a creating
	// Broker), verify accepts them.
	creator := newBroker(t, nil)
	if err := creator.Provision(context.Background(), topic, group); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	_, ch := subscribe(t, b, group, topic, broker.SubscriberOptions{})
	msg := newMsg("k", "hello")
	if err := b.Publisher().Publish(topic, msg); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if m := receive(t, ch, waitMsg); m.UUID != msg.UUID {
		t.Fatalf("got %q", m.Payload)
	} else {
		m.Ack()
	}
}

func TestProvisionNoneNeverCreatesTopics(t *testing.T) {
	b := newBroker(t, func(c *kafka.Config) {
		c.Provision = kafka.ProvisionNone
		c.PublishTimeout = 2 * time.Second
	})
	topic, group := uniqueName(t, "t"), uniqueName(t, "g")
	cleanupTopic(t, topic, group)

	sub, err := b.Subscriber(group, broker.SubscriberOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if _, err := sub.Subscribe(context.Background(), topic); err != nil {
		t.Fatalf("Subscribe with provision none: %v", err)
	}
	if err := b.Provision(context.Background(), topic, group); err != nil {
		t.Fatalf("Provision with provision none: %v", err)
	}
	_ = b.Publisher().Publish(topic, newMsg("k", "x")) // may fail: the topic is missing
	if topicExists(t, topic) {
		t.Fatal("provision none created the topic")
	}
	for _, d := range kafka.DefaultDelayTiers {
		if rt := topic + ".retry." + group + "." + d.String(); topicExists(t, rt) {
			t.Fatalf("provision none created retry topic %q", rt)
		}
	}
}

func TestProvisionCreateUsesTheClusterReplicationFactor(t *testing.T) {
	b := newBroker(t, nil) // replication_factor default -1
	topic, group := uniqueName(t, "t"), uniqueName(t, "g")
	cleanupTopic(t, topic, group)
	if err := b.Provision(context.Background(), topic, group); err != nil {
		t.Fatalf("Provision with replication factor -1: %v", err)
	}
	for _, rt := range append([]string{topic}, topic+".retry."+group+".1s", topic+".retry."+group+".10m0s") {
		if !topicExists(t, rt) {
			t.Errorf("topic %q not created", rt)
		}
	}
}

// Retry topics are created with retry_partitions partitions, the subscribed
// topic with partitions: five tiers per group need not cost five times the
// topic's partitions.
func TestRetryTopicsHaveTheirOwnPartitionCount(t *testing.T) {
	b := newBroker(t, func(c *kafka.Config) { c.Partitions = 3; c.RetryPartitions = 2 })
	topic, group := uniqueName(t, "t"), uniqueName(t, "g")
	cleanupTopic(t, topic, group)
	subscribe(t, b, group, topic, broker.SubscriberOptions{})
	retries := 0
	for name, d := range listTopics(t) {
		switch {
		case name == topic:
			if len(d.Partitions) != 3 {
				t.Errorf("%s: %d partitions, want 3", name, len(d.Partitions))
			}
		case strings.HasPrefix(name, topic+".retry."):
			retries++
			if len(d.Partitions) != 2 {
				t.Errorf("%s: %d partitions, want 2", name, len(d.Partitions))
			}
		}
	}
	if retries != 5 {
		t.Errorf("%d retry topics, want one per tier (5)", retries)
	}
}

// requestCounter is a franz-go hook counting the requests written to the
// brokers, by request key, over every client of a Broker
// (kafka.WithClientOpts), retries included.
type requestCounter struct {
	mu sync.Mutex
	n  map[int16]int
}

func (c *requestCounter) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, _ error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[int16]int{}
	}
	c.n[key]++
}

func (c *requestCounter) count(key int16) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}

// createTopic creates topic with one partition on the test broker, as an
// operator would.
func createTopic(t *testing.T, topic string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokertest.KafkaBrokers(t), ",")...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if r, err := kadm.NewClient(cl).CreateTopic(ctx, 1, -1, nil, topic); err != nil || r.Err != nil {
		t.Fatalf("CreateTopic %s: %v %v", topic, err, r.Err)
	}
}

// Provisioning is off the publish hot path: a topic is looked up (and
// created if missing) on its first Publish only; later Publishes send no
// CreateTopics and no Metadata request of their own. With provision none
// nothing is ever looked up or created.
func TestPublishProvisionsATopicOnce(t *testing.T) {
	const n = 50
	createKey, metadataKey := (*kmsg.CreateTopicsRequest)(nil).Key(), (*kmsg.MetadataRequest)(nil).Key()
	for _, c := range []struct {
		name      string
		provision string
		exists    bool
		// wantCreates is how many CreateTopics the first Publish sends.
		wantCreates int
	}{
		{"create a missing topic", kafka.ProvisionCreate, false, 1},
		{"create finds an existing topic", kafka.ProvisionCreate, true, 0},
		{"none", kafka.ProvisionNone, true, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			var reqs requestCounter
			b := newBroker(t, func(cfg *kafka.Config) {
				cfg.Provision = c.provision
				cfg.Partitions = 1
				kafka.WithClientOpts(cfg, kgo.WithHooks(&reqs))
			})
			topic := uniqueName(t, "t")
			cleanupTopic(t, topic)
			if c.exists {
				createTopic(t, topic)
			}
			if err := b.Publisher().Publish(topic, newMsg("k", "first")); err != nil {
				t.Fatalf("first Publish: %v", err)
			}
			if got := reqs.count(createKey); got != c.wantCreates {
				t.Errorf("first Publish sent %d CreateTopics, want %d", got, c.wantCreates)
			}
			creates, lookups := reqs.count(createKey), reqs.count(metadataKey)
			for i := range n {
				if err := b.Publisher().Publish(topic, newMsg("k", strconv.Itoa(i))); err != nil {
					t.Fatalf("Publish %d: %v", i, err)
				}
			}
			if got := reqs.count(createKey) - creates; got != 0 {
				t.Errorf("%d later Publishes sent %d CreateTopics, want 0", n, got)
			}
			// The producing client may refresh its metadata now and then,
			// never once per publish.
			if got := reqs.count(metadataKey) - lookups; got > 2 {
				t.Errorf("%d later Publishes sent %d Metadata requests, want at most 2", n, got)
			}
			t.Logf("CreateTopics: %d, Metadata: %d before and %d during %d later Publishes",
				creates, lookups, reqs.count(metadataKey)-lookups, n)
		})
	}
}

// Subscribe provisions the topic and its group's retry topics, so neither
// the Publishes nor the Delays after it create or look up anything.
func TestNoCreateTopicsAfterSubscribe(t *testing.T) {
	const n = 20
	createKey := (*kmsg.CreateTopicsRequest)(nil).Key()
	var reqs requestCounter
	b := newBroker(t, func(cfg *kafka.Config) {
		cfg.DelayTiers = []time.Duration{time.Second, time.Minute}
		kafka.WithClientOpts(cfg, kgo.WithHooks(&reqs))
	})
	topic, group := uniqueName(t, "t"), uniqueName(t, "g")
	cleanupTopic(t, topic, group)
	subscribe(t, b, group, topic, broker.SubscriberOptions{})
	creates := reqs.count(createKey)
	if creates == 0 {
		t.Fatal("Subscribe sent no CreateTopics: the topics existed, the test cannot tell")
	}
	ctx := context.Background()
	for i := range n {
		if err := b.Publisher().Publish(topic, newMsg("k", strconv.Itoa(i))); err != nil {
			t.Fatalf("Publish %d: %v", i, err)
		}
		if err := b.Delay(ctx, topic, group, newMsg("k", "later"), time.Minute); err != nil {
			t.Fatalf("Delay %d: %v", i, err)
		}
	}
	if got := reqs.count(createKey) - creates; got != 0 {
		t.Errorf("%d Publishes and Delays after Subscribe sent %d CreateTopics, want 0", n, got)
	}
}
