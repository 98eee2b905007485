package service_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/retry"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// tick is a keyed, numbered event for the batch tests.
type tick struct {
	Key string `json:"key"`
	Seq int    `json:"seq"`
}

func (tick) EventType() string  { return "batch.tick" }
func (tick) EventVersion() int  { return 1 }
func (t tick) EventKey() string { return t.Key }

// batchLog records what a batch handler saw: every batch, every attempt
// per sequence number, and the successes per key in order.
type batchLog struct {
	mu       sync.Mutex
	batches  [][]int
	attempts map[int]int
	okByKey  map[string][]int
	ok       int
	changed  chan struct{}
}

func newBatchLog() *batchLog {
	return &batchLog{attempts: map[int]int{}, okByKey: map[string][]int{}, changed: make(chan struct{})}
}

// handler returns a batch handler that fails the items fail says, records
// everything, and acks the rest.
func (l *batchLog) handler(fail func(seq, attempt int) error) func(context.Context, []service.Item[tick]) error {
	return func(_ context.Context, items []service.Item[tick]) error {
		l.mu.Lock()
		defer l.mu.Unlock()
		var seqs []int
		var failed service.BatchErrors
		for _, it := range items {
			seqs = append(seqs, it.Event.Seq)
			l.attempts[it.Event.Seq]++
			if err := fail(it.Event.Seq, l.attempts[it.Event.Seq]); err != nil {
				if failed == nil {
					failed = service.BatchErrors{}
				}
				failed[it.ID] = err
				continue
			}
			l.okByKey[it.Key] = append(l.okByKey[it.Key], it.Event.Seq)
			l.ok++
		}
		l.batches = append(l.batches, seqs)
		close(l.changed)
		l.changed = make(chan struct{})
		return failed
	}
}

func (l *batchLog) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(guard)
	for {
		l.mu.Lock()
		ok, ch := cond(), l.changed
		l.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			l.mu.Lock()
			defer l.mu.Unlock()
			t.Fatalf("timed out waiting for %s; batches %v", what, l.batches)
		}
	}
}

func publishTicks(t *testing.T, svc *service.Service, from, n int, key func(i int) string) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := svc.Publish(context.Background(), tick{Key: key(i), Seq: i}); err != nil {
			t.Fatal(err)
		}
	}
}

func distinctKeys(i int) string { return fmt.Sprintf("k%d", i) }

// A backlog of 30 is handed over in full batches of 10 at once: the
// window (a minute, longer than the test may take) is never waited for.
func TestHandleBatchFillsUpToSize(t *testing.T) {
	b := newBroker(t)
	svc := service.New(b)
	l := newBatchLog()
	if err := service.HandleBatch(svc, "sink", l.handler(func(int, int) error { return nil }),
		service.Concurrency(1), service.BatchSize(10), service.BatchWindow(time.Minute)); err != nil {
		t.Fatal(err)
	}
	publishTicks(t, svc, 0, 30, distinctKeys) // kept in the topic's backlog until Run subscribes
	start(t, svc)
	waitFor(t, "30 handled", func() bool { return svc.Stats().Handled == 30 })
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, batch := range l.batches {
		if len(batch) != 10 {
			t.Errorf("batch sizes %v, want three batches of 10", l.batches)
			break
		}
	}
	if st := svc.Stats(); st.Batches != 3 || st.Batched != 30 || st.Handled != 30 {
		t.Errorf("stats %+v, want 3 batches of 30 messages, 30 handled", st)
	}
}

// Fewer messages than a batch holds are handed over once the window
// passed since the first of them.
func TestHandleBatchFlushesOnWindow(t *testing.T) {
	b := newBroker(t)
	svc := service.New(b)
	l := newBatchLog()
	const window = 100 * time.Millisecond
	if err := service.HandleBatch(svc, "sink", l.handler(func(int, int) error { return nil }),
		service.BatchSize(1000), service.BatchWindow(window)); err != nil {
		t.Fatal(err)
	}
	start(t, svc)
	began := time.Now()
	publishTicks(t, svc, 0, 3, distinctKeys)
	l.waitFor(t, "3 handled", func() bool { return l.ok == 3 })
	if took := time.Since(began); took < window {
		t.Errorf("handed over after %s, before the %s window passed", took, window)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.batches) != 1 || len(l.batches[0]) != 3 {
		t.Errorf("batches %v, want one batch of 3", l.batches)
	}
}

