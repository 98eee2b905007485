package amqp

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/header"
)

func subscribe(t *testing.T, b *Broker, group, topic string, opts broker.SubscriberOptions) (*Subscriber, <-chan *message.Message) {
	t.Helper()
	s, err := b.NewSubscriber(group, opts)
	if err != nil {
		t.Fatalf("Subscriber: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	ch, err := s.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	return s, ch
}

func TestPublishConfirmedThenConsumed(t *testing.T) {
	e := newEnv(t)
	topic := e.topic("g")
	b := e.broker(nil)
	s, msgs := subscribe(t, b, "g", topic, broker.SubscriberOptions{})

	sent := newMessages(10, "hello")
	for i, m := range sent {
		m.Metadata.Set(header.ID, m.UUID)
		m.Metadata.Set(header.Type, "orders.order_placed")
		m.Metadata.Set(header.ContentType, header.ContentTypeJSON)
		m.Metadata.Set("n", fmt.Sprint(i))
	}
	if err := b.Publisher().Publish(topic, sent...); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	got := receive(t, msgs, len(sent), 10*time.Second)
	for i, m := range got {
		want := sent[i] // one queue, one consumer, one publish call: in order
		if m.UUID != want.UUID || string(m.Payload) != "hello" {
			t.Errorf("message %d: got %s %q, want %s", i, m.UUID, m.Payload, want.UUID)
		}
		for _, k := range []string{header.ID, header.Type, header.ContentType, "n"} {
			if m.Metadata.Get(k) != want.Metadata.Get(k) {
				t.Errorf("message %d: metadata %s = %q, want %q", i, k, m.Metadata.Get(k), want.Metadata.Get(k))
			}
		}
		m.Ack()
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := e.depth(e.prefix + topic + ".g"); n != 0 {
		t.Errorf("queue holds %d messages after all were acked, want 0", n)
	}
}

func TestPublishUnroutableFails(t *testing.T) {
	e := newEnv(t)
	topic := e.topic()
	b := e.broker(nil)
	err := b.Publisher().Publish(topic, newMessages(1, "x")...)
	if !errors.Is(err, ErrUnroutable) || !strings.Contains(err.Error(), topic) {
		t.Fatalf("Publish to a topic without groups: err = %v, want ErrUnroutable naming the topic", err)
	}
	// A routable message in the same call still fails the call, and later
	// publishes on the same channels are not confused by the return.
	_, _ = subscribe(t, b, "g", topic, broker.SubscriberOptions{})
	e.track([]string{e.prefix + topic + ".g"}, nil)
	if err := b.Publisher().Publish(topic, newMessages(5, "x")...); err != nil {
		t.Fatalf("Publish after a group subscribed: %v", err)
	}
}

func TestFanOutToThreeGroups(t *testing.T) {
	e := newEnv(t)
	groups := []string{"a", "b", "c"}
	topic := e.topic(groups...)
	b := e.broker(nil)
	chans := map[string]<-chan *message.Message{}
	for _, g := range groups {
		_, chans[g] = subscribe(t, b, g, topic, broker.SubscriberOptions{})
	}
	sent := newMessages(20, "x")
	if err := b.Publisher().Publish(topic, sent...); err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		got := receive(t, chans[g], len(sent), 10*time.Second)
		seen := map[string]bool{}
		for _, m := range got {
			seen[m.UUID] = true
			m.Ack()
		}
		for _, m := range sent {
			if !seen[m.UUID] {
				t.Errorf("group %s did not receive %s", g, m.UUID)
			}
		}
		none(t, chans[g], 200*time.Millisecond)
	}
}

func TestCompetingConsumersReceiveEachMessageOnce(t *testing.T) {
	e := newEnv(t)
	topic := e.topic("workers")
	b := e.broker(nil)
	_, ch1 := subscribe(t, b, "workers", topic, broker.SubscriberOptions{Prefetch: 10})
	_, ch2 := subscribe(t, b, "workers", topic, broker.SubscriberOptions{Prefetch: 10})

	sent := newMessages(100, "x")
	if err := b.Publisher().Publish(topic, sent...); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	counts := map[string]int{}
	per := [2]int{}
	var wg sync.WaitGroup
	done := make(chan struct{})
	for i, ch := range []<-chan *message.Message{ch1, ch2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case m := <-ch:
					mu.Lock()
					counts[m.UUID]++
					per[i]++
					mu.Unlock()
					m.Ack()
				case <-done:
					return
				}
			}
		}()
	}
	waitFor(t, 10*time.Second, "every message received", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(counts) == len(sent)
	})
	// A duplicate would be a redelivery of a message still in the queue:
	// wait until the queue holds nothing, ready or unacknowledged.
	ctl := e.raw()
	waitFor(t, 10*time.Second, "the queue to be empty", func() bool {
		q, err := ctl.QueueDeclarePassive(e.prefix+topic+".workers", true, false, false, false, nil)
		return err == nil && q.Messages == 0 && unacked(t, e.prefix+topic+".workers") == 0
	})
	close(done)
	wg.Wait()
	for _, m := range sent {
		if counts[m.UUID] != 1 {
			t.Errorf("message %s received %d times, want 1", m.UUID, counts[m.UUID])
		}
	}
	if per[0] == 0 || per[1] == 0 {
		t.Errorf("one consumer received nothing: split %v", per)
	}
	t.Logf("split between consumers: %v", per)
}

