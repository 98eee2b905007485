package kafka_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-go/switchyard/adapters/kafka"
	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/pkg/broker"
)

// Static membership: a subscription joins with an instance id derived from
// Config.InstanceID. A second process started with the same id (a
// misconfigured deploy) fences the first, which must not retry for ever:
// its channel closes and Failure says why, for the runtime to report.
func TestFencedStaticMemberEndsWithFailure(t *testing.T) {
	instance := strings.ReplaceAll(uniqueName(t, "pod"), "/", "_")
	first := newBroker(t, func(c *kafka.Config) { c.InstanceID = instance })
	topic, group := uniqueName(t, "t"), uniqueName(t, "g")
	cleanupTopic(t, topic, group)

	sub1, ch1 := subscribe(t, first, group, topic, broker.SubscriberOptions{})
	waitStableGroup(t, group, 1)
	want := instance + "." + group + "." + topic + ".0"
	if got := memberInstanceIDs(t, group); len(got) != 1 || got[0] != want {
		t.Fatalf("group members' instance ids %q, want [%q]", got, want)
	}
	if f := sub1.(broker.Failer).Failure(); f != nil {
		t.Fatalf("Failure while running: %v", f)
	}

	second := newBroker(t, func(c *kafka.Config) { c.InstanceID = instance })
	subscribe(t, second, group, topic, broker.SubscriberOptions{})

	ackUntilClosed(t, ch1, 30*time.Second, "the fenced subscription")
	f := sub1.(broker.Failer).Failure()
	if !errors.Is(f, kerr.FencedInstanceID) {
		t.Fatalf("Failure = %v, want FENCED_INSTANCE_ID", f)
	}
	if !strings.Contains(f.Error(), group) || !strings.Contains(f.Error(), topic) {
		t.Errorf("Failure %q does not name the group and topic", f)
	}
}

// A subscription reopened in the same process takes its static member's id
// back, so it replaces the closed member (which did not leave the group)
// instead of joining beside it while the closed one holds its partitions
// until the session times out.
func TestReopenedSubscriptionReusesItsInstanceID(t *testing.T) {
	instance := uniqueName(t, "pod")
	b := newBroker(t, func(c *kafka.Config) { c.InstanceID = instance })
	topic, group := uniqueName(t, "t"), uniqueName(t, "g")
	cleanupTopic(t, topic, group)

	sub, _ := subscribe(t, b, group, topic, broker.SubscriberOptions{})
	waitStableGroup(t, group, 1)
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	_, ch := subscribe(t, b, group, topic, broker.SubscriberOptions{})
	waitStableGroup(t, group, 1)
	want := instance + "." + group + "." + topic + ".0"
	if got := memberInstanceIDs(t, group); len(got) != 1 || got[0] != want {
		t.Fatalf("members after reopening %q, want [%q]", got, want)
	}
	msg := newMsg("k", "after reopen")
	if err := b.Publisher().Publish(topic, msg); err != nil {
		t.Fatal(err)
	}
	if m := receive(t, ch, waitMsg); m.UUID != msg.UUID {
		t.Fatalf("got %q", m.Payload)
	} else {
		m.Ack()
	}
}

func memberInstanceIDs(t *testing.T, group string) []string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokertest.KafkaBrokers(t), ",")...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ds, err := kadm.NewClient(cl).DescribeGroups(ctx, group)
	if err != nil {
		t.Fatalf("DescribeGroups: %v", err)
	}
	var ids []string
	for _, m := range ds[group].Members {
		if m.InstanceID != nil {
			ids = append(ids, *m.InstanceID)
		}
	}
	return ids
}
