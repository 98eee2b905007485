package service_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/retry"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// seqEvent carries a key and its position among the key's events.
type seqEvent struct {
	Key string `json:"key"`
	Seq int    `json:"seq"`
}

func (seqEvent) EventType() string  { return "test.seq" }
func (seqEvent) EventVersion() int  { return 1 }
func (seqEvent) EventTopic() string { return "seq" }
func (e seqEvent) EventKey() string { return e.Key }

// publishSeq publishes n events for each key, key by key interleaved.
func publishSeq(t *testing.T, svc *service.Service, keys []string, n int) {
	t.Helper()
	for i := range n {
		for _, k := range keys {
			if err := svc.Publish(context.Background(), seqEvent{Key: k, Seq: i}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// keyLog records, per key, the order events were handled in and whether
// two of a key ever ran at once.
type keyLog struct {
	mu       sync.Mutex
	inFlight map[string]int
	seen     map[string][]int
	overlap  []string
	total    atomic.Int64
	all      chan struct{}
	want     int64
}

func newKeyLog(want int) *keyLog {
	return &keyLog{inFlight: map[string]int{}, seen: map[string][]int{}, all: make(chan struct{}), want: int64(want)}
}

func (l *keyLog) begin(e seqEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inFlight[e.Key]++
	if l.inFlight[e.Key] > 1 {
		l.overlap = append(l.overlap, fmt.Sprintf("%s#%d", e.Key, e.Seq))
	}
}

// end records a handled event; ok false means the attempt failed.
func (l *keyLog) end(e seqEvent, ok bool) {
	l.mu.Lock()
	l.inFlight[e.Key]--
	if ok {
		l.seen[e.Key] = append(l.seen[e.Key], e.Seq)
	}
	l.mu.Unlock()
	if ok && l.total.Add(1) == l.want {
		close(l.all)
	}
}

// check fails t unless every key was handled once per event, in order, never
// two at once.
func (l *keyLog) check(t *testing.T, keys []string, n int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.overlap) > 0 {
		t.Errorf("messages of one key handled concurrently: %v", l.overlap)
	}
	for _, k := range keys {
		got := l.seen[k]
		ok := len(got) == n
		for i := 0; ok && i < n; i++ {
			ok = got[i] == i
		}
		if !ok {
			t.Errorf("key %s handled in order %v, want 0..%d once each", k, got, n-1)
		}
	}
}

// TestBlockedKeyHoldsUpNothingElse: a broker that hands out everything at
// once, several messages of each key among them. While the first message of
// key "slow" is stuck in its handler, the next "slow" message must not start
// (on any worker) and every other key must be handled.
func TestBlockedKeyHoldsUpNothingElse(t *testing.T) {
	b := newFakeBroker(t)
	svc := service.New(b, service.WithClock(immediateClock{}))
	keys := []string{"slow", "a", "b", "c", "d", "e", "f", "g", "h", "i"}
	const n = 20
	log := newKeyLog(len(keys) * n)
	others := make(chan struct{})
	var othersDone atomic.Int64
	err := service.Handle(svc, "seq", func(ctx context.Context, e seqEvent) error {
		log.begin(e)
		defer log.end(e, true)
		if e.Key == "slow" && e.Seq == 0 {
			select {
			case <-others: // every other key went through meanwhile
			case <-time.After(guard):
				t.Error("other keys were held up behind the blocked key")
			}
			return nil
		}
		if e.Key != "slow" && othersDone.Add(1) == int64((len(keys)-1)*n) {
			close(others)
		}
		return nil
	}, service.Concurrency(8))
	if err != nil {
		t.Fatal(err)
	}
	start(t, svc)
	publishSeq(t, svc, keys, n)
	recv(t, log.all, "every message handled")
	log.check(t, keys, n)
}

// TestRetryingKeyGivesUpItsSlot: with one worker, a key whose handler is
// waiting out a retry backoff does not hold the worker: other keys are
// handled during the wait, and the retried key keeps its own order.
func TestRetryingKeyGivesUpItsSlot(t *testing.T) {
	b := newFakeBroker(t)
	others := make(chan struct{})
	clock := &gateClock{gate: others}
	svc := service.New(b, service.WithClock(clock))
	keys := []string{"retry", "a", "b", "c"}
	const n = 5
	log := newKeyLog(len(keys) * n)
	var othersDone atomic.Int64
	var failedOnce atomic.Bool
	err := service.Handle(svc, "seq", func(ctx context.Context, e seqEvent) error {
		log.begin(e)
		if e.Key == "retry" && e.Seq == 0 && failedOnce.CompareAndSwap(false, true) {
			log.end(e, false)
			return errors.New("transient")
		}
		log.end(e, true)
		if e.Key != "retry" && othersDone.Add(1) == int64((len(keys)-1)*n) {
			close(others)
		}
		return nil
	}, service.Concurrency(1), service.WithPolicy(service.Policy{OrderOnRetry: service.OrderKeep}))
	if err != nil {
		t.Fatal(err)
	}
	start(t, svc)
	publishSeq(t, svc, keys, n)
	recv(t, log.all, "every message handled")
	log.check(t, keys, n)
	if clock.slept.Load() == 0 {
		t.Error("the retry never waited: the test did not test a wait")
	}
}

// gateClock's Sleep returns once gate is closed (or ctx is done).
type gateClock struct {
	gate  chan struct{}
	slept atomic.Int64
}

func (c *gateClock) Now() time.Time { return time.Now() }
func (c *gateClock) Sleep(ctx context.Context, _ time.Duration) error {
	c.slept.Add(1)
	select {
	case <-c.gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(guard):
		return errors.New("gateClock: gate never opened")
	}
}

// TestNackKeepsKeyOrder: the first message of a key fails and cannot be
// dead-lettered (the dead-letter publish fails once), so it is nacked while
// later messages of its key are already buffered. None of them may be
// handled before it.
func TestNackKeepsKeyOrder(t *testing.T) {
	b := newFakeBroker(t)
	var dlFailures atomic.Int64
	b.publishErr = func(topic string, _ *message.Message) error {
		if topic == service.DeadLetterTopicFor("seq") && dlFailures.Add(1) == 1 {
			return errFake
		}
		return nil
	}
	svc := service.New(b, service.WithClock(immediateClock{}))
	keys := []string{"k", "other"}
	const n = 10
	log := newKeyLog(len(keys) * n)
	var rejected atomic.Bool
	release := make(chan struct{})
	err := service.Handle(svc, "seq", func(ctx context.Context, e seqEvent) error {
		log.begin(e)
		if e.Key == "k" && e.Seq == 0 && rejected.CompareAndSwap(false, true) {
			// Hold on until the rest of the key is in the consumer's hands.
			<-release
			log.end(e, false)
			return failure.Permanent(errors.New("rejected once"))
		}
		log.end(e, true)
		return nil
	}, service.Concurrency(4))
	if err != nil {
		t.Fatal(err)
	}
	start(t, svc)
	publishSeq(t, svc, keys, n)
	close(release)
	recv(t, log.all, "every message handled")
	log.check(t, keys, n)
	if _, nacks := b.settled(); nacks == 0 {
		t.Error("nothing was nacked: the test did not test a nack")
	}
}

// TestStuckDeadLetterPublishIsBoundedAndNacked: a dead-letter publish that
// never returns by itself is given up at its deadline, the message is
// nacked (not lost), the subscription reports the failure path failing, and
// shutdown is not held up by it.
func TestStuckDeadLetterPublishIsBoundedAndNacked(t *testing.T) {
	b := newFakeBroker(t)
	b.nackDelay = 20 * time.Millisecond
	b.publishErr = func(topic string, m *message.Message) error {
		if topic == service.DeadLetterTopicFor("seq") {
			<-m.Context().Done() // a full queue or a broker that never answers
			return m.Context().Err()
		}
		return nil
	}
	svc := service.New(b, service.WithClock(immediateClock{}), service.WithFailurePathTimeout(20*time.Millisecond))
	err := service.Handle(svc, "seq", func(ctx context.Context, e seqEvent) error {
		return failure.Permanent(errors.New("always"))
	}, service.Retry(retry.Policy{MaxAttempts: 1}))
	if err != nil {
		t.Fatal(err)
	}
	stop := start(t, svc)
	if err := svc.Publish(context.Background(), seqEvent{Key: "k"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(guard)
	for {
		h := svc.Health()
		if len(h) == 1 && !h[0].Healthy {
			if h[0].LastError == "" {
				t.Error("unhealthy without the failure-path error")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("health = %+v, want the subscription unhealthy after repeated dead-letter failures", h)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, with a deadline
	}
	// The fake records settlements asynchronously: wait for the fifth nack.
	for deadline := time.Now().Add(guard); ; time.Sleep(2 * time.Millisecond) {
		acks, nacks := b.settled()
		if acks != 0 {
			t.Fatalf("acked %d times: the message must be nacked each time, never acked", acks)
		}
		if nacks >= 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d nacks, want the message nacked each time it could not be dead-lettered", nacks)
		}
	}
	if err := stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
}

// TestOuterPanicIsDeadLettered: a panic in middleware outside the handler's
// own recovery does not crash the process; the message is dead-lettered
// with reason panic and the consumer goes on.
func TestOuterPanicIsDeadLettered(t *testing.T) {
	b := newFakeBroker(t)
	boom := func(next middleware.Handler) middleware.Handler {
		return func(ctx context.Context, d *middleware.Delivery) error {
			if d.Envelope.Key == "boom" {
				panic("middleware bug")
			}
			return next(ctx, d)
		}
	}
	svc := service.New(b, service.WithClock(immediateClock{}), service.WithMiddleware(boom))
	handled := make(chan string, 1)
	err := service.Handle(svc, "seq", func(ctx context.Context, e seqEvent) error {
		handled <- e.Key
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	start(t, svc)
	for _, k := range []string{"boom", "fine"} {
		if err := svc.Publish(context.Background(), seqEvent{Key: k}); err != nil {
			t.Fatal(err)
		}
	}
	if k := recv(t, handled, "the next message handled"); k != "fine" {
		t.Errorf("handled %q, want fine", k)
	}
	dl := waitPublished(t, b, service.DeadLetterTopicFor("seq"), 1)
	if r := dl[0].Metadata["sy_dlq_reason"]; r != string(failure.ReasonPanic) {
		t.Errorf("dead-letter reason %q, want panic", r)
	}
}

// waitPublished waits until topic has at least n messages and returns them.
func waitPublished(t *testing.T, b *fakeBroker, topic string, n int) []*message.Message {
	t.Helper()
	deadline := time.Now().Add(guard)
	for {
		if got := b.publishedTo(topic); len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages on %q, want %d", len(b.publishedTo(topic)), topic, n)
		}
		time.Sleep(2 * time.Millisecond) // polling a condition, with a deadline
	}
}

// TestShutdownEndsRetryWaits: a message waiting out a long retry backoff in
// place does not hold shutdown up until the shutdown timeout: the wait ends
// at once, the message is nacked for redelivery, not dead-lettered.
func TestShutdownEndsRetryWaits(t *testing.T) {
	b := newFakeBroker(t)
	svc := service.New(b, service.WithShutdownTimeout(time.Hour))
	failed := make(chan struct{}, 1)
	err := service.Handle(svc, "seq", func(ctx context.Context, e seqEvent) error {
		select {
		case failed <- struct{}{}:
		default:
		}
		return errors.New("downstream unavailable")
	}, service.Retry(retry.Policy{InitialInterval: time.Hour, MaxInterval: time.Hour}),
		service.WithPolicy(service.Policy{OrderOnRetry: service.OrderKeep}))
	if err != nil {
		t.Fatal(err)
	}
	stop := start(t, svc)
	if err := svc.Publish(context.Background(), seqEvent{Key: "k"}); err != nil {
		t.Fatal(err)
	}
	recv(t, failed, "the first attempt")
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	if err := recv(t, stopped, "Run to return while a message waits to retry"); err != nil {
		t.Errorf("Run: %v", err)
	}
	if dl := b.publishedTo(service.DeadLetterTopicFor("seq")); len(dl) != 0 {
		t.Errorf("%d dead letters: a shutdown must not give a message up", len(dl))
	}
	waitSettled(t, b, 0, 1)
}

// waitSettled waits until the broker saw acks acks and nacks nacks.
func waitSettled(t *testing.T, b *fakeBroker, acks, nacks int) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for {
		a, n := b.settled()
		if a == acks && n == nacks {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("acks, nacks = %d, %d; want %d, %d", a, n, acks, nacks)
		}
		time.Sleep(2 * time.Millisecond) // polling a condition, with a deadline
	}
}
