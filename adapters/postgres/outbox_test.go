package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/adapters/postgres"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/outbox"
	"github.com/switchyard-go/switchyard/pkg/retry"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// newOutbox returns an outbox on a table of its own, dropped after the test.
func newOutbox(t *testing.T, pool *pgxpool.Pool, cfg postgres.OutboxConfig) *postgres.Outbox {
	t.Helper()
	cfg.Table = unique("outbox_")
	ob, err := postgres.NewOutbox(pool, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := ob.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = pool.Exec(context.Background(), `DROP TABLE `+ob.Table()) })
	return ob
}

// addInTx runs a business write and adds msgs in one transaction.
func addInTx(t *testing.T, pool *pgxpool.Pool, ob *postgres.Outbox, commit bool, msgs ...outbox.Message) {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT 1`); err != nil { // the business write
		t.Fatal(err)
	}
	if err := ob.Add(ctx, tx, msgs...); err != nil {
		t.Fatal(err)
	}
	if commit {
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

type recordingPublisher struct {
	mu   sync.Mutex
	got  []*message.Message
	fail func(m *message.Message) error
}

func (p *recordingPublisher) Publish(_ string, msgs ...*message.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range msgs {
		if p.fail != nil {
			if err := p.fail(m); err != nil {
				return err
			}
		}
	}
	p.got = append(p.got, msgs...)
	return nil
}

func (p *recordingPublisher) Close() error { return nil }

func (p *recordingPublisher) snapshot() []*message.Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*message.Message(nil), p.got...)
}

func rawMsg(id, key string) outbox.Message {
	m := message.NewMessage(id, []byte(id))
	if key != "" {
		m.Metadata.Set(header.Key, key)
	}
	return outbox.Message{Topic: "orders", Message: m}
}

func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 15s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestOutboxRollbackPublishesNothingCommitPublishesOnceInOrder stores
// events built by service.NewMessage: a rolled-back transaction's are never
// published, a committed one's reach the memory broker once, in order, with
// the envelope Publish would have sent.
func TestOutboxRollbackPublishesNothingCommitPublishesOnceInOrder(t *testing.T) {
	pool := newPool(t)
	ob := newOutbox(t, pool, postgres.OutboxConfig{})
	b, err := memory.New(memory.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	svc := service.New(b, service.WithSource("orders-svc"), service.WithNamespace(unique("t")+"."))
	ctx := context.Background()
	build := func(id string) outbox.Message {
		m, err := outbox.New(ctx, svc, orderPlaced{OrderID: id}, service.WithKey("customer-1"))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	addInTx(t, pool, ob, false, build("rolled-back"))
	var committed []outbox.Message
	for i := range 5 {
		m := build(fmt.Sprintf("o-%d", i))
		committed = append(committed, m)
		addInTx(t, pool, ob, true, m)
	}
	topic := committed[0].Topic

	sub, err := b.Subscriber("billing", broker.SubscriberOptions{})
	if err != nil {
		t.Fatal(err)
	}
	subCtx, stop := context.WithCancel(ctx)
	defer stop()
	msgs, err := sub.Subscribe(subCtx, topic)
	if err != nil {
		t.Fatal(err)
	}
	relay := &outbox.Relay{Store: ob, Publisher: b.Publisher()}
	if n, err := relay.Flush(ctx); n != 5 || err != nil {
		t.Fatalf("Flush = %d, %v; want the 5 committed messages", n, err)
	}
	if n, err := relay.Flush(ctx); n != 0 || err != nil {
		t.Fatalf("second Flush = %d, %v; want nothing published twice", n, err)
	}
	for i, want := range committed {
		select {
		case got := <-msgs:
			got.Ack()
			env, err := event.ReadEnvelope(got)
			if err != nil {
				t.Fatal(err)
			}
			if got.UUID != want.Message.UUID || env.ID != want.Message.UUID || env.Key != "customer-1" || env.Source != "orders-svc" ||
				env.CorrelationID != want.Message.UUID || string(got.Payload) != string(want.Message.Payload) {
				t.Fatalf("message %d: %s %+v %s, want %s with its envelope", i, got.UUID, env, got.Payload, want.Message.UUID)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("message %d not received", i)
		}
	}
	select {
	case extra := <-msgs:
		t.Fatalf("unexpected message %s %s (rolled back or duplicate)", extra.UUID, extra.Payload)
	case <-time.After(50 * time.Millisecond):
	}
	if n, err := ob.Pending(ctx); n != 0 || err != nil {
		t.Fatalf("pending = %d, %v", n, err)
	}
}

func TestOutboxPublishFailureIsRetriedNotMarked(t *testing.T) {
	pool := newPool(t)
	ob := newOutbox(t, pool, postgres.OutboxConfig{})
	ctx := context.Background()
	addInTx(t, pool, ob, true, rawMsg("a", "k"), rawMsg("b", "k"), rawMsg("c", "k"))
	boom := errors.New("broker down")
	var mu sync.Mutex
	down := true
	pub := &recordingPublisher{fail: func(m *message.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if m.UUID == "b" && down {
			return boom
		}
		return nil
	}}
	relay := &outbox.Relay{Store: ob, Publisher: pub, BatchSize: 1}
	if n, err := relay.Flush(ctx); n != 1 || !errors.Is(err, boom) {
		t.Fatalf("Flush = %d, %v; want a published, then the broker's error", n, err)
	}
	var attempts int
	var lastErr string
	var published *time.Time
	if err := pool.QueryRow(ctx, `SELECT attempts, last_error, published_at FROM `+ob.Table()+` WHERE uuid = 'b'`).Scan(&attempts, &lastErr, &published); err != nil {
		t.Fatal(err)
	}
	if attempts != 1 || lastErr != "broker down" || published != nil {
		t.Fatalf("failed record: attempts %d, last_error %q, published_at %v; want 1, the error, unpublished", attempts, lastErr, published)
	}
	if n, _ := ob.Pending(ctx); n != 2 {
		t.Fatalf("pending = %d, want b and c", n)
	}

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	relay.Backoff = retry.Policy{InitialInterval: 5 * time.Millisecond, MaxInterval: 10 * time.Millisecond}
	relay.PollInterval = 5 * time.Millisecond
	go func() { done <- relay.Run(runCtx) }()
	eventually(t, func() bool {
		var n int64
		_ = pool.QueryRow(ctx, `SELECT attempts FROM `+ob.Table()+` WHERE uuid = 'b'`).Scan(&n)
		return n >= 3
	})
	mu.Lock()
	down = false
	mu.Unlock()
	eventually(t, func() bool { n, _ := ob.Pending(ctx); return n == 0 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range pub.snapshot() {
		ids = append(ids, m.UUID)
	}
	if strings.Join(ids, ",") != "a,b,c" {
		t.Fatalf("published %v, want a,b,c once each", ids)
	}
}

// TestOutboxConcurrentRelays runs three relays while several writers
// commit: each message is published once, each key in insertion order.
func TestOutboxConcurrentRelays(t *testing.T) {
	pool := newPool(t)
	ob := newOutbox(t, pool, postgres.OutboxConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	pub := &recordingPublisher{}
	var relays sync.WaitGroup
	for range 3 {
		relays.Add(1)
		go func() {
			defer relays.Done()
			r := &outbox.Relay{Store: ob, Publisher: pub, BatchSize: 5, PollInterval: 5 * time.Millisecond}
			if err := r.Run(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	const writers, perWriter = 4, 50
	var w sync.WaitGroup
	for wi := range writers {
		w.Add(1)
		go func() {
			defer w.Done()
			for i := range perWriter {
				// Each writer owns its keys, so its transactions are the
				// only ones ordering them (commit order = insertion order).
				id := fmt.Sprintf("%d", wi*perWriter+i)
				addInTx(t, pool, ob, true, rawMsg(id, fmt.Sprintf("w%d-k%d", wi, i%3)))
			}
		}()
	}
	w.Wait()
	eventually(t, func() bool { n, _ := ob.Pending(context.Background()); return n == 0 })
	cancel()
	relays.Wait()
	seen := map[string]bool{}
	last := map[string]int{}
	for _, m := range pub.snapshot() {
		if seen[m.UUID] {
			t.Fatalf("message %s published twice", m.UUID)
		}
		seen[m.UUID] = true
		var i int
		fmt.Sscan(m.UUID, &i)
		k := m.Metadata.Get(header.Key)
		if prev, ok := last[k]; ok && prev > i {
			t.Fatalf("key %s: %d published after %d", k, i, prev)
		}
		last[k] = i
	}
	if len(seen) != writers*perWriter {
		t.Fatalf("%d messages published, want %d", len(seen), writers*perWriter)
	}
}

// fetchCounter is an outbox that counts the relay's polls (Fetch calls
// that returned); its other methods, Listen included, are the outbox's.
type fetchCounter struct {
	*postgres.Outbox
	fetched atomic.Int32
}

func (f *fetchCounter) Fetch(ctx context.Context, limit int) (outbox.Batch, error) {
	b, err := f.Outbox.Fetch(ctx, limit)
	f.fetched.Add(1)
	return b, err
}

// TestOutboxNotifyWakesRelay: with an hour's poll interval, only the
// NOTIFY sent on commit can make the relay publish.
func TestOutboxNotifyWakesRelay(t *testing.T) {
	pool := newPool(t)
	ob := &fetchCounter{Outbox: newOutbox(t, pool, postgres.OutboxConfig{})}
	pub := &recordingPublisher{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- (&outbox.Relay{Store: ob, Publisher: pub, PollInterval: time.Hour}).Run(ctx) }()
	// The relay LISTENs before its first poll: once that (empty) poll
	// returned, the next one is an hour away and only a NOTIFY is left.
	eventually(t, func() bool { return ob.fetched.Load() > 0 })
	addInTx(t, pool, ob.Outbox, true, rawMsg("woken", ""))
	eventually(t, func() bool { return len(pub.snapshot()) == 1 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestOutboxDeletePublishedAndPurge(t *testing.T) {
	pool := newPool(t)
	ctx := context.Background()
	del := newOutbox(t, pool, postgres.OutboxConfig{DeletePublished: true, Channel: "-"})
	addInTx(t, pool, del, true, rawMsg("x", ""))
	if n, err := (&outbox.Relay{Store: del, Publisher: &recordingPublisher{}}).Flush(ctx); n != 1 || err != nil {
		t.Fatalf("Flush = %d, %v", n, err)
	}
	var rows int
	_ = pool.QueryRow(ctx, `SELECT count(*) FROM `+del.Table()).Scan(&rows)
	if rows != 0 {
		t.Fatalf("%d rows left with DeletePublished", rows)
	}

	keep := newOutbox(t, pool, postgres.OutboxConfig{})
	addInTx(t, pool, keep, true, rawMsg("y", ""), rawMsg("z", ""))
	if n, err := (&outbox.Relay{Store: keep, BatchSize: 1, Publisher: &recordingPublisher{fail: func(m *message.Message) error {
		if m.UUID == "z" {
			return errors.New("no")
		}
		return nil
	}}}).Flush(ctx); n != 1 || err == nil {
		t.Fatalf("Flush = %d, %v", n, err)
	}
	if _, err := pool.Exec(ctx, `UPDATE `+keep.Table()+` SET published_at = published_at - interval '2 hours' WHERE published_at IS NOT NULL`); err != nil {
		t.Fatal(err)
	}
	if n, err := keep.Purge(ctx, time.Hour); n != 1 || err != nil {
		t.Fatalf("Purge = %d, %v; want the one published record", n, err)
	}
	if n, _ := keep.Pending(ctx); n != 1 {
		t.Fatalf("pending = %d, want the unpublished record kept", n)
	}
}

func TestOutboxConfigValidate(t *testing.T) {
	err := postgres.OutboxConfig{Table: "x; DROP TABLE y", Channel: "a.b"}.Validate()
	for _, want := range []string{"outbox.table", "outbox.channel"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to name %s", err, want)
		}
	}
	if err := (postgres.OutboxConfig{Table: "app.outbox"}).Validate(); err != nil {
		t.Errorf("schema-qualified table rejected: %v", err)
	}
}

// TestOutboxInTransactionalHandler: a handler under TransactionalIdempotency
// adds its outgoing event to the outbox in the delivery's transaction; the
// relayed event continues the chain (causation = the handled message).
func TestOutboxInTransactionalHandler(t *testing.T) {
	pool := newPool(t)
	ob := newOutbox(t, pool, postgres.OutboxConfig{})
	ctx := context.Background()
	b, err := memory.New(memory.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	svc := service.New(b, service.WithNamespace(unique("t")+"."),
		service.WithMiddleware(postgres.TransactionalIdempotency(pool, postgres.TxConfig{})))
	if err := service.Handle(svc, "pay", func(ctx context.Context, e orderPlaced) error {
		m, err := outbox.New(ctx, svc, orderPaid{OrderID: e.OrderID})
		if err != nil {
			return err
		}
		return ob.Add(ctx, postgres.TxFrom(ctx), m)
	}, service.Publishes(orderPaid{})); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- svc.Run(runCtx) }()
	defer func() { stop(); <-errc }()
	<-svc.Ready()
	in, _, err := svc.NewMessage(ctx, orderPlaced{OrderID: "o-9"})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Publish(ctx, orderPlaced{OrderID: "o-9"}, service.WithID(in.UUID)); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { n, _ := ob.Pending(ctx); return n == 1 })
	pub := &recordingPublisher{}
	if n, err := (&outbox.Relay{Store: ob, Publisher: pub}).Flush(ctx); n != 1 || err != nil {
		t.Fatalf("Flush = %d, %v", n, err)
	}
	env, err := event.ReadEnvelope(pub.snapshot()[0])
	if err != nil {
		t.Fatal(err)
	}
	if env.Type != "orders.order_paid" || env.CausationID != in.UUID || env.CorrelationID != in.UUID || env.HopCount != 1 {
		t.Fatalf("relayed envelope %+v, want order_paid caused by %s", env, in.UUID)
	}
}

// refusingPublisher refuses every message to one topic until fixed, like a
// broker with an ACL denial or an unroutable topic, and records what it
// accepted, in order.
type refusingPublisher struct {
	mu      sync.Mutex
	refuse  string
	fixed   bool
	got     []string // message ids
	refused int
}

var errRefused = errors.New("TOPIC_AUTHORIZATION_FAILED")

func (p *refusingPublisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if topic == p.refuse && !p.fixed {
		p.refused++
		return fmt.Errorf("publish to %q: %w", topic, errRefused)
	}
	for _, m := range msgs {
		p.got = append(p.got, m.UUID)
	}
	return nil
}

func (p *refusingPublisher) Close() error { return nil }

func (p *refusingPublisher) published() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.got...)
}

func (p *refusingPublisher) fix() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fixed = true
}

func toTopic(topic string, m outbox.Message) outbox.Message {
	m.Topic = topic
	return m
}

// TestOutboxPoisonRecordIsParkedAndOthersFlow: a broker refuses one topic.
// The refused record holds back only the later records of its key; other
// keys and topics are published meanwhile. After MaxAttempts failed
// publishes it is parked (kept, listed with its attempts and last error,
// and what it holds back), and once the cause is fixed, unparking it
// publishes it and then its key's waiting record, in order.
func TestOutboxPoisonRecordIsParkedAndOthersFlow(t *testing.T) {
	pool := newPool(t)
	ob := newOutbox(t, pool, postgres.OutboxConfig{})
	ctx := context.Background()
	addInTx(t, pool, ob, true,
		toTopic("audit", rawMsg("poison", "k1")),  // refused
		rawMsg("k1-behind", "k1"),                 // same key: must wait behind it
		rawMsg("k2-first", "k2"),                  // other key, same batch
		toTopic("payments", rawMsg("no-key", "")), // other topic, no key
	)
	addInTx(t, pool, ob, true, rawMsg("k2-second", "k2"), rawMsg("k3", "k3"))
	pub := &refusingPublisher{refuse: "audit"}
	const maxAttempts = 3
	relay := &outbox.Relay{
		Store: ob, Publisher: pub, MaxAttempts: maxAttempts, PollInterval: 5 * time.Millisecond,
		Backoff: retry.Policy{InitialInterval: 5 * time.Millisecond, MaxInterval: 20 * time.Millisecond, Jitter: -1},
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- relay.Run(runCtx) }()

	var parked []outbox.Parked
	eventually(t, func() bool {
		var err error
		parked, err = ob.Parked(ctx, 10)
		return err == nil && len(parked) == 1
	})
	p := parked[0]
	if p.MessageID != "poison" || p.Topic != "audit" || p.Key != "k1" || p.Attempts != maxAttempts ||
		!strings.Contains(p.LastError, errRefused.Error()) || p.Held != 1 {
		t.Fatalf("parked %+v; want the poison record after %d attempts, with the broker's error, holding back 1 record", p, maxAttempts)
	}
	eventually(t, func() bool { return len(pub.published()) == 4 })
	if got := strings.Join(pub.published(), ","); got != "k2-first,no-key,k2-second,k3" {
		t.Fatalf("published %s while the poison record failed; want every other key and topic, in order, and nothing of k1", got)
	}
	if pub.refused != maxAttempts {
		t.Errorf("the poison record was tried %d times, want %d", pub.refused, maxAttempts)
	}
	if n, _ := ob.Pending(ctx); n != 2 {
		t.Fatalf("pending = %d, want the parked record and the one behind it", n)
	}

	// Parked means parked: nothing more is tried until an operator acts.
	if n, err := relay.Flush(ctx); n != 0 || err != nil {
		t.Fatalf("Flush with only a parked key left = %d, %v; want 0, nil", n, err)
	}

	pub.fix()
	if n, err := ob.Unpark(ctx, p.ID); n != 1 || err != nil {
		t.Fatalf("Unpark = %d, %v", n, err)
	}
	eventually(t, func() bool { n, _ := ob.Pending(ctx); return n == 0 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(pub.published(), ","); got != "k2-first,no-key,k2-second,k3,poison,k1-behind" {
		t.Fatalf("published %s; want the unparked record, then its key's waiting one", got)
	}
	if l, _ := ob.Parked(ctx, 10); len(l) != 0 {
		t.Fatalf("still parked after a successful retry: %+v", l)
	}
}

// UnparkAll makes every parked record due again with fresh attempts.
func TestOutboxUnparkAll(t *testing.T) {
	pool := newPool(t)
	ob := newOutbox(t, pool, postgres.OutboxConfig{Channel: "-"})
	ctx := context.Background()
	addInTx(t, pool, ob, true, toTopic("audit", rawMsg("a", "ka")), toTopic("audit", rawMsg("b", "")))
	pub := &refusingPublisher{refuse: "audit"}
	relay := &outbox.Relay{Store: ob, Publisher: pub, MaxAttempts: 1}
	if n, err := relay.Flush(ctx); n != 0 || !errors.Is(err, errRefused) {
		t.Fatalf("Flush = %d, %v; want 0 and the refusal", n, err)
	}
	if l, _ := ob.Parked(ctx, 10); len(l) != 2 {
		t.Fatalf("parked %+v, want both records (max_attempts 1)", l)
	}
	pub.fix()
	if n, err := ob.UnparkAll(ctx); n != 2 || err != nil {
		t.Fatalf("UnparkAll = %d, %v", n, err)
	}
	if n, err := relay.Flush(ctx); n != 2 || err != nil {
		t.Fatalf("Flush after UnparkAll = %d, %v; want both published", n, err)
	}
}

// TestOutboxFailingRecordBlocksOnlyItsKey: while a record keeps failing
// (far from being parked) the records of other keys and topics are
// published, and the later record of its key is not.
func TestOutboxFailingRecordBlocksOnlyItsKey(t *testing.T) {
	pool := newPool(t)
	ob := newOutbox(t, pool, postgres.OutboxConfig{})
	ctx := context.Background()
	addInTx(t, pool, ob, true,
		toTopic("audit", rawMsg("poison", "k1")),
		rawMsg("k1-behind", "k1"),
		rawMsg("k2", "k2"),
		toTopic("payments", rawMsg("no-key", "")),
	)
	pub := &refusingPublisher{refuse: "audit"}
	relay := &outbox.Relay{
		Store: ob, Publisher: pub, MaxAttempts: 1000, PollInterval: 5 * time.Millisecond,
		Backoff: retry.Policy{InitialInterval: 5 * time.Millisecond, MaxInterval: 10 * time.Millisecond, Jitter: -1},
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- relay.Run(runCtx) }()
	// The attempts are counted in the table after each refusal: wait for
	// the row, not the publisher, or a cancel between the two loses one.
	poisonAttempts := func() int {
		var n int
		_ = pool.QueryRow(ctx, `SELECT attempts FROM `+ob.Table()+` WHERE uuid = 'poison'`).Scan(&n)
		return n
	}
	eventually(t, func() bool {
		pub.mu.Lock()
		defer pub.mu.Unlock()
		return len(pub.got) == 2 && pub.refused >= 3
	})
	eventually(t, func() bool { return poisonAttempts() >= 3 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(pub.published(), ","); got != "k2,no-key" {
		t.Fatalf("published %s; want k2 and no-key, and nothing of k1 while its first record fails", got)
	}
	var attempts int
	var parked *time.Time
	if err := pool.QueryRow(ctx, `SELECT attempts, parked_at FROM `+ob.Table()+` WHERE uuid = 'poison'`).Scan(&attempts, &parked); err != nil {
		t.Fatal(err)
	}
	if attempts < 3 || parked != nil {
		t.Fatalf("poison record: %d attempts, parked at %v; want >= 3 attempts and not parked", attempts, parked)
	}
}
