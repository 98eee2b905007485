package kafka_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/switchyard-go/switchyard/adapters/kafka"
	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/pkg/broker"
)

// topicGroupSubscriber is the suite's "subscriber without a named group":
// every Subscribe joins the group "<prefix>.<topic>". The suite expects
// subscribers built by separate constructor calls to share work and resume
// from each other's commits on the same topic (TestContinueAfterSubscribeClose,
// TestConcurrentSubscribe), which is what one group per topic gives, without
// making every parallel test of the suite rebalance one shared group.
type topicGroupSubscriber struct {
	b      *kafka.Broker
	prefix string

	mu   sync.Mutex
	subs []message.Subscriber
}

func (s *topicGroupSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	sub, err := s.b.Subscriber(s.prefix+"."+topic, broker.SubscriberOptions{})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.subs = append(s.subs, sub)
	s.mu.Unlock()
	return sub.Subscribe(ctx, topic)
}

func (s *topicGroupSubscriber) Close() error {
	s.mu.Lock()
	subs := s.subs
	s.subs = nil
	s.mu.Unlock()
	var errs []error
	for _, sub := range subs {
		errs = append(errs, sub.Close())
	}
	return errors.Join(errs...)
}

// brokerSubscriber closes its broker with the subscriber: the suite closes
// the publisher and the subscriber it was given, never a broker.
type brokerSubscriber struct {
	message.Subscriber
	b *kafka.Broker
}

func (s brokerSubscriber) Close() error {
	return errors.Join(s.Subscriber.Close(), s.b.Close())
}

func newSuiteBroker(t *testing.T, mutate func(*kafka.Config)) *kafka.Broker {
	cfg := testConfig(t)
	if mutate != nil {
		mutate(&cfg)
	}
	b, err := kafka.New(context.Background(), cfg, testLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// TestWatermillUniversal runs Watermill's conformance suite twice.
//
// With the default configuration (3 partitions, prefetch 256) order holds
// per key only and several messages are in flight at once, so
// GuaranteedOrder is false: the suite's order tests publish without keys and
// TestNoAck expects one message in flight.
//
// With one partition and prefetch 1 the topic is totally ordered and a
// subscription holds one message at a time, so that run claims
// GuaranteedOrder and runs TestPublishSubscribeInOrder and TestNoAck too.
//
// Both runs: delivery is at-least-once (ExactlyOnceDelivery false), consumer
// groups are real Kafka groups, messages persist. TestReconnect is skipped by
// the suite: restarting the shared test broker would break other packages'
// tests running at the same time.
func TestWatermillUniversal(t *testing.T) {
	// Skip (or fail under CI) here, on this test's goroutine: the suite calls
	// GenerateTopicFunc from its subtests, where cleanupTopic's broker lookup
	// on this t would Goexit the wrong goroutine and panic the test binary.
	brokertest.KafkaBrokers(t)
	runs := []struct {
		name    string
		mutate  func(*kafka.Config)
		ordered bool
	}{
		{name: "default", mutate: nil},
		{name: "ordered", ordered: true, mutate: func(c *kafka.Config) {
			c.Partitions = 1
			c.Prefetch = 1
			// TestContinueAfterErrors nacks the head record 300 times in
			// a row; with one record in flight, the default backoff
			// (100ms doubling to 5s) alone would take over 20 minutes.
			c.NackBackoff = 10 * time.Millisecond
			c.MaxNackBackoff = 40 * time.Millisecond
		}},
	}
	for _, run := range runs {
		t.Run(run.name, func(t *testing.T) {
			runID := uniqueName(t, "wm")
			features := tests.Features{
				ConsumerGroups:      true,
				ExactlyOnceDelivery: false,
				GuaranteedOrder:     run.ordered,
				Persistent:          true,
				// A new group starts at the earliest offset, but a
				// subscriber of an existing group resumes from its
				// commits, so old, consumed messages are not re-read.
				NewSubscriberReceivesOldMessages: false,
				GenerateTopicFunc: func(tctx tests.TestContext) string {
					topic := runID + "." + string(tctx.TestID)
					cleanupTopic(t, topic)
					return topic
				},
			}
			tests.TestPubSub(t, features,
				func(t *testing.T) (message.Publisher, message.Subscriber) {
					b := newSuiteBroker(t, run.mutate)
					return b.Publisher(), brokerSubscriber{&topicGroupSubscriber{b: b, prefix: runID}, b}
				},
				func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
					b := newSuiteBroker(t, run.mutate)
					sub, err := b.Subscriber(runID+"."+group, broker.SubscriberOptions{})
					if err != nil {
						t.Fatal(err)
					}
					return b.Publisher(), brokerSubscriber{sub, b}
				},
			)
		})
	}
}
