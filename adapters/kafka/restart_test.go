package kafka_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/adapters/kafka"
	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/pkg/broker"
)

// A Kafka restart under a running subscription (on a private broker: the
// shared one is never restarted): the subscription resumes by itself,
// nothing published before or after is lost, and no fatal failure is
// reported. Messages in flight across the restart may come twice.
func TestBrokerRestartSubscriptionResumes(t *testing.T) {
	s := brokertest.StartKafka(t)
	cfg := testConfig(t)
	cfg.Brokers = strings.Split(s.KafkaBrokers(), ",")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := kafka.New(ctx, cfg, testLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	topic, group := uniqueName(t, "t"), uniqueName(t, "g")
	sub, ch := subscribe(t, b, group, topic, broker.SubscriberOptions{})
	if err := b.WaitGroup(ctx, group, 1); err != nil {
		t.Fatal(err)
	}

	seen := map[string]int{}
	publish := func(from, to int) {
		t.Helper()
		var msgs []*message.Message
		for i := from; i < to; i++ {
			msgs = append(msgs, newMsg("k"+strconv.Itoa(i%7), strconv.Itoa(i)))
		}
		deadline := time.Now().Add(60 * time.Second)
		for {
			err := b.Publisher().Publish(topic, msgs...)
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("Publish after the restart: %v", err)
			}
			t.Logf("Publish (retrying: the broker is coming back): %v", err)
		}
	}
	receiveUntil := func(n int, timeout time.Duration) {
		t.Helper()
		deadline := time.After(timeout)
		for len(seen) < n {
			select {
			case m, ok := <-ch:
				if !ok {
					t.Fatalf("channel closed after %d of %d; Failure: %v", len(seen), n, sub.(broker.Failer).Failure())
				}
				seen[string(m.Payload)]++
				m.Ack()
			case <-deadline:
				t.Fatalf("%d of %d messages within %s", len(seen), n, timeout)
			}
		}
	}

	publish(0, 50)
	receiveUntil(50, waitMsg)
	s.Restart()
	publish(50, 100)
	receiveUntil(100, 90*time.Second)

	dups := 0
	for _, c := range seen {
		dups += c - 1
	}
	t.Logf("100 messages across a broker restart, %d duplicates", dups)
	if f := sub.(broker.Failer).Failure(); f != nil {
		t.Errorf("Failure after a restart: %v", f)
	}
}
