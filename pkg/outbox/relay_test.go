package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.uber.org/goleak"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/outbox"
	"github.com/switchyard-go/switchyard/pkg/retry"
	"github.com/switchyard-go/switchyard/pkg/service"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder is a publisher that remembers what it was given and can fail.
type recorder struct {
	mu   sync.Mutex
	got  []*message.Message
	fail func(topic string, m *message.Message) error
	slow time.Duration
}

func (r *recorder) Publish(topic string, msgs ...*message.Message) error {
	if r.slow > 0 {
		time.Sleep(r.slow)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range msgs {
		if r.fail != nil {
			if err := r.fail(topic, m); err != nil {
				return err
			}
		}
	}
	r.got = append(r.got, msgs...)
	return nil
}

func (r *recorder) Close() error { return nil }

func (r *recorder) uuids() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.got))
	for i, m := range r.got {
		out[i] = m.UUID
	}
	return out
}

func msg(id, key string) outbox.Message {
	m := message.NewMessage(id, []byte(`{"id":"`+id+`"}`))
	if key != "" {
		m.Metadata.Set(header.Key, key)
	}
	return outbox.Message{Topic: "orders", Message: m}
}

func noBackoff() retry.Policy {
	return retry.Policy{InitialInterval: time.Millisecond, MaxInterval: 2 * time.Millisecond, Jitter: -1}
}

func TestFlushPublishesInOrderOnce(t *testing.T) {
	s := outbox.NewMemoryStore()
	var want []string
	for i := range 250 {
		id := fmt.Sprintf("m-%03d", i)
		want = append(want, id)
		if err := s.Add(msg(id, fmt.Sprintf("k%d", i%3))); err != nil {
			t.Fatal(err)
		}
	}
	pub := &recorder{}
	r := &outbox.Relay{Store: s, Publisher: pub, BatchSize: 40}
	n, err := r.Flush(context.Background())
	if err != nil || n != 250 {
		t.Fatalf("Flush = %d, %v; want 250, nil", n, err)
	}
	if got := pub.uuids(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("published %v\nwant %v", got, want)
	}
	if s.Pending() != 0 {
		t.Fatalf("%d records still pending", s.Pending())
	}
	if n, err := r.Flush(context.Background()); n != 0 || err != nil {
		t.Fatalf("second Flush = %d, %v; want nothing published again", n, err)
	}
}

