package memory_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/header"
)

const waitLong = 10 * time.Second

func newBroker(t *testing.T, cfg memory.Config) *memory.Broker {
	t.Helper()
	b, err := memory.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func subscribe(t *testing.T, b *memory.Broker, ctx context.Context, group, topic string, prefetch int) (message.Subscriber, <-chan *message.Message) {
	t.Helper()
	s, err := b.Subscriber(group, broker.SubscriberOptions{Prefetch: prefetch})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	ch, err := s.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	return s, ch
}

func publish(t *testing.T, b *memory.Broker, topic string, msgs ...*message.Message) {
	t.Helper()
	if err := b.Publisher().Publish(topic, msgs...); err != nil {
		t.Fatal(err)
	}
}

func newMsg(id string, key string) *message.Message {
	m := message.NewMessage(id, []byte(id))
	if key != "" {
		m.Metadata.Set(header.Key, key)
	}
	return m
}

func receive(t *testing.T, ch <-chan *message.Message) *message.Message {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatal("channel closed")
		}
		return m
	case <-time.After(waitLong):
		t.Fatal("no message")
	}
	return nil
}

func expectNothing(t *testing.T, ch <-chan *message.Message, d time.Duration) {
	t.Helper()
	select {
	case m, ok := <-ch:
		if ok {
			t.Fatalf("unexpected message %s", m.UUID)
		}
	case <-time.After(d):
	}
}

func waitClosed(t *testing.T, ch <-chan *message.Message) {
	t.Helper()
	select {
	case m, ok := <-ch:
		if ok {
			t.Fatalf("unexpected message %s, want channel closed", m.UUID)
		}
	case <-time.After(waitLong):
		t.Fatal("channel not closed")
	}
}

// waitCtx is a message context that reports when Publish starts waiting for
// room: Publish looks at its message's Done channel only once it is listed
// as a waiting publisher, so waiting is closed by then.
type waitCtx struct {
	context.Context
	once    sync.Once
	waiting chan struct{}
}

func newWaitCtx(parent context.Context) *waitCtx {
	return &waitCtx{Context: parent, waiting: make(chan struct{})}
}

func (c *waitCtx) Done() <-chan struct{} {
	c.once.Do(func() { close(c.waiting) })
	return c.Context.Done()
}

// waitUntilWaiting fails unless Publish of a message with context c is
// waiting for room within waitLong.
func waitUntilWaiting(t *testing.T, c *waitCtx, what string) {
	t.Helper()
	select {
	case <-c.waiting:
	case <-time.After(waitLong):
		t.Fatalf("%s: Publish not waiting for room within %s", what, waitLong)
	}
}

// waitFor fails unless cond holds within waitLong; it looks every millisecond.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(waitLong)
	defer deadline.Stop()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("%s: not within %s", what, waitLong)
		}
	}
}

func TestFanOutToGroups(t *testing.T) {
	b := newBroker(t, memory.Config{})
	ctx := t.Context()
	groups := []string{"billing", "shipping", "analytics"}
	chans := map[string]<-chan *message.Message{}
	for _, g := range groups {
		_, chans[g] = subscribe(t, b, ctx, g, "orders", 0)
	}
	const n = 50
	for i := range n {
		m := newMsg(strconv.Itoa(i), "")
		m.Metadata.Set("k", "v")
		publish(t, b, "orders", m)
	}
	for _, g := range groups {
		seen := map[string]bool{}
		for range n {
			m := receive(t, chans[g])
			if m.Metadata.Get("k") != "v" || string(m.Payload) != m.UUID {
				t.Fatalf("group %s: message %s lost its metadata or payload", g, m.UUID)
			}
			m.Metadata.Set("k", g) // must not leak into other groups
			seen[m.UUID] = true
			m.Ack()
		}
		if len(seen) != n {
			t.Fatalf("group %s got %d distinct messages, want %d", g, len(seen), n)
		}
	}
	if err := b.WaitIdle(ctx, 0); err != nil {
		t.Fatal(err)
	}
}