// A partial failure retries only the failed messages, each in a later
// batch; one that keeps failing is dead-lettered after its attempts with
// the usual metadata, its neighbours in the batch acked once.
func TestHandleBatchPartialFailureRetriesOnlyTheFailed(t *testing.T) {
	b := newBroker(t)
	svc := service.New(b, service.WithClock(immediateClock{}))
	l := newBatchLog()
	const n = 20
	transient := map[int]bool{3: true, 8: true, 15: true}
	const poison = 11
	fail := func(seq, attempt int) error {
		switch {
		case seq == poison:
			return fmt.Errorf("tick %d: downstream refused it", seq)
		case transient[seq] && attempt == 1:
			return errors.New("downstream busy")
		}
		return nil
	}
	dl := probe(t, b, "inspector", "sink.dead_letter")
	if err := service.HandleBatch(svc, "sink", l.handler(fail),
		service.BatchSize(n), service.BatchWindow(50*time.Millisecond),
		service.Retry(retry.Policy{MaxAttempts: 3, InitialInterval: time.Millisecond, Jitter: retry.NoJitter})); err != nil {
		t.Fatal(err)
	}
	start(t, svc)
	publishTicks(t, svc, 0, n, distinctKeys)
	m := recv(t, dl, "the poison tick's dead letter")
	waitFor(t, "every other tick handled", func() bool { st := svc.Stats(); return st.Handled == n-1 && st.DeadLettered == 1 })

	l.mu.Lock()
	defer l.mu.Unlock()
	for seq := range n {
		want := 1
		switch {
		case seq == poison:
			want = 3
		case transient[seq]:
			want = 2
		}
		if got := l.attempts[seq]; got != want {
			t.Errorf("tick %d handed to the handler %d times, want %d (batches %v)", seq, got, want, l.batches)
		}
	}
	if !strings.Contains(string(m.Payload), fmt.Sprintf(`"seq":%d`, poison)) {
		t.Errorf("dead letter %s, want tick %d", m.Payload, poison)
	}
	for k, want := range map[string]string{
		header.DeadLetterReason:   string(failure.ReasonRetriesExhausted),
		header.DeadLetterHandler:  "sink",
		header.DeadLetterAttempts: "3",
		header.DeadLetterTopic:    "batch.tick",
	} {
		if got := m.Metadata[k]; got != want {
			t.Errorf("dead letter %s = %q, want %q", k, got, want)
		}
	}
	if !strings.Contains(m.Metadata[header.DeadLetterError], "downstream refused it") {
		t.Errorf("dead letter error %q, want the item's error", m.Metadata[header.DeadLetterError])
	}
	if st := svc.Stats(); st.Handled != n-1 || st.DeadLettered != 1 || st.Retried != 3+2 {
		t.Errorf("stats %+v, want %d handled, 1 dead-lettered, 5 retries", st, n-1)
	}
}

// A key's later messages wait behind its retried one: the successes of a
// key come in publish order, and no batch holds two messages of a key,
// even from a broker that hands out several messages of a key at once.
func TestHandleBatchKeepsKeyOrderAcrossARetry(t *testing.T) {
	b := newFakeBroker(t)
	svc := service.New(b, service.WithClock(immediateClock{}))
	l := newBatchLog()
	const n = 40
	key := func(i int) string { return fmt.Sprintf("k%d", i%4) }
	fail := func(seq, attempt int) error {
		if seq%5 == 1 && attempt < 3 {
			return errors.New("not yet")
		}
		return nil
	}
	if err := service.HandleBatch(svc, "sink", l.handler(fail),
		service.BatchSize(8), service.BatchWindow(20*time.Millisecond),
		service.Retry(retry.Policy{MaxAttempts: 5, InitialInterval: time.Millisecond, Jitter: retry.NoJitter})); err != nil {
		t.Fatal(err)
	}
	start(t, svc)
	publishTicks(t, svc, 0, n, key)
	l.waitFor(t, "every tick handled", func() bool { return l.ok == n })
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, seqs := range l.okByKey {
		if !slices.IsSorted(seqs) {
			t.Errorf("key %s handled in order %v, want publish order", k, seqs)
		}
	}
	for _, batch := range l.batches {
		keys := map[string]bool{}
		for _, seq := range batch {
			if keys[key(seq)] {
				t.Errorf("batch %v holds two messages of key %s", batch, key(seq))
			}
			keys[key(seq)] = true
		}
	}
}

