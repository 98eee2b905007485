package kafka_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/adapters/kafka"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/header"
)

// keyTracker records which member handles which key, and every handling.
type keyTracker struct {
	mu       sync.Mutex
	active   map[string]map[int]int // key -> member -> handlers running
	overlaps []string
	handled  map[string]int // payload -> times acked
	byMember map[int]int
	cond     chan struct{} // signalled after every ack
}

func newKeyTracker() *keyTracker {
	return &keyTracker{active: map[string]map[int]int{}, handled: map[string]int{}, byMember: map[int]int{}, cond: make(chan struct{}, 1)}
}

func (k *keyTracker) begin(member int, key string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for other, n := range k.active[key] {
		if other != member && n > 0 {
			k.overlaps = append(k.overlaps, fmt.Sprintf("key %s on members %d and %d", key, other, member))
		}
	}
	if k.active[key] == nil {
		k.active[key] = map[int]int{}
	}
	k.active[key][member]++
}

func (k *keyTracker) end(member int, key, payload string, acked bool) {
	k.mu.Lock()
	k.active[key][member]--
	if acked {
		k.handled[payload]++
		k.byMember[member]++
	}
	k.mu.Unlock()
	select {
	case k.cond <- struct{}{}:
	default:
	}
}

func (k *keyTracker) distinct() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.handled)
}

// waitDistinct waits until n distinct payloads were handled.
func (k *keyTracker) waitDistinct(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for k.distinct() < n {
		select {
		case <-k.cond:
		case <-deadline:
			t.Fatalf("%d of %d distinct messages handled within %s", k.distinct(), n, timeout)
		}
	}
}

// waitMember waits until member has acked at least n messages.
func (k *keyTracker) waitMember(t *testing.T, member, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		k.mu.Lock()
		got := k.byMember[member]
		k.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-k.cond:
		case <-deadline:
			t.Fatalf("member %d acked %d of %d messages within %s", member, got, n, timeout)
		}
	}
}

// member handles ch with workers slow handlers (work says how long a
// payload takes); a handler whose context ends stops and nacks, as the
// runtime's do.
func (k *keyTracker) member(wg *sync.WaitGroup, id int, ch <-chan *message.Message, workers int, work func(payload string) time.Duration) {
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range ch {
				key := m.Metadata.Get(header.Key)
				k.begin(id, key)
				t := time.NewTimer(work(string(m.Payload)))
				select {
				case <-t.C:
					k.end(id, key, string(m.Payload), true)
					m.Ack()
				case <-m.Context().Done():
					t.Stop()
					k.end(id, key, string(m.Payload), false)
					m.Nack()
				}
			}
		}()
	}
}