// TestMetadataIsCopiedPerDelivery: whatever the number of headers, each
// group and each redelivery gets the metadata as published, whatever the
// publisher or an earlier consumer did to its own copy.
func TestMetadataIsCopiedPerDelivery(t *testing.T) {
	for _, headers := range []int{0, 1, 8, 9, 12, 13, 40} {
		t.Run(strconv.Itoa(headers), func(t *testing.T) {
			b := newBroker(t, memory.Config{NackBackoff: time.Millisecond})
			_, a := subscribe(t, b, t.Context(), "a", "md", 1)
			_, c := subscribe(t, b, t.Context(), "c", "md", 1)
			m := newMsg("1", "")
			want := message.Metadata{}
			for i := range headers {
				k, v := "h"+strconv.Itoa(i), strings.Repeat("v", i)
				m.Metadata.Set(k, v)
				want.Set(k, v)
			}
			publish(t, b, "md", m)
			m.Metadata.Set("h0", "changed by the publisher after Publish")
			check := func(got *message.Message) {
				t.Helper()
				if len(got.Metadata) != len(want) {
					t.Fatalf("%d headers, want %d: %v", len(got.Metadata), len(want), got.Metadata)
				}
				for k, v := range want {
					if got.Metadata.Get(k) != v {
						t.Fatalf("header %s = %q, want %q", k, got.Metadata.Get(k), v)
					}
				}
			}
			first := receive(t, a)
			check(first)
			first.Metadata.Set("h0", "changed by group a")
			first.Metadata.Set("extra", "x")
			first.Nack()
			check(receive(t, c))
			again := receive(t, a)
			check(again)
			again.Ack()
		})
	}
}