func TestPublishFailureIsRetriedNotLostNotReordered(t *testing.T) {
	s := outbox.NewMemoryStore()
	for _, id := range []string{"a", "b", "c", "d"} {
		if err := s.Add(msg(id, "k")); err != nil {
			t.Fatal(err)
		}
	}
	fails := 2
	boom := errors.New("broker unreachable")
	pub := &recorder{fail: func(_ string, m *message.Message) error {
		if m.UUID == "c" && fails > 0 {
			fails--
			return boom
		}
		return nil
	}}
	r := &outbox.Relay{Store: s, Publisher: pub, BatchSize: 1}
	n, err := r.Flush(context.Background())
	if !errors.Is(err, boom) || n != 2 {
		t.Fatalf("Flush = %d, %v; want 2 published and the broker's error", n, err)
	}
	if !strings.HasPrefix(err.Error(), "outbox: publish record 3 (c) to \"orders\"") {
		t.Errorf("error %q does not name the record and topic", err)
	}
	if got := strings.Join(pub.uuids(), ","); got != "a,b" {
		t.Fatalf("published %s after a failure on c, want a,b (d must wait behind c)", got)
	}
	if attempts, last, ok := s.Failures(3); !ok || attempts != 1 || !strings.Contains(last, "unreachable") {
		t.Fatalf("failure record of c: %d %q %v, want 1 attempt with the error", attempts, last, ok)
	}
	// Run retries with backoff until it goes through.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	r.Backoff = noBackoff()
	r.PollInterval = time.Millisecond
	go func() { done <- r.Run(ctx) }()
	waitFor(t, func() bool { return s.Pending() == 0 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := strings.Join(pub.uuids(), ","); got != "a,b,c,d" {
		t.Fatalf("published %s, want a,b,c,d exactly once each", got)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestConcurrentRelaysPublishOnceInKeyOrder runs four relays on one store
// while messages keep being added: every message is published exactly once,
// and messages of one key in insertion order.
func TestConcurrentRelaysPublishOnceInKeyOrder(t *testing.T) {
	s := outbox.NewMemoryStore()
	pub := &recorder{slow: 100 * time.Microsecond}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &outbox.Relay{Store: s, Publisher: pub, BatchSize: 7, PollInterval: time.Millisecond}
			if err := r.Run(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	const n = 600
	for i := range n {
		if err := s.Add(msg(fmt.Sprintf("%d", i), fmt.Sprintf("k%d", i%5))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return s.Pending() == 0 })
	cancel()
	wg.Wait()
	assertOncePerKeyOrder(t, pub.got, n)
}

func assertOncePerKeyOrder(t *testing.T, got []*message.Message, n int) {
	t.Helper()
	seen := map[string]bool{}
	last := map[string]int{}
	for _, m := range got {
		if seen[m.UUID] {
			t.Fatalf("message %s published twice", m.UUID)
		}
		seen[m.UUID] = true
		var i int
		fmt.Sscan(m.UUID, &i)
		k := m.Metadata.Get(header.Key)
		if prev, ok := last[k]; ok && prev > i {
			t.Fatalf("key %s: message %d published after %d", k, i, prev)
		}
		last[k] = i
	}
	if len(seen) != n {
		t.Fatalf("%d distinct messages published, want %d", len(seen), n)
	}
}

func TestRelayValidateReportsEverything(t *testing.T) {
	r := &outbox.Relay{BatchSize: -1, PollInterval: -time.Second, MaxAttempts: -1, Backoff: retry.Policy{Multiplier: 0.5}}
	err := r.Validate()
	for _, want := range []string{"outbox.relay.store", "outbox.relay.publisher", "outbox.relay.batch_size: -1", "outbox.relay.poll_interval: -1s", "outbox.relay.max_attempts: -1", "outbox.relay.backoff.multiplier"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to name %s", err, want)
		}
	}
	if err := r.Run(context.Background()); err == nil {
		t.Error("Run with invalid settings returned nil")
	}
}

type orderPlaced struct {
	OrderID string `json:"order_id"`
}

func (orderPlaced) EventType() string  { return "orders.order_placed" }
func (orderPlaced) EventVersion() int  { return 1 }
func (e orderPlaced) EventKey() string { return e.OrderID }

// TestNewKeepsTheChainThroughTheMemoryBroker stores a message built from a
// handler's context and relays it to the memory broker: the consumer sees
// the id, correlation, causation and hop count Publish would have sent.
func TestNewKeepsTheChainThroughTheMemoryBroker(t *testing.T) {
	b, err := memory.New(memory.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	svc := service.New(b, service.WithSource("orders-svc"))
	ctx := middleware.WithCorrelationID(context.Background(), "corr-1")
	m, err := outbox.New(ctx, svc, orderPlaced{OrderID: "o-1"})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := b.Subscriber("billing", broker.SubscriberOptions{})
	if err != nil {
		t.Fatal(err)
	}
	subCtx, stop := context.WithCancel(context.Background())
	defer stop()
	msgs, err := sub.Subscribe(subCtx, m.Topic)
	if err != nil {
		t.Fatal(err)
	}
	s := outbox.NewMemoryStore()
	if err := s.Add(m); err != nil {
		t.Fatal(err)
	}
	if n, err := (&outbox.Relay{Store: s, Publisher: b.Publisher()}).Flush(context.Background()); n != 1 || err != nil {
		t.Fatalf("Flush = %d, %v", n, err)
	}
	select {
	case got := <-msgs:
		got.Ack()
		env, err := event.ReadEnvelope(got)
		if err != nil {
			t.Fatal(err)
		}
		if env.ID != m.Message.UUID || env.CorrelationID != "corr-1" || env.Key != "o-1" || env.Source != "orders-svc" || env.Type != "orders.order_placed" {
			t.Fatalf("envelope %+v does not match what was stored (id %s)", env, m.Message.UUID)
		}
		if string(got.Payload) != `{"order_id":"o-1"}` {
			t.Fatalf("payload %s", got.Payload)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("relayed message not received")
	}
}

// TestPoisonRecordIsParkedOthersFlow on the memory store: a record the
// broker refuses holds back only its key, is parked after MaxAttempts with
// its error, and is published, then its key, once unparked.
func TestPoisonRecordIsParkedOthersFlow(t *testing.T) {
	s := outbox.NewMemoryStore()
	poison := msg("poison", "k1")
	poison.Topic = "audit"
	for _, m := range []outbox.Message{poison, msg("k1-behind", "k1"), msg("k2", "k2"), msg("no-key", "")} {
		if err := s.Add(m); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	fixed := false
	refused := errors.New("unroutable")
	pub := &recorder{fail: func(topic string, _ *message.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if topic == "audit" && !fixed {
			return refused
		}
		return nil
	}}
	r := &outbox.Relay{Store: s, Publisher: pub, MaxAttempts: 2, Backoff: noBackoff()}
	if n, err := r.Flush(context.Background()); n != 2 || !errors.Is(err, refused) {
		t.Fatalf("first Flush = %d, %v; want k2 and no-key published and the refusal", n, err)
	}
	waitFor(t, func() bool {
		_, _ = r.Flush(context.Background())
		l, _ := s.Parked(context.Background(), 10)
		return len(l) == 1
	})
	l, _ := s.Parked(context.Background(), 10)
	if p := l[0]; p.MessageID != "poison" || p.Attempts != 2 || p.LastError != "unroutable" || p.Held != 1 {
		t.Fatalf("parked %+v; want poison after 2 attempts holding back k1-behind", p)
	}
	if got := strings.Join(pub.uuids(), ","); got != "k2,no-key" {
		t.Fatalf("published %s, want k2,no-key and nothing of k1", got)
	}
	mu.Lock()
	fixed = true
	mu.Unlock()
	if n, _ := s.Unpark(context.Background(), l[0].ID); n != 1 {
		t.Fatalf("Unpark = %d", n)
	}
	if n, err := r.Flush(context.Background()); n != 2 || err != nil {
		t.Fatalf("Flush after Unpark = %d, %v", n, err)
	}
	if got := strings.Join(pub.uuids(), ","); got != "k2,no-key,poison,k1-behind" {
		t.Fatalf("published %s; want the unparked record, then its key", got)
	}
}

// A batch whose first publishes all fail (the broker looks down) stops
// early instead of counting an attempt against every record.
func TestOutageStopsTheBatchEarly(t *testing.T) {
	s := outbox.NewMemoryStore()
	for i := range 10 {
		m := msg(fmt.Sprintf("m%d", i), fmt.Sprintf("k%d", i))
		m.Topic = fmt.Sprintf("t%d", i) // one publish per record
		if err := s.Add(m); err != nil {
			t.Fatal(err)
		}
	}
	var calls int
	pub := &recorder{fail: func(string, *message.Message) error { calls++; return errors.New("connection refused") }}
	r := &outbox.Relay{Store: s, Publisher: pub}
	if _, err := r.Flush(context.Background()); err == nil {
		t.Fatal("Flush returned nil with the broker down")
	}
	if calls != 3 {
		t.Fatalf("%d publishes tried with the broker down, want 3 then a stop", calls)
	}
}
