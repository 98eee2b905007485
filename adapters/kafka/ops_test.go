package kafka_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-go/switchyard/adapters/kafka"
	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/pkg/broker"
)

// browseAll returns the payloads Browse shows, in order.
func browseAll(t *testing.T, b *kafka.Broker, topic, group string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got []string
	err := b.Browse(ctx, topic, group, func(m *message.Message) bool {
		got = append(got, string(m.Payload))
		return true
	})
	if err != nil {
		t.Fatalf("Browse: %v", err)
	}
	return got
}

// committed returns group's committed offsets on topic.
func committed(t *testing.T, topic, group string) map[int32]int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokertest.KafkaBrokers(t), ",")...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("FetchOffsets: %v", err)
	}
	out := map[int32]int64{}
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.At >= 0 {
			out[o.Partition] = o.At
		}
	})
	return out
}

func publishPayloads(t *testing.T, b *kafka.Broker, topic, key string, payloads ...string) {
	t.Helper()
	for _, p := range payloads {
		if err := b.Publisher().Publish(topic, newMsg(key, p)); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
}

func TestProvisionCreatesTopicIdempotently(t *testing.T) {
	b := newBroker(t, nil)
	topic, group := uniqueName(t, "t"), uniqueName(t, "g")
	cleanupTopic(t, topic, group)
	ctx := context.Background()

	for range 2 {
		if err := b.Provision(ctx, topic, group); err != nil {
			t.Fatalf("Provision: %v", err)
		}
	}
	if got := browseAll(t, b, topic, group); len(got) != 0 {
		t.Fatalf("Browse of a provisioned empty topic = %q, want nothing", got)
	}
	// With initial_offset earliest nothing is committed: the group sees
	// everything in the topic.
	if c := committed(t, topic, group); len(c) != 0 {
		t.Fatalf("committed offsets after Provision = %v, want none", c)
	}
	publishPayloads(t, b, topic, "k", "a", "b")
	if err := b.Provision(ctx, topic, group); err != nil {
		t.Fatalf("Provision again: %v", err)
	}
	if got := browseAll(t, b, topic, group); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("Browse = %q, want [a b]", got)
	}
	if err := b.Provision(ctx, "", group); err == nil {
		t.Fatal("Provision with empty topic: no error")
	}
}

func TestProvisionLatestKeepsWhatIsPublishedFromNowOn(t *testing.T) {
	b := newBroker(t, func(c *kafka.Config) { c.InitialOffset = kafka.OffsetLatest })
	topic, group := uniqueName(t, "t"), uniqueName(t, "g")
	cleanupTopic(t, topic, group)
	ctx := context.Background()

	publishPayloads(t, b, topic, "k", "before")
	if err := b.Provision(ctx, topic, group); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	publishPayloads(t, b, topic, "k", "after1")
	if err := b.Provision(ctx, topic, group); err != nil { // must not move the offsets
		t.Fatalf("Provision again: %v", err)
	}
	publishPayloads(t, b, topic, "k", "after2")
	if got := browseAll(t, b, topic, group); !slices.Equal(got, []string{"after1", "after2"}) {
		t.Fatalf("Browse = %q, want [after1 after2]", got)
	}
	_, ch := subscribe(t, b, group, topic, broker.SubscriberOptions{})
	for _, want := range []string{"after1", "after2"} {
		m := receive(t, ch, waitMsg)
		if string(m.Payload) != want {
			t.Fatalf("received %q, want %q", m.Payload, want)
		}
		m.Ack()
	}
}

func TestBrowseShowsWhatTheGroupHasNotConsumed(t *testing.T) {
	b := newBroker(t, nil)
	topic, group := uniqueName(t, "t"), uniqueName(t, "g")
	cleanupTopic(t, topic, group)
	if err := b.Provision(context.Background(), topic, group); err != nil {
		t.Fatalf("Provision: %v", err)
	}

	// Several keys (so several partitions), published one after another:
	// Browse merges partitions by record timestamp.
	var want []string
	for i := range 9 {
		p := strconv.Itoa(i)
		publishPayloads(t, b, topic, "key-"+strconv.Itoa(i%3), p)
		want = append(want, p)
		time.Sleep(3 * time.Millisecond) // distinct millisecond timestamps
	}
	if got := browseAll(t, b, topic, group); !slices.Equal(got, want) {
		t.Fatalf("Browse = %q, want %q", got, want)
	}
	// Browsing consumed nothing.
	if got := browseAll(t, b, topic, group); !slices.Equal(got, want) {
		t.Fatalf("second Browse = %q, want %q", got, want)
	}
	if c := committed(t, topic, group); len(c) != 0 {
		t.Fatalf("committed offsets after Browse = %v, want none", c)
	}

	// fn returning false stops.
	var n int
	if err := b.Browse(context.Background(), topic, group, func(*message.Message) bool { n++; return n < 2 }); err != nil {
		t.Fatalf("Browse: %v", err)
	}
	if n != 2 {
		t.Fatalf("fn called %d times after returning false, want 2", n)
	}

	// The group acks 0 to 4 and not the later ones; closing the subscriber
	// commits.
	sub, ch := subscribe(t, b, group, topic, broker.SubscriberOptions{})
	for range want {
		m := receive(t, ch, waitMsg)
		if n, _ := strconv.Atoi(string(m.Payload)); n < 5 {
			m.Ack()
		}
	}
	if err := sub.Close(); err != nil { // commits every ack made before it
		t.Fatalf("Close: %v", err)
	}
	if got, want := browseAll(t, b, topic, group), []string{"5", "6", "7", "8"}; !slices.Equal(got, want) {
		t.Fatalf("Browse after acks = %q, want %q", got, want)
	}
	// Another group has consumed nothing.
	if got := browseAll(t, b, topic, group+"-other"); !slices.Equal(got, want) {
		t.Fatalf("Browse of another group = %q, want %q", got, want)
	}
}

func TestBrowseMetadata(t *testing.T) {
	b := newBroker(t, nil)
	topic, group := uniqueName(t, "t"), uniqueName(t, "g")
	cleanupTopic(t, topic, group)
	msg := newMsg("k", "x")
	msg.Metadata.Set("ce_type", "order.placed")
	if err := b.Publisher().Publish(topic, msg); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	var got *message.Message
	if err := b.Browse(context.Background(), topic, group, func(m *message.Message) bool { got = m; return true }); err != nil {
		t.Fatalf("Browse: %v", err)
	}
	if got == nil || got.UUID != msg.UUID || got.Metadata.Get("ce_type") != "order.placed" ||
		got.Metadata.Get(kafka.MetadataTopic) != topic || got.Metadata.Get(kafka.MetadataOffset) != "0" {
		t.Fatalf("Browse gave %+v, want the published message with its metadata", got)
	}
}

func TestBrowseMissingTopic(t *testing.T) {
	b := newBroker(t, nil)
	topic := uniqueName(t, "missing")
	cleanupTopic(t, topic)
	called := false
	if err := b.Browse(context.Background(), topic, "g", func(*message.Message) bool { called = true; return true }); err != nil {
		t.Fatalf("Browse of a missing topic: %v", err)
	}
	if called {
		t.Fatal("fn called for a missing topic")
	}
}