func TestCompetingConsumersHandleEachMessageOnce(t *testing.T) {
	b := newBroker(t, memory.Config{})
	ctx := t.Context()
	const n, subs = 2000, 4
	var mu sync.Mutex
	count := map[string]int{}
	perSub := make([]int, subs)
	var wg sync.WaitGroup
	for i := range subs {
		_, ch := subscribe(t, b, ctx, "workers", "jobs", 8)
		wg.Go(func() {
			for m := range ch {
				mu.Lock()
				count[m.UUID]++
				perSub[i]++
				mu.Unlock()
				m.Ack()
			}
		})
	}
	for i := range n {
		publish(t, b, "jobs", newMsg(strconv.Itoa(i), ""))
	}
	wctx, cancel := context.WithTimeout(ctx, waitLong)
	defer cancel()
	if err := b.WaitIdle(wctx, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(count) != n {
		t.Fatalf("handled %d distinct messages, want %d", len(count), n)
	}
	for id, c := range count {
		if c != 1 {
			t.Fatalf("message %s handled %d times", id, c)
		}
	}
	t.Logf("messages per subscriber: %v", perSub)
}

// TestOrderPerKey: with Prefetch 16, 4 competing subscribers, handlers running
// concurrently with random delays and random Nacks, messages with one key are
// never in flight together and are acked in publish order.
func TestOrderPerKey(t *testing.T) {
	b := newBroker(t, memory.Config{NackBackoff: time.Millisecond, MaxNackBackoff: 4 * time.Millisecond})
	ctx := t.Context()
	const keys, perKey, subs = 16, 40, 4

	var mu sync.Mutex
	inFlight := map[string]string{} // key -> message id in flight
	nextSeq := map[string]int{}     // key -> next sequence expected to be acked
	var failures []string
	var unkeyed int

	var wg sync.WaitGroup
	for range subs {
		_, ch := subscribe(t, b, ctx, "ordered", "accounts", 16)
		wg.Go(func() {
			var handlers sync.WaitGroup
			defer handlers.Wait()
			for m := range ch {
				handlers.Go(func() { // like the Router: one goroutine per message
					key := m.Metadata.Get(header.Key)
					if key == "" {
						mu.Lock()
						unkeyed++
						mu.Unlock()
						m.Ack()
						return
					}
					seq, _ := strconv.Atoi(m.Metadata.Get("seq"))
					mu.Lock()
					if other, busy := inFlight[key]; busy {
						failures = append(failures, fmt.Sprintf("key %s: %s handed out while %s in flight", key, m.UUID, other))
					}
					if seq != nextSeq[key] {
						failures = append(failures, fmt.Sprintf("key %s: got seq %d, want %d", key, seq, nextSeq[key]))
					}
					inFlight[key] = m.UUID
					mu.Unlock()

					time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
					nack := rand.IntN(10) == 0

					mu.Lock()
					delete(inFlight, key)
					if !nack {
						nextSeq[key]++
					}
					mu.Unlock()
					if nack {
						m.Nack()
					} else {
						m.Ack()
					}
				})
			}
		})
	}

	for i := range perKey {
		for k := range keys {
			m := newMsg(fmt.Sprintf("k%d-%d", k, i), "k"+strconv.Itoa(k))
			m.Metadata.Set("seq", strconv.Itoa(i))
			publish(t, b, "accounts", m, newMsg(fmt.Sprintf("u%d-%d", k, i), ""))
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := b.WaitIdle(wctx, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(failures) > 0 {
		t.Fatalf("%d order violations, first: %v", len(failures), failures[:min(5, len(failures))])
	}
	for k := range keys {
		if got := nextSeq["k"+strconv.Itoa(k)]; got != perKey {
			t.Fatalf("key k%d: %d messages acked, want %d", k, got, perKey)
		}
	}
	if unkeyed != keys*perKey {
		t.Fatalf("unkeyed messages handled %d, want %d", unkeyed, keys*perKey)
	}
}

func TestNackRedeliversWithGrowingBackoff(t *testing.T) {
	const first, limit = 20 * time.Millisecond, 160 * time.Millisecond
	b := newBroker(t, memory.Config{NackBackoff: first, MaxNackBackoff: limit})
	_, ch := subscribe(t, b, t.Context(), "g", "t", 4)
	publish(t, b, "t", newMsg("poison", ""))

	// Nack every delivery for a window: a tight loop would deliver thousands
	// of times; with backoff 20, 40, 80, 160, 160ms... about 6.
	var times []time.Time
	window := time.After(700 * time.Millisecond)
loop:
	for {
		select {
		case m := <-ch:
			times = append(times, time.Now())
			m.Nack()
		case <-window:
			break loop
		}
	}
	if len(times) < 3 || len(times) > 12 {
		t.Fatalf("%d deliveries in the window, want between 3 and 12", len(times))
	}
	want := first
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap < want-time.Millisecond {
			t.Fatalf("redelivery %d came %s after the previous one, want >= %s", i, gap, want)
		}
		want = min(2*want, limit)
	}
	// The message still belongs to the group: ack it and the queue empties.
	m := receive(t, ch)
	m.Ack()
	if err := b.WaitIdle(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
}

func TestPublishBlocksWhenFull(t *testing.T) {
	b := newBroker(t, memory.Config{BufferSize: 4})
	s, err := b.Subscriber("slow", broker.SubscriberOptions{Prefetch: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.(message.SubscribeInitializer).SubscribeInitialize("orders"); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		publish(t, b, "orders", newMsg(strconv.Itoa(i), ""))
	}

	done := make(chan error, 1)
	blocked := newMsg("4", "")
	wctx := newWaitCtx(context.Background())
	blocked.SetContext(wctx)
	go func() { done <- b.Publisher().Publish("orders", blocked) }()
	select {
	case err := <-done:
		t.Fatalf("Publish returned %v with the queue full, want it to block", err)
	case <-wctx.waiting:
	case <-time.After(waitLong):
		t.Fatalf("Publish neither returned nor waited for room within %s", waitLong)
	}
	if d := b.Depth("orders", "slow"); d != 4 {
		t.Fatalf("Depth = %d, want 4", d)
	}

	// A message whose context is done gives up.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m := newMsg("x", "")
	m.SetContext(ctx)
	if err := b.Publisher().Publish("orders", m); !errors.Is(err, context.Canceled) {
		t.Fatalf("Publish with a cancelled context: %v, want context.Canceled", err)
	}

	// Consuming one makes room: the blocked Publish completes.
	ch, err := s.Subscribe(t.Context(), "orders")
	if err != nil {
		t.Fatal(err)
	}
	receive(t, ch).Ack()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitLong):
		t.Fatal("Publish still blocked after room was made")
	}
	for i := 1; i <= 4; i++ {
		if m := receive(t, ch); m.UUID != strconv.Itoa(i) {
			t.Fatalf("got %s, want %d", m.UUID, i)
		} else {
			m.Ack()
		}
	}
}

// TestMemoryBoundedWhenPublishersOutrunConsumers: a fast publisher and a slow
// consumer never hold more than BufferSize queued plus Prefetch in flight.
func TestMemoryBoundedWhenPublishersOutrunConsumers(t *testing.T) {
	const size, prefetch, n = 8, 2, 300
	b := newBroker(t, memory.Config{BufferSize: size})
	_, ch := subscribe(t, b, t.Context(), "slow", "firehose", prefetch)
	var wg sync.WaitGroup
	wg.Go(func() {
		for range n {
			m := <-ch
			time.Sleep(50 * time.Microsecond)
			m.Ack()
		}
	})
	maxDepth := 0
	for i := range n {
		publish(t, b, "firehose", newMsg(strconv.Itoa(i), ""))
		maxDepth = max(maxDepth, b.Depth("firehose", "slow"))
	}
	wg.Wait()
	if maxDepth > size+prefetch {
		t.Fatalf("depth reached %d, want <= %d", maxDepth, size+prefetch)
	}
}

// TestManyBlockedPublishersAllGetRoom: with far more publishers than room,
// each hand-out wakes one waiting publisher (not all); publishers whose
// context ends while they wait give up without taking a wake-up from the
// others, so every other message is delivered to every group, exactly once.
func TestManyBlockedPublishersAllGetRoom(t *testing.T) {
	const publishers, perPublisher = 100, 20
	b := newBroker(t, memory.Config{BufferSize: 2})
	groups := []string{"a", "b"}
	chs := make([]<-chan *message.Message, len(groups))
	for i, g := range groups {
		_, chs[i] = subscribe(t, b, t.Context(), g, "crowd", 1)
	}
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		published = map[string]bool{}
	)
	for p := range publishers {
		wg.Go(func() {
			pub := b.Publisher()
			for i := range perPublisher {
				id := fmt.Sprintf("%d-%d", p, i)
				m := newMsg(id, "")
				if (p+i)%7 == 0 { // gives up while waiting, or before
					ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rand.IntN(200))*time.Microsecond)
					defer cancel()
					m.SetContext(ctx)
				}
				err := pub.Publish("crowd", m)
				if err != nil && !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("Publish %s: %v", id, err)
					return
				}
				if err == nil {
					mu.Lock()
					published[id] = true
					mu.Unlock()
				}
			}
		})
	}
	got := make([]map[string]int, len(groups))
	var cwg sync.WaitGroup
	stop := make(chan struct{})
	for i := range groups {
		got[i] = map[string]int{}
		cwg.Go(func() {
			for {
				select {
				case m := <-chs[i]:
					got[i][m.UUID]++
					m.Ack()
				case <-stop:
					return
				}
			}
		})
	}
	wait := make(chan struct{})
	go func() { wg.Wait(); close(wait) }()
	select {
	case <-wait:
	case <-time.After(waitLong):
		t.Fatal("publishers still blocked: a wake-up was lost")
	}
	waitFor(t, "every published message acked by both groups", func() bool {
		return b.Depth("crowd", "a")+b.Depth("crowd", "b") == 0
	})
	close(stop)
	cwg.Wait()
	for i, g := range groups {
		if len(got[i]) != len(published) {
			t.Errorf("group %s got %d distinct messages, want %d", g, len(got[i]), len(published))
		}
		for id, n := range got[i] {
			if !published[id] || n != 1 {
				t.Errorf("group %s got %s %d times (published: %v)", g, id, n, published[id])
			}
		}
	}
}

