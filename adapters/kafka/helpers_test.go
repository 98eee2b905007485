package kafka_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/switchyard-go/switchyard/adapters/kafka"
	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/pkg/broker"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var nameSeq atomic.Int64

// uniqueName returns a topic or group name unique to this test run.
func uniqueName(t testing.TB, prefix string) string {
	n := strings.NewReplacer("/", "_", " ", "_", "#", "_").Replace(t.Name())
	if len(n) > 60 {
		n = n[len(n)-60:]
	}
	return fmt.Sprintf("sytest.%s.%s.%d.%d", prefix, n, time.Now().UnixNano()%1e9, nameSeq.Add(1))
}

// testConfig is a Config for the test broker, with short timeouts.
func testConfig(t testing.TB) kafka.Config {
	return kafka.Config{
		Brokers:           strings.Split(brokertest.KafkaBrokers(t), ","),
		SessionTimeout:    6 * time.Second,
		RebalanceTimeout:  5 * time.Second,
		HeartbeatInterval: 500 * time.Millisecond,
		CommitInterval:    200 * time.Millisecond,
	}
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("SWITCHYARD_TEST_VERBOSE") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

// newBroker opens a Broker on the test Kafka and closes it when the test ends.
func newBroker(t testing.TB, mutate func(*kafka.Config)) *kafka.Broker {
	t.Helper()
	cfg := testConfig(t)
	if mutate != nil {
		mutate(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := kafka.New(ctx, cfg, testLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Broker.Close: %v", err)
		}
	})
	return b
}

// cleanupTopic deletes topic, its retry topics and the given groups (with
// their retry groups) when the
// test ends (after brokers registered later are closed).
func cleanupTopic(t testing.TB, topic string, groups ...string) {
	brokers := strings.Split(brokertest.KafkaBrokers(t), ",")
	t.Cleanup(func() {
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
		if err != nil {
			t.Logf("cleanup client: %v", err)
			return
		}
		defer cl.Close()
		adm := kadm.NewClient(cl)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if len(groups) > 0 {
			all := append([]string(nil), groups...)
			for _, g := range groups {
				all = append(all, g+".retry")
			}
			_, _ = adm.DeleteGroups(ctx, all...)
		}
		topics := []string{topic}
		// Retry topics are per group and tier: whatever exists.
		if all, err := adm.ListTopics(ctx); err == nil {
			for _, name := range all.Names() {
				if strings.HasPrefix(name, topic+".retry.") {
					topics = append(topics, name)
				}
			}
		}
		if _, err := adm.DeleteTopics(ctx, topics...); err != nil {
			t.Logf("delete topics: %v", err)
		}
	})
}

// subscribe subscribes group to topic and closes the subscriber at the end.
func subscribe(t testing.TB, b *kafka.Broker, group, topic string, opts broker.SubscriberOptions) (message.Subscriber, <-chan *message.Message) {
	t.Helper()
	sub, err := b.Subscriber(group, opts)
	if err != nil {
		t.Fatalf("Subscriber: %v", err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	ch, err := sub.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	return sub, ch
}

// receive reads one message or fails after timeout.
func receive(t testing.TB, ch <-chan *message.Message, timeout time.Duration) *message.Message {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatalf("channel closed")
		}
		return m
	case <-time.After(timeout):
		t.Fatalf("no message within %s", timeout)
	}
	return nil
}

// expectNone fails if a message arrives within d.
func expectNone(t testing.TB, ch <-chan *message.Message, d time.Duration) {
	t.Helper()
	select {
	case m, ok := <-ch:
		if ok {
			t.Fatalf("unexpected message %s (%v)", m.UUID, m.Metadata)
		}
	case <-time.After(d):
	}
}

// ackUntilClosed acks what arrives on ch until the subscription closes it,
// failing the test when what is still open after d.
func ackUntilClosed(t testing.TB, ch <-chan *message.Message, d time.Duration, what string) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case m, ok := <-ch:
			if !ok {
				return
			}
			m.Ack()
		case <-deadline:
			t.Fatalf("%s: channel still open after %s", what, d)
		}
	}
}
