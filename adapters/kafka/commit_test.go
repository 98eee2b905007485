package kafka_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

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

// Enabled is true at every level: slog asks it before Handle, and the
// records counted must reach Handle also when the inner handler (the
// discarding one) wants none.
func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.substr) {
		h.n.Add(1)
	}
	if !h.Handler.Enabled(ctx, r.Level) {
		return nil
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
	publishAndAck(t, b, ch, topic, n)
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

// groupMembers returns the member ids of group, or nil if it cannot be
// described.
func groupMembers(t *testing.T, adm *kadm.Client, group string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ds, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return nil
	}
	var ids []string
	for _, m := range ds[group].Members {
		ids = append(ids, m.MemberID)
	}
	return ids
}

// netPartition cuts the clients dialed through it off the network while
// cut is set: writes fail with a connection reset and dials time out, so no
// request reaches the broker, and franz-go retries them (within their retry
// timeout) as it would a real partition. A stopped broker is no substitute:
// franz-go does not retry a refused dial to a single broker, so the first
// heartbeat ends the session; nor is a paused one (SIGSTOP): it runs the
// requests it buffered once resumed, a "failed" commit included.
type netPartition struct{ cut atomic.Bool }

func (p *netPartition) dial(ctx context.Context, network, host string) (net.Conn, error) {
	if p.cut.Load() {
		return nil, &net.OpError{Op: "dial", Net: network, Err: os.NewSyscallError("connect", syscall.ETIMEDOUT)}
	}
	c, err := (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, network, host)
	if err != nil {
		return nil, err
	}
	return &partitionedConn{Conn: c, p: p}, nil
}

type partitionedConn struct {
	net.Conn
	p *netPartition
}

func (c *partitionedConn) Write(b []byte) (int, error) {
	if c.p.cut.Load() {
		return 0, &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", syscall.ECONNRESET)}
	}
	return c.Conn.Write(b)
}

// A commit that fails while the member keeps its partitions is retried
// although nothing more is acked on the partition: the marked offset stays
// ahead of the committed one, and franz-go's autocommit of marks sends it
// again every commit_interval. The Broker's clients are cut off the network
// for a few seconds (netPartition): heartbeats are retried within the
// session timeout, which outlasts the cut, while OffsetCommit gives up
// after a second (its retry timeout, set through a test seam), so the
// commit itself fails, not the session, and no record is handed out again.
func TestFailedCommitIsRetriedOnAnIdlePartition(t *testing.T) {
	var part netPartition
	offsetCommit := (*kmsg.OffsetCommitRequest)(nil).Key()
	var commitFailures atomic.Int64
	var inner slog.Handler = slog.DiscardHandler
	if l := testLogger(t); l != nil {
		inner = l.Handler()
	}
	cfg := testConfig(t)
	cfg.Partitions = 1
	cfg.CommitInterval = 2 * time.Second
	cfg.SessionTimeout = 45 * time.Second
	cfg.HeartbeatInterval = time.Second
	kafka.WithClientOpts(&cfg,
		kgo.Dialer(part.dial),
		kgo.RetryTimeoutFn(func(key int16) time.Duration {
			switch key {
			case offsetCommit:
				return time.Second
			case (*kmsg.JoinGroupRequest)(nil).Key(), (*kmsg.SyncGroupRequest)(nil).Key(), (*kmsg.HeartbeatRequest)(nil).Key():
				return cfg.SessionTimeout // franz-go's default
			}
			return 30 * time.Second // franz-go's default
		}))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := kafka.New(ctx, cfg, slog.New(countingHandler{inner, "commit offsets failed", &commitFailures}))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl) // not cut off

	topic, group := uniqueName(t, "t"), uniqueName(t, "g")
	cleanupTopic(t, topic, group)
	_, ch := subscribe(t, b, group, topic, broker.SubscriberOptions{})
	if err := b.WaitGroup(ctx, group, 1); err != nil {
		t.Fatal(err)
	}
	members := groupMembers(t, adm, group)
	const n = 10
	publishAndAck(t, b, ch, topic, n)

	part.cut.Store(true)
	cutAt := time.Now()
	for commitFailures.Load() == 0 {
		if time.Since(cutAt) > 20*time.Second {
			t.Fatal("no commit failed while cut off: the test cannot tell")
		}
		select {
		case m := <-ch:
			t.Fatalf("message %s handed out again while cut off", m.Payload)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if at := committedAt(t, adm, group, topic); at >= n {
		t.Fatalf("offset %d committed before the cut: the test cannot see a failed commit", at)
	}
	part.cut.Store(false)
	back := time.Now()

	deadline := back.Add(30 * time.Second)
	for committedAt(t, adm, group, topic) != n {
		if time.Now().After(deadline) {
			t.Fatalf("committed offset %d 30s after the network came back, want %d (%d commit failures logged)",
				committedAt(t, adm, group, topic), n, commitFailures.Load())
		}
		select {
		case m := <-ch:
			t.Fatalf("message %s handed out again: the session ended, not just the commit", m.Payload)
		case <-time.After(200 * time.Millisecond):
		}
	}
	if after := groupMembers(t, adm, group); len(members) != 1 || len(after) != 1 || after[0] != members[0] {
		t.Errorf("group members %v before the cut, %v after: the member did not keep its session", members, after)
	}
	expectNone(t, ch, time.Second)
	t.Logf("cut off %s; offset %d committed %s after the network came back; %d failed commit(s) logged; no redelivery",
		back.Sub(cutAt).Round(100*time.Millisecond), n, time.Since(back).Round(100*time.Millisecond), commitFailures.Load())
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

// publishAndAck publishes n messages of one key to topic and acks each as
// it arrives on ch.
func publishAndAck(t *testing.T, b *kafka.Broker, ch <-chan *message.Message, topic string, n int) {
	t.Helper()
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
}