// TestWakeUpPassesOnWhenWokenPublisherGivesUp: a waiting publisher that is
// handed room just as its context ends passes the room on to the next one.
func TestWakeUpPassesOnWhenWokenPublisherGivesUp(t *testing.T) {
	b := newBroker(t, memory.Config{BufferSize: 1})
	_, ch := subscribe(t, b, t.Context(), "g", "race", 1)
	publish(t, b, "race", newMsg("first", "")) // handed out, not acked
	held := receive(t, ch)
	for i := range 200 {
		publish(t, b, "race", newMsg(fmt.Sprintf("fill-%d", i), "")) // the queue is full
		ctx, cancel := context.WithCancel(context.Background())
		qctx, sctx := newWaitCtx(ctx), newWaitCtx(context.Background())
		quitter, stayer := make(chan error, 1), make(chan error, 1)
		go func() {
			m := newMsg(fmt.Sprintf("quitter-%d", i), "")
			m.SetContext(qctx)
			quitter <- b.Publisher().Publish("race", m)
		}()
		go func() {
			m := newMsg(fmt.Sprintf("stayer-%d", i), "")
			m.SetContext(sctx)
			stayer <- b.Publisher().Publish("race", m)
		}()
		waitUntilWaiting(t, qctx, "quitter")
		waitUntilWaiting(t, sctx, "stayer")
		go cancel()
		held.Ack() // hands out the fill message: room for one
		held = receive(t, ch)
		var (
			err  error
			rest chan error
		)
		select {
		case err = <-quitter:
			rest = stayer
		case err = <-stayer:
			rest = quitter
		case <-time.After(waitLong):
			t.Fatal("room made, but no waiting publisher got it")
		}
		if err == nil { // one of them took the room: make room for the other
			held.Ack()
			held = receive(t, ch)
		}
		select {
		case <-rest:
		case <-time.After(waitLong):
			t.Fatalf("iteration %d: a publisher is still blocked with room in the queue", i)
		}
		// Drain so that the next iteration starts with one held and the queue empty.
		for b.Depth("race", "g") > 1 {
			held.Ack()
			held = receive(t, ch)
		}
	}
	held.Ack()
}