func TestPrefetchHandsOutSeveralBeforeAck(t *testing.T) {
	e := newEnv(t)
	topic := e.topic("g")
	b := e.broker(nil)
	_, msgs := subscribe(t, b, "g", topic, broker.SubscriberOptions{Prefetch: 5})
	if err := b.Publisher().Publish(topic, newMessages(10, "x")...); err != nil {
		t.Fatal(err)
	}
	first := receive(t, msgs, 5, 10*time.Second) // none acked yet
	seen := map[string]bool{}
	for _, m := range first {
		seen[m.UUID] = true
	}
	if len(seen) != 5 {
		t.Fatalf("got %d distinct messages, want 5", len(seen))
	}
	// The window is full: acking frees room for the rest.
	for _, m := range first {
		m.Ack()
	}
	for _, m := range receive(t, msgs, 5, 10*time.Second) {
		if seen[m.UUID] {
			t.Errorf("message %s handed out twice", m.UUID)
		}
		m.Ack()
	}
}

func TestNackRedeliversAfterGrowingDelay(t *testing.T) {
	e := newEnv(t)
	topic := e.topic("g")
	const delay = 200 * time.Millisecond
	b := e.broker(func(c *Config) { c.NackDelay = delay; c.MaxNackDelay = time.Second })
	_, msgs := subscribe(t, b, "g", topic, broker.SubscriberOptions{})
	sent := newMessages(1, "retry me")
	if err := b.Publisher().Publish(topic, sent...); err != nil {
		t.Fatal(err)
	}
	m := receive(t, msgs, 1, 10*time.Second)[0]
	for attempt, want := range []time.Duration{delay, 2 * delay, 4 * delay} {
		start := time.Now()
		m.Nack()
		m = receive(t, msgs, 1, 10*time.Second)[0]
		if waited := time.Since(start); waited < want {
			t.Errorf("nack %d: redelivered after %s, want at least %s", attempt+1, waited, want)
		}
		if m.UUID != sent[0].UUID {
			t.Fatalf("redelivered %s, want %s", m.UUID, sent[0].UUID)
		}
	}
	m.Ack()
	none(t, msgs, 300*time.Millisecond)
}

func TestNackDoesNotBlockOtherMessages(t *testing.T) {
	e := newEnv(t)
	topic := e.topic("g")
	b := e.broker(func(c *Config) { c.NackDelay = 5 * time.Second })
	_, msgs := subscribe(t, b, "g", topic, broker.SubscriberOptions{})
	if err := b.Publisher().Publish(topic, newMessages(1, "first")...); err != nil {
		t.Fatal(err)
	}
	receive(t, msgs, 1, 10*time.Second)[0].Nack() // waits 5s before requeue
	if err := b.Publisher().Publish(topic, newMessages(1, "second")...); err != nil {
		t.Fatal(err)
	}
	m := receive(t, msgs, 1, 3*time.Second)[0]
	if string(m.Payload) != "second" {
		t.Fatalf("got %q while the first message waits for its nack delay, want %q", m.Payload, "second")
	}
	m.Ack()
}