// A second member joins, then leaves, while the first member's handlers are
// slow and many messages are in flight: no key is ever handled on two
// members at once (the revoke drains in-flight work before the new owner
// starts), nothing is lost, and duplicates are counted.
func TestRebalanceWithMessagesInFlight(t *testing.T) {
	b := newBroker(t, func(c *kafka.Config) {
		c.Partitions = 6
		c.RebalanceTimeout = 10 * time.Second
	})
	topic, group := uniqueName(t, "t"), uniqueName(t, "g")
	cleanupTopic(t, topic, group)
	const (
		n       = 160
		keys    = 16
		workers = 4
	)
	// Every 23rd message (spread over the keys and partitions) takes far
	// longer than the new owner needs to start, so that a revoke that did
	// not wait for it would let both members handle its key.
	work := func(payload string) time.Duration {
		if i, _ := strconv.Atoi(payload); i%23 == 0 {
			return 4 * time.Second
		}
		return 50 * time.Millisecond
	}
	tr := newKeyTracker()
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait) // after the subscribers close their channels

	_, chA := subscribe(t, b, group, topic, broker.SubscriberOptions{Prefetch: 8})
	waitStableGroup(t, group, 1)
	tr.member(&wg, 1, chA, workers, work)

	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = newMsg("key-"+strconv.Itoa(i%keys), strconv.Itoa(i))
	}
	// The first half is in flight on A when B joins; the second half is
	// published once B owns partitions, so B has work however fast A drains
	// the first half (on a fast machine A used to finish everything before
	// the rebalance completed, and B was never exercised).
	if err := b.Publisher().Publish(topic, msgs[:n/2]...); err != nil {
		t.Fatalf("Publish: %v", err)
	}

	tr.waitDistinct(t, 20, 30*time.Second)
	subB, err := b.Subscriber(group, broker.SubscriberOptions{Prefetch: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = subB.Close() })
	ctxB, leaveB := context.WithCancel(context.Background())
	defer leaveB()
	chB, err := subB.Subscribe(ctxB, topic)
	if err != nil {
		t.Fatal(err)
	}
	tr.member(&wg, 2, chB, workers, work)
	joined := time.Now()
	waitStableGroup(t, group, 2)
	if err := b.Publisher().Publish(topic, msgs[n/2:]...); err != nil {
		t.Fatalf("Publish: %v", err)
	}

	tr.waitMember(t, 2, 10, 60*time.Second)
	leaveB() // B stops intake, finishes what it holds, commits and leaves
	left := time.Now()

	tr.waitDistinct(t, n, 60*time.Second)
	expectNone(t, chA, time.Second)

	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, o := range tr.overlaps {
		t.Error(o)
	}
	dups := 0
	for _, c := range tr.handled {
		dups += c - 1
	}
	t.Logf("handled %d messages, %d duplicates; member 1: %d, member 2: %d; B joined %s, left %s before the end",
		n, dups, tr.byMember[1], tr.byMember[2], time.Since(joined).Round(time.Millisecond), time.Since(left).Round(time.Millisecond))
}

// A handler that does not finish within the drain time (3/4 of
// rebalance_timeout) has its message's context cancelled, only for the
// partitions revoked: messages of partitions the member keeps go on. The
// rebalance then goes on and the new owner gets the record.
func TestRevokeCancelsOnlyRevokedPartitionsAfterDrain(t *testing.T) {
	b := newBroker(t, func(c *kafka.Config) {
		c.Partitions = 4
		c.RebalanceTimeout = 4 * time.Second // drain 3s
	})
	topic, group := uniqueName(t, "t"), uniqueName(t, "g")
	cleanupTopic(t, topic, group)
	_, chA := subscribe(t, b, group, topic, broker.SubscriberOptions{})
	waitStableGroup(t, group, 1)

	// One message per partition, held by A without an ack.
	held := map[string]*message.Message{} // partition -> message
	for i := 0; len(held) < 4 && i < 200; i++ {
		if err := b.Publisher().Publish(topic, newMsg("key-"+strconv.Itoa(i), strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
		m := receive(t, chA, waitMsg)
		p := m.Metadata.Get(kafka.MetadataPartition)
		if _, ok := held[p]; ok {
			m.Ack()
			continue
		}
		held[p] = m
	}
	if len(held) < 4 {
		t.Fatalf("messages on %d partitions, want 4", len(held))
	}

	_, chB := subscribe(t, b, group, topic, broker.SubscriberOptions{})
	joined := time.Now()
	first := receive(t, chB, 30*time.Second) // a record of a revoked partition
	waitedB := time.Since(joined)
	moved := first.Metadata.Get(kafka.MetadataPartition)
	hm := held[moved]
	if hm == nil || first.UUID != hm.UUID {
		t.Fatalf("B got %s on partition %s first, want the record A holds there", first.UUID, moved)
	}
	select {
	case <-hm.Context().Done():
	default:
		t.Fatalf("B got partition %s while A's handler there still had a live context", moved)
	}
	if waitedB < 2*time.Second {
		t.Errorf("B started on partition %s after %s, before A's drain time (3s) was up", moved, waitedB)
	}
	first.Ack()
	kept := 0
	for p, m := range held {
		if p == moved {
			continue
		}
		select {
		case <-m.Context().Done():
			// Revoked too: B owns it now.
		default:
			kept++
			m.Ack()
		}
	}
	if kept == 0 {
		t.Error("every held message's context was cancelled, want those of kept partitions live")
	}
	t.Logf("B got A's held record after %s; A kept %d partitions with live contexts", waitedB.Round(time.Millisecond), kept)
}