func TestPublishBlockedFailsOnClose(t *testing.T) {
	b, err := memory.New(memory.Config{BufferSize: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := b.Subscriber("g", broker.SubscriberOptions{})
	_ = s.(message.SubscribeInitializer).SubscribeInitialize("orders")
	publish(t, b, "orders", newMsg("1", ""))
	done := make(chan error, 1)
	blocked, wctx := newMsg("2", ""), newWaitCtx(context.Background())
	blocked.SetContext(wctx)
	go func() { done <- b.Publisher().Publish("orders", blocked) }()
	waitUntilWaiting(t, wctx, "with the queue full")
	_ = b.Close()
	select {
	case err = <-done:
	case <-time.After(waitLong):
		t.Fatal("Publish still blocked after Close")
	}
	if !errors.Is(err, broker.ErrClosed) || !strings.HasPrefix(err.Error(), `memory: publish to "orders"`) {
		t.Fatalf("Publish after Close: %v, want memory: publish to \"orders\": ...: broker: closed", err)
	}
	if err := b.Publisher().Publish("orders", newMsg("3", "")); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("Publish on closed broker: %v", err)
	}
}

func TestDelayRedeliversOnlyToTargetGroup(t *testing.T) {
	b := newBroker(t, memory.Config{})
	ctx := t.Context()
	_, retry := subscribe(t, b, ctx, "retrying", "orders", 0)
	_, other := subscribe(t, b, ctx, "other", "orders", 0)

	const delay = 80 * time.Millisecond
	start := time.Now()
	msg := newMsg("again", "order-1")
	msg.Metadata.Set(header.Attempt, "1")
	if err := b.Delay(ctx, "orders", "retrying", msg, delay); err != nil {
		t.Fatal(err)
	}
	if d := b.Depth("orders", "retrying"); d != 1 {
		t.Fatalf("Depth while delayed = %d, want 1", d)
	}
	if b.Idle() {
		t.Fatal("Idle with a delayed message")
	}
	var delayed int
	for _, st := range b.Stats() {
		if st.Topic == "orders" && st.Group == "retrying" {
			delayed = st.Delayed
		}
	}
	if delayed != 1 {
		t.Fatalf("Stats: %+v, want 1 delayed for orders/retrying", b.Stats())
	}
	m := receive(t, retry)
	if waited := time.Since(start); waited < delay {
		t.Fatalf("delivered after %s, want >= %s", waited, delay)
	}
	if m.UUID != "again" || m.Metadata.Get(header.Attempt) != "1" || m.Metadata.Get(header.Key) != "order-1" {
		t.Fatalf("delivered %s with metadata %v", m.UUID, m.Metadata)
	}
	m.Ack()
	expectNothing(t, other, 50*time.Millisecond)
	if d := b.Depth("orders", "other"); d != 0 {
		t.Fatalf("other group Depth = %d, want 0", d)
	}
}

func TestAckAfterSubscribeCtxCancel(t *testing.T) {
	b := newBroker(t, memory.Config{})
	ctx, cancel := context.WithCancel(t.Context())
	s, ch := subscribe(t, b, ctx, "g", "t", 1)
	for i := range 3 {
		publish(t, b, "t", newMsg(strconv.Itoa(i), ""))
	}
	m := receive(t, ch)
	cancel()
	waitClosed(t, ch)
	if m.Context().Err() != nil {
		t.Fatal("message context cancelled with the Subscribe context; in-flight work must be able to finish")
	}
	if !m.Ack() {
		t.Fatal("Ack failed")
	}
	select {
	case <-m.Context().Done():
	case <-time.After(waitLong):
		t.Fatal("message context not cancelled after Ack")
	}
	// The ack counted; the two never handed out stay queued for the group.
	waitFor(t, "Depth 2 after the ack", func() bool { return b.Depth("t", "g") == 2 })
	ch2, err := s.Subscribe(t.Context(), "t")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1", "2"} {
		if m := receive(t, ch2); m.UUID != want {
			t.Fatalf("got %s, want %s", m.UUID, want)
		} else {
			m.Ack()
		}
	}
}