// Returning an error that is not a BatchErrors fails every item, and an
// outcome for an id that is not in the batch fails every item too, rather
// than acking the items the handler meant to fail.
func TestHandleBatchWholeBatchFailures(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fail    func([]service.Item[tick]) error
		errText string
	}{
		{"plain error", func([]service.Item[tick]) error { return errors.New("database down") }, "database down"},
		{"unknown id", func(items []service.Item[tick]) error {
			return service.BatchErrors{fmt.Sprint(items[0].Event.Seq): errors.New("meant tick 0")}
		}, "not in its batch"},
		{"panic", func([]service.Item[tick]) error { panic("boom") }, "panic: boom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBroker(t)
			svc := service.New(b, service.WithClock(immediateClock{}))
			dl := probe(t, b, "inspector", "sink.dead_letter")
			var mu sync.Mutex
			calls := 0
			if err := service.HandleBatch(svc, "sink", func(_ context.Context, items []service.Item[tick]) error {
				mu.Lock()
				calls++
				mu.Unlock()
				return tc.fail(items)
			}, service.BatchSize(3), service.BatchWindow(time.Minute),
				service.Retry(retry.Policy{MaxAttempts: 2, InitialInterval: time.Millisecond, Jitter: retry.NoJitter})); err != nil {
				t.Fatal(err)
			}
			start(t, svc)
			publishTicks(t, svc, 0, 3, distinctKeys)
			for range 3 {
				m := recv(t, dl, "a dead letter")
				if !strings.Contains(m.Metadata[header.DeadLetterError], tc.errText) {
					t.Errorf("dead letter error %q, want %q", m.Metadata[header.DeadLetterError], tc.errText)
				}
			}
			waitFor(t, "3 dead letters counted", func() bool { return svc.Stats().DeadLettered == 3 })
			if st := svc.Stats(); st.Handled != 0 || st.DeadLettered != 3 {
				t.Errorf("stats %+v, want every item failed", st)
			}
		})
	}
}

