package kafka_test

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-go/switchyard/adapters/kafka"
	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/pkg/broker"
)

// countingHandler counts log records whose message contains substr.
type countingHandler struct {
	slog.Handler
	substr string
	n      *atomic.Int64
}

func (h countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.substr) {
		h.n.Add(1)
	}
	return h.Handler.Handle(ctx, r)
}

func (h countingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return countingHandler{h.Handler.WithAttrs(as), h.substr, h.n}
}

func (h countingHandler) WithGroup(g string) slog.Handler {
	return countingHandler{h.Handler.WithGroup(g), h.substr, h.n}
}

// committedAt returns group's committed offset of topic's partition 0, or -1.
func committedAt(t *testing.T, adm *kadm.Client, group, topic string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	os, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return -1 // the broker may be coming back
	}
	if o, ok := os.Lookup(topic, 0); ok && o.Err == nil {
		return o.At
	}
	return -1
}

// Records acked but not yet committed when the broker goes away: franz-go
// ends the group session on the first failed heartbeat (the partitions are
// "lost"), and a lost partition is never committed by the old session, so
// after the broker is back those records are handed out again, at most once
// more each; acked again, they are committed although the partition then
// stays idle (no later ack triggers a commit). Nothing is lost.
func TestCommitCatchesUpAfterBrokerOutageOnAnIdlePartition(t *testing.T) {
	s := brokertest.StartKafka(t)
	cfg := testConfig(t)
	cfg.Brokers = strings.Split(s.KafkaBrokers(), ",")
	cfg.Partitions = 1
	cfg.CommitInterval = 3 * time.Second
	var commitFailures atomic.Int64
	var inner slog.Handler = slog.DiscardHandler
	if l := testLogger(t); l != nil {
		inner = l.Handler()
	}
	log := slog.New(countingHandler{inner, "commit offsets failed", &commitFailures})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := kafka.New(ctx, cfg, log)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)

	topic, group := uniqueName(t, "t"), uniqueName(t, "g")
	_, ch := subscribe(t, b, group, topic, broker.SubscriberOptions{})
	if err := b.WaitGroup(ctx, group, 1); err != nil {
		t.Fatal(err)
	}
	const n = 10
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = newMsg("k", strconv.Itoa(i))
	}
	if err := b.Publisher().Publish(topic, msgs...); err != nil {
		t.Fatal(err)
	}
	for range n {
		receive(t, ch, waitMsg).Ack()
	}
	if at := committedAt(t, adm, group, topic); at >= n {
		t.Fatalf("offset %d committed before commit_interval passed: the test cannot see a failed commit", at)
	}

	s.Stop()
	// Commits fall due while the broker is away: here time has to pass,
	// there is no condition to wait on (franz-go retries a commit inside
	// its own request timeout, and may not report it in that window).
	time.Sleep(2 * cfg.CommitInterval)
	s.Start()

	deadline := time.Now().Add(90 * time.Second)
	redelivered := map[string]int{}
	for committedAt(t, adm, group, topic) != n {
		if time.Now().After(deadline) {
			t.Fatalf("committed offset %d, want %d after the broker came back", committedAt(t, adm, group, topic), n)
		}
		select {
		case m := <-ch:
			redelivered[string(m.Payload)]++
			m.Ack()
		case <-time.After(200 * time.Millisecond):
		}
	}
	for p, c := range redelivered {
		if c > 1 {
			t.Errorf("message %s redelivered %d times after one outage", p, c)
		}
	}
	expectNone(t, ch, time.Second) // committed: not handed out again
	t.Logf("%d of %d acked records redelivered after the outage (not committed before it); %d commit failure(s) logged; offset %d committed on the idle partition",
		len(redelivered), n, commitFailures.Load(), n)
}

// Deleting a subscribed topic and creating it again is not fatal: the
// publisher and the subscription notice the new topic id (franz-go stalls
// on it until the topic is purged), subscribe anew and read the new topic
// from its first record, although the group's committed offset (the old
// topic's) would point past it.
func TestDeletedTopicIsNotFatal(t *testing.T) {
	b := newBroker(t, func(c *kafka.Config) { c.Partitions = 1 })
	topic, group := uniqueName(t, "t"), uniqueName(t, "g")
	cleanupTopic(t, topic, group)
	sub, ch := subscribe(t, b, group, topic, broker.SubscriberOptions{})
	waitStableGroup(t, group, 1)
	if err := b.Publisher().Publish(topic, newMsg("k", "before")); err != nil {
		t.Fatal(err)
	}
	receive(t, ch, waitMsg).Ack()

	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokertest.KafkaBrokers(t), ",")...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := adm.DeleteTopics(ctx, topic); err != nil {
		t.Fatalf("DeleteTopics: %v", err)
	}
	// Recreate it (the publisher's provisioning cache still believes it
	// exists, so create it here, as an operator would).
	deadline := time.Now().Add(60 * time.Second)
	for {
		r, err := adm.CreateTopic(ctx, 1, -1, nil, topic)
		if err == nil && r.Err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("recreate %s: %v %v", topic, err, r.Err)
		}
		time.Sleep(250 * time.Millisecond) // deletion is asynchronous
	}
	deadline = time.Now().Add(60 * time.Second)
	for {
		err := b.Publisher().Publish(topic, newMsg("k", "after"))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Publish after recreating: %v", err)
		}
	}
	m := receive(t, ch, 90*time.Second)
	m.Ack()
	if string(m.Payload) != "after" {
		t.Errorf("got %q, want the message published after the topic came back", m.Payload)
	}
	if f := sub.(broker.Failer).Failure(); f != nil {
		t.Errorf("Failure after a deleted topic: %v", f)
	}
}