func TestSubscriberCloseRequeuesInFlight(t *testing.T) {
	b := newBroker(t, memory.Config{})
	s1, ch1 := subscribe(t, b, t.Context(), "g", "t", 4)
	publish(t, b, "t", newMsg("a", "k"), newMsg("b", "k"))
	m := receive(t, ch1)
	if m.UUID != "a" {
		t.Fatalf("got %s, want a", m.UUID)
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, ch1)
	if m.Context().Err() == nil {
		t.Fatal("message context not cancelled by Close")
	}
	_, ch2 := subscribe(t, b, t.Context(), "g", "t", 4)
	for _, want := range []string{"a", "b"} {
		m := receive(t, ch2)
		if m.UUID != want {
			t.Fatalf("got %s, want %s (requeued message first, key order kept)", m.UUID, want)
		}
		m.Ack()
	}
	if err := s1.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
}

func TestBacklogGoesToFirstGroup(t *testing.T) {
	b := newBroker(t, memory.Config{BufferSize: 3})
	for i := range 5 { // never blocks: the oldest are dropped beyond BufferSize
		publish(t, b, "early", newMsg(strconv.Itoa(i), ""))
	}
	if !b.Idle() {
		t.Fatal("backlog counted by Idle")
	}
	_, first := subscribe(t, b, t.Context(), "first", "early", 1) // one slot: unkeyed order holds
	_, second := subscribe(t, b, t.Context(), "second", "early", 0)
	for _, want := range []string{"2", "3", "4"} {
		if m := receive(t, first); m.UUID != want {
			t.Fatalf("got %s, want %s", m.UUID, want)
		} else {
			m.Ack()
		}
	}
	expectNothing(t, second, 30*time.Millisecond)
}

