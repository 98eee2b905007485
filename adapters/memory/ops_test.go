package memory_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/header"
)

func newOpsBroker(t *testing.T) *memory.Broker {
	t.Helper()
	b, err := memory.New(memory.Config{NackBackoff: time.Hour, MaxNackBackoff: time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// deadLetter builds a message dead-lettered at base+i seconds.
func deadLetter(id, key string, at time.Time) *message.Message {
	m := message.NewMessage(id, []byte(`{"id":"`+id+`"}`))
	if key != "" {
		m.Metadata[header.Key] = key
	}
	m.Metadata[header.DeadLetterLastFailure] = at.UTC().Format(time.RFC3339Nano)
	return m
}

func browseIDs(t *testing.T, b *memory.Broker, topic, group string) []string {
	t.Helper()
	var ids []string
	err := b.Browse(context.Background(), topic, group, func(m *message.Message) bool {
		ids = append(ids, m.UUID)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func TestProvisionKeepsMessagesAndBrowseDoesNotConsume(t *testing.T) {
	b := newOpsBroker(t)
	ctx := context.Background()
	if err := b.Provision(ctx, "orders.dead_letter", broker.DeadLetterGroup); err != nil {
		t.Fatal(err)
	}
	// Another group registering later must not take the kept messages away.
	if err := b.Provision(ctx, "orders.dead_letter", "other"); err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i, key := range []string{"k1", "k2", "k1", "", "k2"} {
		if err := b.Publisher().Publish("orders.dead_letter", deadLetter(fmt.Sprint("m", i), key, base.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"m0", "m1", "m2", "m3", "m4"}
	for range 2 {
		if got := browseIDs(t, b, "orders.dead_letter", broker.DeadLetterGroup); !reflect.DeepEqual(got, want) {
			t.Fatalf("Browse = %q, want %q (oldest first)", got, want)
		}
	}
	if d := b.Depth("orders.dead_letter", broker.DeadLetterGroup); d != 5 {
		t.Fatalf("Depth after browsing = %d, want 5", d)
	}

	// The group's subscriber still receives every message.
	sub, err := b.Subscriber(broker.DeadLetterGroup, broker.SubscriberOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs, err := sub.Subscribe(sctx, "orders.dead_letter")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for len(got) < 5 {
		select {
		case m := <-msgs:
			got[m.UUID] = true
			m.Ack()
		case <-time.After(10 * time.Second):
			t.Fatalf("received %d of 5 messages", len(got))
		}
	}
}

func TestBrowseStopsWhenFnReturnsFalse(t *testing.T) {
	b := newOpsBroker(t)
	if err := b.Provision(context.Background(), "t", "g"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := b.Publisher().Publish("t", message.NewMessage(fmt.Sprint(i), nil)); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	if err := b.Browse(context.Background(), "t", "g", func(*message.Message) bool { n++; return false }); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("fn called %d times after returning false, want 1", n)
	}
}

func TestBrowseSeesNackedMessagesNotInFlightOnes(t *testing.T) {
	b := newOpsBroker(t)
	ctx := context.Background()
	if err := b.Provision(ctx, "t", "g"); err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 3 {
		if err := b.Publisher().Publish("t", deadLetter(fmt.Sprint("m", i), "", base.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	sub, err := b.Subscriber("g", broker.SubscriberOptions{Prefetch: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs, err := sub.Subscribe(sctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	first := <-msgs
	first.Nack() // waits an hour for redelivery: delayed, still the group's
	second := <-msgs
	// second is in flight: not visible.
	if got, want := browseIDs(t, b, "t", "g"), []string{first.UUID, "m2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Browse = %q, want %q", got, want)
	}
	second.Ack()
}

func TestBrowseUnknownAndBacklog(t *testing.T) {
	b := newOpsBroker(t)
	if got := browseIDs(t, b, "nothing", "g"); len(got) != 0 {
		t.Fatalf("unknown topic browsed %q", got)
	}
	// Published before any group registered: kept for the first group.
	if err := b.Publisher().Publish("early", message.NewMessage("e1", nil)); err != nil {
		t.Fatal(err)
	}
	if got := browseIDs(t, b, "early", "g"); !reflect.DeepEqual(got, []string{"e1"}) {
		t.Fatalf("backlog browsed %q, want [e1]", got)
	}
	if err := b.Provision(context.Background(), "early", "g"); err != nil {
		t.Fatal(err)
	}
	if got := browseIDs(t, b, "early", "other"); len(got) != 0 {
		t.Fatalf("unregistered group browsed %q", got)
	}
	if got := browseIDs(t, b, "early", "g"); !reflect.DeepEqual(got, []string{"e1"}) {
		t.Fatalf("after Provision browsed %q, want [e1]", got)
	}
}

func TestOpsErrors(t *testing.T) {
	b := newOpsBroker(t)
	ctx := context.Background()
	if err := b.Provision(ctx, "t", ""); !errors.Is(err, memory.ErrInvalidGroup) {
		t.Fatalf("Provision with empty group: %v", err)
	}
	if err := b.Browse(ctx, "t", "", func(*message.Message) bool { return true }); !errors.Is(err, memory.ErrInvalidGroup) {
		t.Fatalf("Browse with empty group: %v", err)
	}
	_ = b.Close()
	if err := b.Provision(ctx, "t", "g"); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("Provision after Close: %v", err)
	}
	if err := b.Browse(ctx, "t", "g", func(*message.Message) bool { return true }); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("Browse after Close: %v", err)
	}
}

// TestProvisionedGroupDoesNotBlockPublishers: a group that is only
// provisioned (dead letters kept for operators, consumed by no one) keeps
// every message published to its topic, past BufferSize, without blocking a
// publisher; Browse shows them all. Once a subscription consumes the group,
// it gets backpressure like any group, and when that subscription stops,
// publishers waiting for room in it go on.
func TestProvisionedGroupDoesNotBlockPublishers(t *testing.T) {
	const size, n = 4, 3*4 + 1
	logs := &warnings{}
	b, err := memory.New(memory.Config{BufferSize: size, NackBackoff: time.Hour, MaxNackBackoff: time.Hour}, slog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	const topic = "orders.dead_letter"
	if err := b.Provision(context.Background(), topic, broker.DeadLetterGroup); err != nil {
		t.Fatal(err)
	}
	publishBy := func(id string, d time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		m := newMsg(id, "")
		m.SetContext(ctx)
		return b.Publisher().Publish(topic, m)
	}
	var want []string
	for i := range n {
		id := fmt.Sprint("dl", i)
		if err := publishBy(id, 2*time.Second); err != nil {
			t.Fatalf("Publish %s of %d to a group nobody consumes (BufferSize %d): %v", id, n, size, err)
		}
		want = append(want, id)
	}
	if got := browseIDs(t, b, topic, broker.DeadLetterGroup); !reflect.DeepEqual(got, want) {
		t.Fatalf("Browse = %q, want %q", got, want)
	}
	if d := b.Depth(topic, broker.DeadLetterGroup); d != n {
		t.Fatalf("Depth = %d, want %d", d, n)
	}
	if !b.Idle() {
		t.Fatal("a group nobody consumes counted by Idle")
	}
	// Keeping more than BufferSize is not silent: a warning at size+1 and
	// each time the count doubles.
	if got := logs.queued(); !reflect.DeepEqual(got, []int64{size + 1, 2 * (size + 1)}) {
		t.Fatalf("warnings logged at queued %v, want [%d %d]", got, size+1, 2*(size+1))
	}

	// Consumed, the group is bounded again: it holds more than BufferSize
	// not handed out, so a publisher waits for room.
	sctx, stop := context.WithCancel(context.Background())
	defer stop()
	_, ch := subscribe(t, b, sctx, broker.DeadLetterGroup, topic, 1)
	held := receive(t, ch)
	if err := publishBy("blocked", 50*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish to a consumed group over BufferSize: %v, want it to wait for room until its deadline", err)
	}
	wctx := newWaitCtx(context.Background())
	m := newMsg("after-stop", "")
	m.SetContext(wctx)
	done := make(chan error, 1)
	go func() { done <- b.Publisher().Publish(topic, m) }()
	waitUntilWaiting(t, wctx, "consumed group over BufferSize")

	// The subscription stops consuming: the waiting publisher goes on.
	stop()
	waitClosed(t, ch)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitLong):
		t.Fatal("Publish still waiting after the only subscription of a provisioned group stopped")
	}
	held.Ack()
	want = append(want[1:], "after-stop")
	if got := browseIDs(t, b, topic, broker.DeadLetterGroup); !reflect.DeepEqual(got, want) {
		t.Fatalf("Browse = %q, want %q", got, want)
	}
}

// TestSubscribedGroupBlocksNextToProvisionedOne: on a topic with a group
// nobody consumes, a group registered by a subscriber still gets
// backpressure, whether or not a subscription is running.
func TestSubscribedGroupBlocksNextToProvisionedOne(t *testing.T) {
	const size = 2
	b := newBroker(t, memory.Config{BufferSize: size})
	if err := b.Provision(context.Background(), "t", broker.DeadLetterGroup); err != nil {
		t.Fatal(err)
	}
	s, err := b.Subscriber("consumer", broker.SubscriberOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.(message.SubscribeInitializer).SubscribeInitialize("t"); err != nil {
		t.Fatal(err)
	}
	for i := range size {
		publish(t, b, "t", newMsg(fmt.Sprint(i), ""))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	m := newMsg("over", "")
	m.SetContext(ctx)
	if err := b.Publisher().Publish("t", m); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish with the subscribed group full: %v, want it to wait until its deadline", err)
	}
}

// warnings is a slog.Handler that records the "queued" attribute of every
// warning.
type warnings struct {
	mu sync.Mutex
	at []int64
}

func (w *warnings) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (w *warnings) WithAttrs([]slog.Attr) slog.Handler           { return w }
func (w *warnings) WithGroup(string) slog.Handler                { return w }

func (w *warnings) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "queued" {
			w.mu.Lock()
			w.at = append(w.at, a.Value.Int64())
			w.mu.Unlock()
		}
		return true
	})
	return nil
}

func (w *warnings) queued() []int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]int64(nil), w.at...)
}

func TestBacklogCountsWhatTheGroupHasNotBeenHandedOut(t *testing.T) {
	// A nacked message waits a minute: long enough to be counted.
	b, err := memory.New(memory.Config{Prefetch: 2, NackBackoff: time.Minute, MaxNackBackoff: time.Minute}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	if bl, err := b.Backlog(ctx, "nowhere", "g"); err != nil || bl.Messages != 0 {
		t.Errorf("unknown topic: %+v, %v", bl, err)
	}
	pub := b.Publisher()
	for i := range 3 {
		if err := pub.Publish("t", message.NewMessage(fmt.Sprint("early-", i), nil)); err != nil {
			t.Fatal(err)
		}
	}
	// No group yet: what the topic keeps for the first one.
	if bl, _ := b.Backlog(ctx, "t", "g"); bl.Messages != 3 {
		t.Errorf("before any group: %d, want 3", bl.Messages)
	}
	sub, err := b.Subscriber("g", broker.SubscriberOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ch, err := sub.Subscribe(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 7 {
		if err := pub.Publish("t", message.NewMessage(fmt.Sprint("late-", i), nil)); err != nil {
			t.Fatal(err)
		}
	}
	first := <-ch
	<-ch // prefetch 2: two handed out, 8 queued
	deadline := time.Now().Add(5 * time.Second)
	for {
		bl, err := b.Backlog(ctx, "t", "g")
		if err == nil && bl.Messages == 8 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Backlog = %+v, %v; want 8 (10 published, 2 handed out)", bl, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if bl, _ := b.Backlog(ctx, "t", "other"); bl.Messages != 0 {
		t.Errorf("a group that never registered: %d, want 0", bl.Messages)
	}
	// Nacked, the message waits a minute for redelivery and is counted
	// again; its prefetch slot takes the next queued one.
	first.Nack()
	deadline = time.Now().Add(5 * time.Second)
	for {
		st := b.Stats()
		if len(st) == 1 && st[0].Delayed == 1 && st[0].InFlight == 2 {
			if bl, _ := b.Backlog(ctx, "t", "g"); bl.Messages != int64(st[0].Queued+1) || bl.Messages != 8 {
				t.Errorf("Backlog %d with %+v, want 8: queued 7 and delayed 1", bl.Messages, st[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the nacked message never waited for redelivery: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := b.Check(ctx); err != nil {
		t.Errorf("Check = %v", err)
	}
	_ = sub.Close()
	_ = b.Close()
	if err := b.Check(ctx); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Check after Close = %v, want ErrClosed", err)
	}
	if _, err := b.Backlog(ctx, "t", "g"); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Backlog after Close = %v, want ErrClosed", err)
	}
}