func TestNonStringHeadersBecomeMetadata(t *testing.T) {
	e := newEnv(t)
	topic := e.topic("g")
	b := e.broker(nil)
	s, msgs := subscribe(t, b, "g", topic, broker.SubscriberOptions{})

	ts := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	raw := e.raw()
	err := raw.PublishWithContext(context.Background(), e.prefix+topic, "", false, false, amqp091.Publishing{
		ContentType: "application/json",
		Headers: amqp091.Table{
			"cloudEvents_type": "orders.order_placed",
			"ce_id":            "evt-1",
			"count":            int32(3),
			"big":              int64(1 << 40),
			"ok":               true,
			"at":               ts,
			"ratio":            1.5,
			"blob":             []byte("bytes"),
			"price":            amqp091.Decimal{Scale: 2, Value: 1234},
			"x-death": []any{amqp091.Table{
				"count": int64(2), "reason": "expired", "queue": "q", "time": ts,
				"routing-keys": []any{"a.b"},
			}},
		},
		Body: []byte(`{}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	m := receive(t, msgs, 1, 10*time.Second)[0]
	want := map[string]string{
		header.Type:        "orders.order_placed",
		header.ID:          "evt-1",
		header.ContentType: "application/json",
		"count":            "3",
		"big":              "1099511627776",
		"ok":               "true",
		"at":               "2026-11-30T08:00:00Z",
		"ratio":            "1.5",
		"blob":             "bytes",
		"price":            "12.34",
		"x-death":          `[{"count":2,"queue":"q","reason":"expired","routing-keys":["a.b"],"time":"2026-11-30T08:00:00Z"}]`,
	}
	for k, v := range want {
		if got := m.Metadata.Get(k); got != v {
			t.Errorf("metadata %s = %q, want %q", k, got, v)
		}
	}
	if m.UUID != "evt-1" {
		t.Errorf("UUID = %q, want the ce_id header %q when MessageId is empty", m.UUID, "evt-1")
	}
	m.Ack()
	none(t, msgs, 300*time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := e.depth(e.prefix + topic + ".g"); n != 0 {
		t.Errorf("queue holds %d messages after ack, want 0", n)
	}
}

func TestCancelStopsIntakeButAcksStillWork(t *testing.T) {
	e := newEnv(t)
	topic := e.topic("g")
	b := e.broker(nil)
	s, err := b.NewSubscriber("g", broker.SubscriberOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	msgs, err := s.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publisher().Publish(topic, newMessages(5, "x")...); err != nil {
		t.Fatal(err)
	}
	m := receive(t, msgs, 1, 10*time.Second)[0]
	cancel()
	for range msgs { // closes; prefetched messages not handed out are requeued
	}
	if m.Context().Err() != nil {
		t.Error("message context cancelled by the Subscribe context; want it alive until Ack or Close")
	}
	m.Ack()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := e.depth(e.prefix + topic + ".g"); n != 4 {
		t.Errorf("queue holds %d messages, want 4 (the acked one removed, the rest requeued)", n)
	}
}

func TestOrderedQueueIsSingleActiveConsumer(t *testing.T) {
	e := newEnv(t)
	topic := e.topic("ordered")
	b := e.broker(nil)
	s1, ch1 := subscribe(t, b, "ordered", topic, broker.SubscriberOptions{Ordered: true})
	_, ch2 := subscribe(t, b, "ordered", topic, broker.SubscriberOptions{Ordered: true})

	// The queue was declared with x-single-active-consumer=true: redeclaring
	// it without the argument is refused as inequivalent.
	raw := e.raw()
	queue := e.prefix + topic + ".ordered"
	if _, err := raw.QueueDeclare(queue, true, false, false, false, amqp091.Table{amqp091.QueueTypeArg: QueueTypeClassic, amqp091.SingleActiveConsumerArg: true}); err != nil {
		t.Fatalf("redeclare with x-single-active-consumer=true: %v", err)
	}
	if _, err := raw.QueueDeclare(queue, true, false, false, false, amqp091.Table{amqp091.QueueTypeArg: QueueTypeClassic}); err == nil {
		t.Fatal("redeclare without x-single-active-consumer succeeded; want PRECONDITION_FAILED")
	}

	sent := newMessages(30, "x")
	if err := b.Publisher().Publish(topic, sent...); err != nil {
		t.Fatal(err)
	}
	// Only the first consumer is active: it gets all, in order (one at a
	// time: ordered subscriptions have prefetch 1).
	for i := range sent {
		m := receive(t, ch1, 1, 10*time.Second)[0]
		if m.UUID != sent[i].UUID {
			t.Fatalf("message %d out of order", i)
		}
		m.Ack()
	}
	none(t, ch2, 200*time.Millisecond)
	// When it goes away, the second takes over.
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	more := newMessages(3, "y")
	if err := b.Publisher().Publish(topic, more...); err != nil {
		t.Fatal(err)
	}
	for i := range more {
		m := receive(t, ch2, 1, 10*time.Second)[0]
		if m.UUID != more[i].UUID {
			t.Fatalf("message %d out of order after failover", i)
		}
		m.Ack()
	}
}

// An ordered subscription holds one message at a time, so a nacked message
// comes back before any later one (with the old prefetch of 100 the later
// ones were already handed out).
func TestOrderedNackIsRetriedBeforeLaterMessages(t *testing.T) {
	for _, qt := range []string{QueueTypeClassic, QueueTypeQuorum} {
		t.Run(qt, func(t *testing.T) {
			e := newEnv(t)
			topic := e.topic("ordered")
			e.trackDeadLetter("ordered")
			b := e.broker(func(c *Config) { c.QueueType = qt; c.NackDelay = 10 * time.Millisecond })
			_, msgs := subscribe(t, b, "ordered", topic, broker.SubscriberOptions{Ordered: true})
			sent := newMessages(3, "x")
			if err := b.Publisher().Publish(topic, sent...); err != nil {
				t.Fatal(err)
			}
			first := receive(t, msgs, 1, 10*time.Second)[0]
			// Nothing else is handed out while the first is unsettled.
			none(t, msgs, 200*time.Millisecond)
			first.Nack()
			var order []string
			for range sent {
				m := receive(t, msgs, 1, 10*time.Second)[0]
				order = append(order, m.UUID)
				m.Ack()
			}
			want := []string{sent[0].UUID, sent[1].UUID, sent[2].UUID}
			if !slices.Equal(order, want) {
				t.Fatalf("after a nack of the first, got %v, want %v", order, want)
			}
		})
	}
}

func TestReconnect(t *testing.T) {
	haveRabbitmqctl(t)
	e := newEnv(t)
	topic := e.topic("g")
	// A long reconnect backoff keeps the broker "down" long enough to observe
	// even when rabbitmqctl (an Erlang VM start) is slow on a loaded machine.
	b := e.broker(func(c *Config) { c.ReconnectBackoff = 8 * time.Second; c.MaxReconnectBackoff = 8 * time.Second })
	_, msgs := subscribe(t, b, "g", topic, broker.SubscriberOptions{})
	if err := b.Publisher().Publish(topic, newMessages(1, "before")...); err != nil {
		t.Fatal(err)
	}
	receive(t, msgs, 1, 10*time.Second)[0].Ack()
	inflight := newMessages(1, "in flight")
	if err := b.Publisher().Publish(topic, inflight...); err != nil {
		t.Fatal(err)
	}
	held := receive(t, msgs, 1, 10*time.Second)[0] // not acked before the failure

	killConnections(t, e.name)
	// Down for ReconnectBackoff: Publish fails fast, naming the cause.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(5 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		start := time.Now()
		err = b.Publisher().Publish(topic, newMessages(1, "while down")...)
		if errors.Is(err, broker.ErrDisconnected) {
			if took := time.Since(start); took > time.Second {
				t.Errorf("Publish while disconnected took %s, want it to fail fast", took)
			}
			break
		}
		<-tick.C
	}
	if !errors.Is(err, broker.ErrDisconnected) || !strings.Contains(err.Error(), topic) {
		t.Fatalf("Publish while disconnected: err = %v, want broker.ErrDisconnected naming the topic", err)
	}
	// Its channel is gone: the Ack does nothing and RabbitMQ redelivers it.
	held.Ack()
	// Then it works again and the subscriber resumes.
	after := newMessages(1, "after")
	deadline = time.Now().Add(20 * time.Second)
	for {
		if err = b.Publisher().Publish(topic, after...); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Publish after reconnect: %v", err)
		}
		<-tick.C
	}
	var gotHeld, gotAfter bool
	for !gotHeld || !gotAfter {
		m := receive(t, msgs, 1, 20*time.Second)[0]
		m.Ack()
		gotHeld = gotHeld || m.UUID == inflight[0].UUID
		gotAfter = gotAfter || m.UUID == after[0].UUID
	}
}

func TestDelayReturnsOnlyToTargetGroupAfterTier(t *testing.T) {
	e := newEnv(t)
	topic := e.topic("retrying", "bystander")
	tiers := []time.Duration{time.Second, 3 * time.Second}
	b := e.broker(func(c *Config) { c.DelayTiers = tiers })
	e.trackTiers(tiers...)
	_, target := subscribe(t, b, "retrying", topic, broker.SubscriberOptions{})
	_, other := subscribe(t, b, "bystander", topic, broker.SubscriberOptions{})

	if err := b.Publisher().Publish(topic, newMessages(1, "original")...); err != nil {
		t.Fatal(err)
	}
	orig := receive(t, target, 1, 10*time.Second)[0]
	receive(t, other, 1, 10*time.Second)[0].Ack()

	start := time.Now()
	retry := orig.Copy()
	retry.Metadata.Set(header.Attempt, "1")
	if err := b.Delay(context.Background(), topic, "retrying", retry, 800*time.Millisecond); err != nil {
		t.Fatalf("Delay: %v", err)
	}
	orig.Ack()
	got := receive(t, target, 1, 10*time.Second)[0]
	if waited := time.Since(start); waited < time.Second {
		t.Errorf("delayed message back after %s, want at least the 1s tier", waited)
	}
	if got.UUID != orig.UUID || got.Metadata.Get(header.Attempt) != "1" {
		t.Errorf("got %s attempt %q, want %s attempt 1", got.UUID, got.Metadata.Get(header.Attempt), orig.UUID)
	}
	if got.Metadata.Get("x-death") == "" {
		t.Error("x-death metadata missing from a dead-lettered message")
	}
	// A message that already carries x-death (as metadata) can be delayed
	// again: the broker-owned headers are not sent back to RabbitMQ.
	if err := b.Delay(context.Background(), topic, "retrying", got, time.Second); err != nil {
		t.Fatalf("second Delay: %v", err)
	}
	got.Ack()
	again := receive(t, target, 1, 10*time.Second)[0]
	if again.UUID != orig.UUID || !strings.HasPrefix(again.Metadata.Get("x-death"), `[{"count":1,`) {
		t.Errorf("second delay: got %s with x-death %s, want %s with a fresh x-death", again.UUID, again.Metadata.Get("x-death"), orig.UUID)
	}
	again.Ack()
	none(t, other, 500*time.Millisecond)

	if err := b.Delay(context.Background(), topic, "nobody", retry, time.Second); err == nil {
		t.Error("Delay to a group that never subscribed succeeded; want an error (the message would be dropped)")
	}
}

// A delay longer than the largest tier waits in it as often as needed: it
// is never cut short. Break it: make Delay forget DelayUntilHeader and the
// message is back after one tier.
func TestDelayBeyondLargestTierIsChained(t *testing.T) {
	e := newEnv(t)
	topic := e.topic("g")
	tiers := []time.Duration{300 * time.Millisecond, time.Second}
	e.trackTiers(tiers...)
	b := e.broker(func(c *Config) { c.DelayTiers = tiers })
	_, msgs := subscribe(t, b, "g", topic, broker.SubscriberOptions{})
	msg := newMessages(1, "late")[0]
	start := time.Now()
	if err := b.Delay(context.Background(), topic, "g", msg, 2500*time.Millisecond); err != nil {
		t.Fatalf("Delay: %v", err)
	}
	if msg.Metadata.Get(DelayUntilHeader) != "" {
		t.Error("Delay changed the caller's message")
	}
	got := receive(t, msgs, 1, 15*time.Second)[0]
	waited := time.Since(start)
	got.Ack()
	if waited < 2500*time.Millisecond {
		t.Fatalf("delayed 2.5s with a largest tier of 1s: back after %s, want >= 2.5s", waited)
	}
	if got.UUID != msg.UUID || got.Metadata.Get(DelayUntilHeader) != "" || string(got.Payload) != "late" {
		t.Errorf("got %s (%q, due header %q), want %s without the due header", got.UUID, got.Payload,
			got.Metadata.Get(DelayUntilHeader), msg.UUID)
	}
	// A malformed due header is not a reason to hold a message: handed out.
	bad := newMessages(1, "bad")[0]
	bad.Metadata.Set(DelayUntilHeader, "soon")
	if err := b.Publisher().Publish(topic, bad); err != nil {
		t.Fatal(err)
	}
	if m := receive(t, msgs, 1, 10*time.Second)[0]; m.UUID != bad.UUID {
		t.Errorf("got %s, want the message with a malformed due header", m.UUID)
	} else {
		m.Ack()
	}
}

func TestPublishAfterCloseFails(t *testing.T) {
	e := newEnv(t)
	b := e.broker(nil)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Publisher().Publish("t", newMessages(1, "x")...); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("Publish after Close: %v, want ErrClosed", err)
	}
	if _, err := b.Subscriber("g", broker.SubscriberOptions{}); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("Subscriber after Close: %v, want ErrClosed", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestNewFailsClearlyWithoutHidingNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := New(ctx, Config{URL: "amqp://guest:s3cret@127.0.0.1:1/"}, nil)
	if err == nil {
		t.Fatal("New with nothing listening succeeded")
	}
	if strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("error %q: want the address and no password", err)
	}
}

func TestQuorumQueues(t *testing.T) {
	e := newEnv(t)
	topic := e.topic("q")
	e.trackDeadLetter("q")
	b := e.broker(func(c *Config) { c.QueueType = QueueTypeQuorum; c.NackDelay = 50 * time.Millisecond })
	_, msgs := subscribe(t, b, "q", topic, broker.SubscriberOptions{Ordered: true, Prefetch: 10})
	// It is a quorum queue: redeclaring it as classic is refused.
	if _, err := e.raw().QueueDeclare(e.prefix+topic+".q", true, false, false, false,
		amqp091.Table{amqp091.QueueTypeArg: QueueTypeClassic, amqp091.SingleActiveConsumerArg: true}); err == nil {
		t.Fatal("redeclaring the quorum queue as classic succeeded")
	}
	sent := newMessages(3, "x")
	if err := b.Publisher().Publish(topic, sent...); err != nil {
		t.Fatal(err)
	}
	got := receive(t, msgs, 3, 10*time.Second)
	got[0].Nack()
	got[1].Ack()
	got[2].Ack()
	again := receive(t, msgs, 1, 10*time.Second)[0]
	if again.UUID != sent[0].UUID || again.Metadata.Get("x-delivery-count") != "1" {
		t.Errorf("redelivered %s with x-delivery-count %q, want %s with 1", again.UUID, again.Metadata.Get("x-delivery-count"), sent[0].UUID)
	}
	again.Ack()
}

// A quorum group queue dead-letters a message handed back more than
// DeliveryLimit times to the group's dead-letter topic, whose queue has no
// limit: browsing it (which requeues) never loses what it holds. Break it:
// give the dead-letter queue the limit too and the browses burn the letter.
func TestQuorumDeliveryLimitDeadLettersAndBrowseBurnsNothing(t *testing.T) {
	e := newEnv(t)
	topic := e.topic("g")
	e.trackDeadLetter("g")
	b := e.broker(func(c *Config) {
		c.QueueType = QueueTypeQuorum
		c.DeliveryLimit = 2
		c.NackDelay = 10 * time.Millisecond
	})
	_, msgs := subscribe(t, b, "g", topic, broker.SubscriberOptions{})
	poison := newMessages(1, "poison")[0]
	if err := b.Publisher().Publish(topic, poison); err != nil {
		t.Fatal(err)
	}
	dlq := e.prefix + "g" + DeadLetterTopicSuffix + "." + broker.DeadLetterGroup
	deliveries := 0
	waitFor(t, 20*time.Second, "the poison message in "+dlq, func() bool {
		select {
		case m := <-msgs:
			deliveries++
			m.Nack()
		default:
		}
		return e.depth(dlq) == 1
	})
	if deliveries != 3 {
		t.Errorf("delivered %d times before dead-lettering with delivery_limit 2, want 3", deliveries)
	}
	dlTopic := "g" + DeadLetterTopicSuffix
	for i := range 30 {
		var got []*message.Message
		if err := b.Browse(context.Background(), dlTopic, broker.DeadLetterGroup, func(m *message.Message) bool {
			got = append(got, m)
			return true
		}); err != nil {
			t.Fatalf("Browse %d: %v", i, err)
		}
		if len(got) != 1 || got[0].UUID != poison.UUID {
			t.Fatalf("browse %d of the dead-letter queue: %d messages, want the poison message", i, len(got))
		}
		if i == 0 && !strings.Contains(got[0].Metadata.Get("x-death"), "delivery_limit") {
			t.Errorf("x-death %q, want reason delivery_limit", got[0].Metadata.Get("x-death"))
		}
	}
}

// An abandoned group's queue expires (queue_expires): it no longer
// collects messages nobody reads. Break it: drop x-expires and the queue
// stays.
func TestAbandonedGroupQueueExpires(t *testing.T) {
	e := newEnv(t)
	topic := e.topic("gone")
	haveRabbitmqctl(t)
	b := e.broker(func(c *Config) { c.QueueExpires = time.Second })
	s, ch := subscribe(t, b, "gone", topic, broker.SubscriberOptions{})
	if err := b.Publisher().Publish(topic, newMessages(1, "x")...); err != nil {
		t.Fatal(err)
	}
	receive(t, ch, 1, 10*time.Second)[0].Ack()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	queue := e.prefix + topic + ".gone"
	// Watched with rabbitmqctl: a passive declaration would renew the
	// queue's lease.
	waitFor(t, 15*time.Second, "queue "+queue+" to expire", func() bool {
		out, err := exec.Command(brokertest.Rabbitmqctl(), "list_queues", "-q", "--no-table-headers", "name").CombinedOutput()
		if err != nil {
			t.Fatalf("rabbitmqctl list_queues: %v: %s", err, out)
		}
		return !slices.Contains(strings.Fields(string(out)), queue)
	})
}

// fullQueue binds to topic a queue that holds one message and refuses
// more, so that RabbitMQ nacks what is published beyond it; it returns the
// queue's name.
func fullQueue(t *testing.T, e *env, topic string) string {
	t.Helper()
	raw := e.raw()
	queue, exchange := e.prefix+topic+".full", e.prefix+topic
	if err := raw.ExchangeDeclare(exchange, amqp091.ExchangeFanout, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.QueueDeclare(queue, true, false, false, false, amqp091.Table{"x-max-length": int32(1), "x-overflow": "reject-publish"}); err != nil {
		t.Fatal(err)
	}
	if err := raw.QueueBind(queue, "", exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	return queue
}

func TestPublishNackedFails(t *testing.T) {
	e := newEnv(t)
	topic := e.topic("full")
	b := e.broker(nil)
	fullQueue(t, e, topic)
	err := b.Publisher().Publish(topic, newMessages(3, "x")...)
	if !errors.Is(err, ErrNacked) || !strings.Contains(err.Error(), topic) {
		t.Fatalf("Publish beyond the queue's limit: err = %v, want ErrNacked naming the topic", err)
	}
}

// TestNackRetiresTheChannel: a channel that got a nack is closed and the
// pool opens a fresh one, since on a cluster a channel may keep nacking
// (RabbitMQ 3.10 did after a quorum queue's leader moved; docs/clusters.md).
func TestNackRetiresTheChannel(t *testing.T) {
	e := newEnv(t)
	topic := e.topic("full")
	b := e.broker(func(c *Config) { c.PublishChannels = 1 })
	raw, queue := e.raw(), fullQueue(t, e, topic)
	if err := b.Publisher().Publish(topic, newMessages(1, "fits")...); err != nil {
		t.Fatal(err)
	}
	pc := <-b.pub.pool // the pool's one channel, that took the first message
	b.pub.pool <- pc
	if err := b.Publisher().Publish(topic, newMessages(1, "nacked")...); !errors.Is(err, ErrNacked) {
		t.Fatalf("Publish beyond the queue's limit: %v, want ErrNacked", err)
	}
	waitFor(t, 10*time.Second, "the nacked channel closed", pc.ch.IsClosed)
	if _, err := raw.QueuePurge(queue, false); err != nil {
		t.Fatal(err)
	}
	if err := b.Publisher().Publish(topic, newMessages(1, "after")...); err != nil {
		t.Fatalf("Publish on a fresh channel: %v", err)
	}
}

func TestBrowseLeavesMessagesInPlace(t *testing.T) {
	e := newEnv(t)
	topic := e.topic("dead")
	b := e.broker(nil)
	s, err := b.NewSubscriber("dead", broker.SubscriberOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := b.Provision(context.Background(), topic, "dead"); err != nil {
		t.Fatal(err)
	}
	sent := newMessages(5, "x")
	sent[0].Metadata.Set(header.DeadLetterReason, "handler_error")
	if err := b.Publisher().Publish(topic, sent...); err != nil {
		t.Fatal(err)
	}
	browse := func(group string, limit int) ([]*message.Message, error) {
		var out []*message.Message
		err := b.Browse(context.Background(), topic, group, func(m *message.Message) bool {
			out = append(out, m)
			return len(out) < limit
		})
		return out, err
	}
	got, err := browse("dead", 3)
	if err != nil {
		t.Fatalf("Browse: %v", err)
	}
	if len(got) != 3 || got[0].UUID != sent[0].UUID || got[2].UUID != sent[2].UUID ||
		got[0].Metadata.Get(header.DeadLetterReason) != "handler_error" {
		t.Fatalf("Browse returned %d messages, want the first 3 with their metadata", len(got))
	}
	if all, err := browse("dead", 100); err != nil || len(all) != 5 {
		t.Fatalf("Browse beyond the queue: %d messages, %v; want 5", len(all), err)
	}
	msgs, err := s.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range receive(t, msgs, 5, 10*time.Second) {
		if m.UUID != sent[i].UUID {
			t.Errorf("after browsing, message %d is %s, want %s (order kept)", i, m.UUID, sent[i].UUID)
		}
		m.Ack()
	}
	if _, err := browse("nobody", 1); err == nil {
		t.Error("Browse of a queue that does not exist succeeded")
	}
}

// TestPublishFailsFastWhileBlocked is TestPrivateNode's "publish fails
// fast while blocked": a real memory alarm needs a node of its own.

// When the channel dies with confirms pending, Publish returns an error for
// the whole call, never a silent success: the first message goes to an
// exchange that does not exist, RabbitMQ closes the channel (404), and the
// messages sent behind it are never confirmed. Break it: make failAll
// resolve with nil and Publish returns nil.
func TestPublishFailsWhenChannelDiesWithConfirmsPending(t *testing.T) {
	e := newEnv(t)
	topic := e.topic("g")
	b := e.broker(nil)
	subscribe(t, b, "g", topic, broker.SubscriberOptions{})
	// Few enough to be all sent before the channel.close arrives: the
	// error comes from the confirms that never came.
	msgs := newMessages(3, "x")
	err := b.pub.publish(context.Background(), nil, topic, e.prefix+"no-such-exchange-"+randomSuffix(), "", false, msgs)
	var aerr *amqp091.Error
	if err == nil || !strings.Contains(err.Error(), topic) || !errors.As(err, &aerr) || aerr.Code != amqp091.NotFound {
		t.Fatalf("publish on a channel that dies with confirms pending: %v, want an error naming the topic with the 404", err)
	}
	// The pool replaces the dead channel: the next Publish works.
	if err := b.Publisher().Publish(topic, newMessages(1, "y")...); err != nil {
		t.Fatalf("Publish after the channel died: %v", err)
	}
}

func TestSubscriberRedeclaresDeletedQueue(t *testing.T) {
	e := newEnv(t)
	topic := e.topic("g")
	b := e.broker(func(c *Config) { c.ReconnectBackoff = 50 * time.Millisecond })
	_, msgs := subscribe(t, b, "g", topic, broker.SubscriberOptions{})
	if _, err := e.raw().QueueDelete(e.prefix+topic+".g", false, false, false); err != nil {
		t.Fatal(err)
	}
	// RabbitMQ cancels the consumer; the subscription declares the queue
	// again and resumes. Until then a publish has no route.
	sent := newMessages(1, "x")
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := b.Publisher().Publish(topic, sent...)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrUnroutable) || time.Now().After(deadline) {
			t.Fatalf("Publish after the queue was deleted: %v", err)
		}
		<-tick.C
	}
	if m := receive(t, msgs, 1, 10*time.Second)[0]; m.UUID != sent[0].UUID {
		t.Fatalf("got %s, want %s", m.UUID, sent[0].UUID)
	} else {
		m.Ack()
	}
}

func TestPublishRedeclaresDeletedExchange(t *testing.T) {
	e := newEnv(t)
	topic := e.topic("g")
	b := e.broker(nil)
	subscribe(t, b, "g", topic, broker.SubscriberOptions{})
	if err := b.Publisher().Publish(topic, newMessages(1, "x")...); err != nil {
		t.Fatal(err)
	}
	if err := e.raw().ExchangeDelete(e.prefix+topic, false, false); err != nil {
		t.Fatal(err)
	}
	// The first publish finds no exchange (NOT_FOUND); the next declares it
	// again, and then only the binding that went with it is missing.
	var aerr *amqp091.Error
	if err := b.Publisher().Publish(topic, newMessages(1, "x")...); !errors.As(err, &aerr) || aerr.Code != amqp091.NotFound {
		t.Fatalf("first Publish after the exchange was deleted: %v, want NOT_FOUND", err)
	}
	if err := b.Publisher().Publish(topic, newMessages(1, "x")...); !errors.Is(err, ErrUnroutable) {
		t.Fatalf("second Publish: %v, want ErrUnroutable (exchange declared again, binding gone)", err)
	}
}