func TestCapabilitiesAndErrors(t *testing.T) {
	b := newBroker(t, memory.Config{})
	var _ broker.Broker = b
	var _ broker.Delayer = b
	if b.Name() != "memory" {
		t.Fatalf("Name = %q", b.Name())
	}
	c := b.Capabilities()
	if c.Durable || !c.DelayedRedelivery || c.Ordering != broker.OrderPerKey {
		t.Fatalf("Capabilities = %+v", c)
	}
	if _, err := b.Subscriber("", broker.SubscriberOptions{}); !errors.Is(err, memory.ErrInvalidGroup) {
		t.Fatalf("empty group: %v", err)
	}
	p := b.Publisher()
	_ = p.Close()
	if err := p.Publish("t", newMsg("1", "")); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("Publish on closed publisher: %v", err)
	}
	if err := b.Publisher().Publish("t", newMsg("1", "")); err != nil {
		t.Fatalf("another publisher handle: %v", err)
	}
	_ = b.Close()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Subscriber("g", broker.SubscriberOptions{}); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("Subscriber after Close: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  memory.Config
		want []string
	}{
		{"zero is valid", memory.Config{}, nil},
		{"all set", memory.Config{BufferSize: 10, Prefetch: 2, NackBackoff: time.Millisecond, MaxNackBackoff: time.Second}, nil},
		{"negatives", memory.Config{BufferSize: -1, Prefetch: -2, NackBackoff: -1, MaxNackBackoff: -1},
			[]string{"broker.memory.buffer_size: -1", "broker.memory.prefetch: -2", "broker.memory.nack_backoff: -1ns", "broker.memory.max_nack_backoff: -1ns"}},
		{"max below first", memory.Config{NackBackoff: time.Second, MaxNackBackoff: time.Millisecond},
			[]string{"broker.memory.max_nack_backoff: 1ms, want >= broker.memory.nack_backoff"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if _, err := memory.New(tc.cfg, nil); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if _, err := memory.New(tc.cfg, nil); err == nil || !strings.HasPrefix(err.Error(), "memory: invalid config") {
				t.Errorf("New: %v", err)
			}
		})
	}
	// A large first backoff without a max raises the default max to it.
	if _, err := memory.New(memory.Config{NackBackoff: 5 * time.Second}, nil); err != nil {
		t.Fatal(err)
	}
}

type ctxKey struct{}

// TestMessageContext: a delivered message's context carries the Subscribe
// context's values, and it and contexts derived from it end on Ack.
func TestMessageContext(t *testing.T) {
	b := newBroker(t, memory.Config{})
	ctx := context.WithValue(t.Context(), ctxKey{}, "v")
	_, ch := subscribe(t, b, ctx, "g", "t", 0)
	publish(t, b, "t", newMsg("1", ""))
	m := receive(t, ch)
	if got := m.Context().Value(ctxKey{}); got != "v" {
		t.Fatalf("Value = %v, want v", got)
	}
	child, cancel := context.WithTimeout(m.Context(), time.Hour)
	defer cancel()
	ran := make(chan struct{})
	stop := context.AfterFunc(m.Context(), func() { close(ran) })
	stopped := context.AfterFunc(m.Context(), func() { t.Error("stopped AfterFunc ran") })
	if !stopped() {
		t.Fatal("stop returned false before cancellation")
	}
	if m.Context().Err() != nil || child.Err() != nil {
		t.Fatal("context done before Ack")
	}
	m.Ack()
	for _, c := range []<-chan struct{}{m.Context().Done(), child.Done(), ran} {
		select {
		case <-c:
		case <-time.After(waitLong):
			t.Fatal("not done after Ack")
		}
	}
	if !errors.Is(child.Err(), context.Canceled) || stop() {
		t.Fatalf("child.Err() = %v, stop after run = true", child.Err())
	}
}