// Timeout bounds each call of the handler, not the gathering: a call that
// outlives it fails its items with ErrTimeout, and they are retried.
func TestHandleBatchTimeoutBoundsTheCall(t *testing.T) {
	b := newBroker(t)
	svc := service.New(b, service.WithClock(immediateClock{}))
	var mu sync.Mutex
	var causes []error
	calls := 0
	done := make(chan struct{})
	if err := service.HandleBatch(svc, "sink", func(ctx context.Context, items []service.Item[tick]) error {
		mu.Lock()
		calls++
		first := calls == 1
		mu.Unlock()
		if first {
			<-ctx.Done()
			mu.Lock()
			causes = append(causes, context.Cause(ctx))
			mu.Unlock()
			return ctx.Err()
		}
		close(done)
		return nil
	}, service.BatchSize(2), service.BatchWindow(300*time.Millisecond), service.Timeout(100*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	start(t, svc)
	publishTicks(t, svc, 0, 1, distinctKeys) // waits out the 300ms window: longer than the timeout
	recv(t, done, "the retry")
	waitFor(t, "handled", func() bool { return svc.Stats().Handled == 1 })
	mu.Lock()
	defer mu.Unlock()
	if len(causes) != 1 || !errors.Is(causes[0], middleware.ErrTimeout) {
		t.Errorf("first call's context ended with %v, want ErrTimeout", causes)
	}
	if st := svc.Stats(); st.Retried != 1 || st.Handled != 1 {
		t.Errorf("stats %+v, want one retry, then handled", st)
	}
}

// Shutdown mid-batch: the batch being handled finishes and is acked, what
// was not started goes back to the broker, and a new instance handles the
// rest: nothing is lost, nothing handled twice.
func TestHandleBatchShutdownMidBatchLosesNothing(t *testing.T) {
	b := newBroker(t)
	const n = 23
	var mu sync.Mutex
	handled := map[int]int{}
	changed := make(chan struct{}, 1)
	entered := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	define := func(svc *service.Service, hold bool, window time.Duration) {
		if err := service.HandleBatch(svc, "sink", func(ctx context.Context, items []service.Item[tick]) error {
			if hold {
				once.Do(func() { close(entered); <-release })
			}
			mu.Lock()
			for _, it := range items {
				handled[it.Event.Seq]++
			}
			mu.Unlock()
			select {
			case changed <- struct{}{}:
			default:
			}
			return nil
		}, service.Concurrency(1), service.BatchSize(5), service.BatchWindow(window)); err != nil {
			t.Fatal(err)
		}
	}
	first := service.New(b)
	define(first, true, time.Hour)
	stopFirst := start(t, first)
	publishTicks(t, first, 0, n, distinctKeys)
	recv(t, entered, "the first batch")
	stopped := make(chan error, 1)
	go func() { stopped <- stopFirst() }()
	// Run waits for the held batch: give it time to (wrongly) return.
	select {
	case err := <-stopped:
		t.Fatalf("Run returned (%v) while a batch was being handled", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := recv(t, stopped, "Run to return"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	byFirst := len(handled)
	mu.Unlock()
	if st := first.Stats(); st.DeadLettered != 0 || st.Handled != int64(byFirst) || byFirst != 5 {
		t.Fatalf("first instance: stats %+v, %d handled by the handler, want the held batch of 5", st, byFirst)
	}

	second := service.New(b)
	define(second, false, 20*time.Millisecond)
	start(t, second)
	deadline := time.After(guard)
	for {
		mu.Lock()
		got := len(handled)
		mu.Unlock()
		if got == n {
			break
		}
		select {
		case <-deadline:
			t.Fatalf("%d of %d handled after the restart", got, n)
		case <-changed:
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for seq, c := range handled {
		if c != 1 {
			t.Errorf("tick %d handled %d times", seq, c)
		}
	}
}

// A batch still gathering when the service stops is handed to the handler
// at once, not after its window, and acked.
func TestHandleBatchShutdownHandsOverTheGatheringBatch(t *testing.T) {
	b := newBroker(t)
	joined := make(chan struct{}, 3)
	svc := service.New(b, service.WithShutdownTimeout(guard), service.WithMiddleware(func(next middleware.Handler) middleware.Handler {
		return func(ctx context.Context, d *middleware.Delivery) error {
			joined <- struct{}{} // the attempt is about to join the batch
			return next(ctx, d)
		}
	}))
	l := newBatchLog()
	if err := service.HandleBatch(svc, "sink", l.handler(func(int, int) error { return nil }),
		service.BatchSize(100), service.BatchWindow(time.Hour)); err != nil {
		t.Fatal(err)
	}
	stop := start(t, svc)
	publishTicks(t, svc, 0, 3, distinctKeys)
	for range 3 {
		recv(t, joined, "an attempt")
	}
	// The middleware signals just before its attempt joins: wait for the
	// joins themselves, or a stop in between hands over two batches.
	waitFor(t, "3 messages gathering", func() bool { return service.Gathering(svc, "sink") == 3 })
	began := time.Now()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > guard/2 {
		t.Errorf("Run took %s to stop: the gathering batch waited", took)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ok != 3 || len(l.batches) != 1 {
		t.Errorf("batches %v, want the 3 gathered handed over as one", l.batches)
	}
	if st := svc.Stats(); st.Handled != 3 || st.Nacked != 0 {
		t.Errorf("stats %+v, want 3 handled and acked", st)
	}
}

// Bad batch configuration is refused, naming the field, the value and
// what is allowed; a batch policy on a plain handler is refused too.
func TestHandleBatchRefusesBadPolicy(t *testing.T) {
	b := newBroker(t)
	ok := func(context.Context, []service.Item[tick]) error { return nil }
	for _, tc := range []struct {
		name string
		reg  func(*service.Service) error
		want string
	}{
		{"size", func(s *service.Service) error { return service.HandleBatch(s, "sink", ok, service.BatchSize(-1)) }, "handlers.sink.batch.size: -1, want 1 to 10000"},
		{"window", func(s *service.Service) error {
			return service.HandleBatch(s, "sink", ok, service.BatchWindow(-time.Second))
		}, "handlers.sink.batch.window: -1s, want > 0"},
		{"plain handler in code", func(s *service.Service) error {
			return service.Handle(s, "plain", func(context.Context, tick) error { return nil }, service.BatchSize(5))
		}, "register it with HandleBatch"},
		{"plain handler in config", func(*service.Service) error {
			s := service.New(b, service.WithOverrides(map[string]service.Policy{"plain": {Batch: service.BatchPolicy{Size: 5}}}))
			return service.Handle(s, "plain", func(context.Context, tick) error { return nil })
		}, "handlers.plain.batch"},
		{"nil fn", func(s *service.Service) error { return service.HandleBatch[tick](s, "sink", nil) }, "fn is nil"},
		// Each valid alone, but 10000 × 7 messages held at once exceed any
		// broker's prefetch: refused here, not by the adapter at Run.
		{"size × concurrency", func(s *service.Service) error {
			return service.HandleBatch(s, "sink", ok, service.BatchSize(10000), service.Concurrency(7))
		}, "handlers.sink: batch.size 10000 × concurrency 7 = 70000 messages held at once (the subscription's prefetch), want at most 65535"},
		{"size × concurrency from config", func(*service.Service) error {
			s := service.New(b, service.WithOverrides(map[string]service.Policy{"sink": {Concurrency: 700}}))
			return service.HandleBatch(s, "sink", ok)
		}, "handlers.sink: batch.size 100 × concurrency 700 = 70000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.reg(service.New(b))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// A batch handler does not share a subscription: its size is its own.
func TestHandleBatchRefusesASharedSubscription(t *testing.T) {
	svc := service.New(newBroker(t))
	if err := service.HandleBatch(svc, "sink", func(context.Context, []service.Item[tick]) error { return nil }, service.Group("g")); err != nil {
		t.Fatal(err)
	}
	if err := service.Handle(svc, "plain", func(context.Context, orderPlaced) error { return nil },
		service.Group("g"), service.Topic("batch.tick")); err != nil {
		t.Fatal(err)
	}
	err := svc.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "handlers.sink: a batch handler, but handler \"plain\" shares its subscription") {
		t.Fatalf("Run = %v, want the shared subscription refused", err)
	}
}

// The report says how a batch handler gathers its batches.
func TestHandleBatchReport(t *testing.T) {
	svc := service.New(newBroker(t))
	if err := service.HandleBatch(svc, "sink", func(context.Context, []service.Item[tick]) error { return nil },
		service.BatchSize(50), service.BatchWindow(time.Second), service.Concurrency(2)); err != nil {
		t.Fatal(err)
	}
	if err := service.Handle(svc, "plain", func(context.Context, orderPlaced) error { return nil }); err != nil {
		t.Fatal(err)
	}
	for _, r := range svc.Report() {
		want := "none"
		if r.Handler == "sink" {
			want = "up to 50 messages, or what arrived within 1s of the first; 2 batch(es) at once; at most one message of a key per batch; prefetch 100"
		}
		if r.Batch != want {
			t.Errorf("%s: Batch %q, want %q", r.Handler, r.Batch, want)
		}
	}
}

// A batch that outlives the shutdown timeout has its context cancelled;
// its items are nacked, not dead-lettered, and a new instance handles them.
func TestHandleBatchShutdownTimeoutNacksTheBatch(t *testing.T) {
	b := newBroker(t)
	entered := make(chan struct{}, 1)
	first := service.New(b, service.WithShutdownTimeout(100*time.Millisecond))
	if err := service.HandleBatch(first, "sink", func(ctx context.Context, items []service.Item[tick]) error {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-ctx.Done() // a handler that needs longer than the shutdown allows
		return ctx.Err()
	}, service.BatchSize(3), service.BatchWindow(time.Minute), service.Timeout(service.NoTimeout)); err != nil {
		t.Fatal(err)
	}
	stop := start(t, first)
	publishTicks(t, first, 0, 3, distinctKeys)
	recv(t, entered, "the batch")
	if err := stop(); err != nil {
		t.Fatalf("Run: %v, want a clean stop once the cancelled batch returned", err)
	}
	if st := first.Stats(); st.Nacked != 3 || st.DeadLettered != 0 || st.Handled != 0 {
		t.Fatalf("stats %+v, want the 3 items nacked", st)
	}
	second := service.New(b)
	l := newBatchLog()
	if err := service.HandleBatch(second, "sink", l.handler(func(int, int) error { return nil }),
		service.BatchWindow(20*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	start(t, second)
	l.waitFor(t, "the nacked items handled", func() bool { return l.ok == 3 })
}

// An item whose delivery ends while its batch gathers (its context done,
// as when a Kafka partition is revoked) leaves the batch: it is nacked,
// and the handler sees only its redelivery, once, never the stale entry.
func TestHandleBatchWithdrawsAnItemWhoseDeliveryEnded(t *testing.T) {
	b := newBroker(t)
	var once sync.Once
	svc := service.New(b, service.WithDeliveryMiddleware(func(next middleware.Handler) middleware.Handler {
		return func(ctx context.Context, d *middleware.Delivery) error {
			revoke := false
			if strings.Contains(string(d.Msg.Payload), `"seq":1}`) {
				once.Do(func() { revoke = true })
			}
			if revoke {
				ctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
				defer cancel()
				return next(ctx, d)
			}
			return next(ctx, d)
		}
	}))
	l := newBatchLog()
	if err := service.HandleBatch(svc, "sink", l.handler(func(int, int) error { return nil }),
		service.BatchSize(10), service.BatchWindow(300*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	start(t, svc)
	publishTicks(t, svc, 0, 3, distinctKeys)
	waitFor(t, "every tick handled", func() bool { return svc.Stats().Handled == 3 })
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.attempts[1] != 1 {
		t.Errorf("tick 1 handed to the handler %d times, want once (batches %v)", l.attempts[1], l.batches)
	}
	if st := svc.Stats(); st.Nacked != 1 || st.DeadLettered != 0 {
		t.Errorf("stats %+v, want the withdrawn tick nacked once", st)
	}
}
