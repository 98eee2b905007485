package schedule_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.uber.org/goleak"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/schedule"
	"github.com/switchyard-go/switchyard/pkg/service"
)

type tick struct {
	N int `json:"n"`
}

func (tick) EventType() string { return "schedtest.tick" }
func (tick) EventVersion() int { return 1 }

type trigger struct{}

func (trigger) EventType() string { return "schedtest.trigger" }
func (trigger) EventVersion() int { return 1 }

// got is one handling of a tick.
type got struct {
	group               string
	n                   int
	at                  time.Time
	id, corr, causation string
}

type recorder struct {
	mu   sync.Mutex
	seen []got
	ch   chan struct{}
}

func (r *recorder) add(g got) {
	r.mu.Lock()
	r.seen = append(r.seen, g)
	r.mu.Unlock()
	select {
	case r.ch <- struct{}{}:
	default:
	}
}

func (r *recorder) snapshot() []got {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]got(nil), r.seen...)
}

// waitFor waits until cond holds for what was seen, or fails at deadline.
func (r *recorder) waitFor(t *testing.T, d time.Duration, what string, cond func([]got) bool) []got {
	t.Helper()
	deadline := time.After(d)
	for {
		if s := r.snapshot(); cond(s) {
			return s
		}
		select {
		case <-r.ch:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatalf("after %s: %s; seen %+v", d, what, r.snapshot())
		}
	}
}

func newService(t *testing.T, store schedule.Store) (*service.Service, *recorder) {
	t.Helper()
	b, err := memory.New(memory.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	sch := schedule.New(store, schedule.Config{PollInterval: 10 * time.Millisecond})
	svc := service.New(b, service.WithScheduler(sch), service.WithCompanion(sch))
	rec := &recorder{ch: make(chan struct{}, 1)}
	for _, group := range []string{"a", "b"} {
		if err := service.Handle(svc, group+".tick", func(ctx context.Context, e tick) error {
			d := middleware.DeliveryFrom(ctx)
			rec.add(got{group: group, n: e.N, at: time.Now(), id: d.Envelope.ID, corr: d.Envelope.CorrelationID, causation: d.Envelope.CausationID})
			return nil
		}, service.Group(group)); err != nil {
			t.Fatal(err)
		}
	}
	return svc, rec
}

// run runs svc until the returned stop is called (or the test ends) and
// waits until it is ready; stop cancels Run's context and returns Run's
// error.
func run(t *testing.T, svc *service.Service) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	select {
	case <-svc.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("Run: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("service not ready after 30s")
	}
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(30 * time.Second):
				t.Error("Run did not return 30s after its context was cancelled")
			}
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return stop
}

// TestNeverEarlyEveryGroupCancel: scheduled ticks reach every group of the
// topic no sooner than due; a cancelled one never arrives.
func TestNeverEarlyEveryGroupCancel(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // after the service stopped
	store := schedule.NewMemory()
	svc, rec := newService(t, store)
	run(t, svc)
	ctx := context.Background()
	start := time.Now()
	due := map[int]time.Time{}
	for n, d := range map[int]time.Duration{1: 300 * time.Millisecond, 2: 100 * time.Millisecond, 3: 0} {
		if _, err := svc.PublishAfter(ctx, tick{N: n}, d); err != nil {
			t.Fatal(err)
		}
		due[n] = start.Add(d)
	}
	cancelled, err := svc.PublishAt(ctx, tick{N: 4}, start.Add(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.CancelScheduled(ctx, cancelled); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	if err := svc.CancelScheduled(ctx, cancelled); !errors.Is(err, service.ErrScheduleNotFound) {
		t.Fatalf("second cancel: %v, want ErrScheduleNotFound", err)
	}
	seen := rec.waitFor(t, 10*time.Second, "3 ticks in each of 2 groups", func(s []got) bool { return len(s) >= 6 })
	time.Sleep(300 * time.Millisecond) // let a wrongly kept tick 4 (due at +200ms) show up
	seen = rec.snapshot()
	if len(seen) != 6 {
		t.Fatalf("handled %d ticks, want 6 (3 in each group, the cancelled one in none): %+v", len(seen), seen)
	}
	perGroup := map[string]int{}
	for _, g := range seen {
		perGroup[g.group]++
		if g.at.Before(due[g.n]) {
			t.Errorf("tick %d handled by %s at +%s, before its due time +%s", g.n, g.group, g.at.Sub(start), due[g.n].Sub(start))
		}
	}
	if perGroup["a"] != 3 || perGroup["b"] != 3 {
		t.Errorf("per group: %v, want 3 each", perGroup)
	}
	if store.Len() != 0 {
		t.Errorf("store keeps %d entries after publishing", store.Len())
	}
}

// TestFromHandlerKeepsCorrelation: scheduled from a handler, the event
// carries the incoming correlation id and the incoming id as causation,
// and the handler may schedule only what it declares.
func TestFromHandlerKeepsCorrelation(t *testing.T) {
	svc, rec := newService(t, schedule.NewMemory())
	var trig struct {
		sync.Mutex
		id, corr string
	}
	if err := service.Handle(svc, "trigger", func(ctx context.Context, e trigger) error {
		d := middleware.DeliveryFrom(ctx)
		trig.Lock()
		trig.id, trig.corr = d.Envelope.ID, d.Envelope.CorrelationID
		trig.Unlock()
		if _, err := svc.PublishAfter(ctx, trigger{}, time.Millisecond); !errors.Is(err, service.ErrUndeclaredPublish) {
			return service.ErrUndeclaredPublish // fail loudly: undeclared must be refused
		}
		_, err := svc.PublishAfter(ctx, tick{N: 9}, 50*time.Millisecond)
		return err
	}, service.Publishes(tick{})); err != nil {
		t.Fatal(err)
	}
	run(t, svc)
	ctx := middleware.WithCorrelationID(context.Background(), "corr-42")
	if err := svc.Publish(ctx, trigger{}); err != nil {
		t.Fatal(err)
	}
	seen := rec.waitFor(t, 10*time.Second, "the scheduled tick in both groups", func(s []got) bool { return len(s) >= 2 })
	trig.Lock()
	defer trig.Unlock()
	for _, g := range seen {
		if g.corr != "corr-42" || g.causation != trig.id {
			t.Errorf("%s: correlation %q causation %q, want corr-42 and the trigger's id %q", g.group, g.corr, g.causation, trig.id)
		}
	}
}

// TestIdempotentID: scheduling one id twice publishes it once.
func TestIdempotentID(t *testing.T) {
	svc, rec := newService(t, schedule.NewMemory())
	run(t, svc)
	for range 2 {
		if _, err := svc.PublishAfter(context.Background(), tick{N: 1}, 20*time.Millisecond, service.WithID("fixed-id")); err != nil {
			t.Fatal(err)
		}
	}
	rec.waitFor(t, 10*time.Second, "the tick in both groups", func(s []got) bool { return len(s) >= 2 })
	time.Sleep(100 * time.Millisecond) // a second copy would be due by now
	if n := len(rec.snapshot()); n != 2 {
		t.Fatalf("handled %d, want 2 (once per group)", n)
	}
}

// TestPublishFailureRetried: a refused publish stays scheduled and is
// published once the broker takes it.
func TestPublishFailureRetried(t *testing.T) {
	store := schedule.NewMemory()
	sch := schedule.New(store, schedule.Config{PollInterval: 5 * time.Millisecond})
	b, err := memory.New(memory.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() }) // after the service stopped
	flaky := &flakyBroker{Broker: b, fail: 3}
	svc := service.New(flaky, service.WithScheduler(sch), service.WithCompanion(sch))
	rec := &recorder{ch: make(chan struct{}, 1)}
	if err := service.Handle(svc, "a.tick", func(ctx context.Context, e tick) error {
		rec.add(got{n: e.N})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	run(t, svc)
	if _, err := svc.PublishAfter(context.Background(), tick{N: 1}, 0); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, 10*time.Second, "the tick after 3 refused publishes", func(s []got) bool { return len(s) == 1 })
	if flaky.failed() != 3 {
		t.Errorf("refused %d publishes, want 3", flaky.failed())
	}
}

func TestNoScheduler(t *testing.T) {
	b, _ := memory.New(memory.Config{}, nil)
	defer b.Close()
	svc := service.New(b)
	if _, err := svc.PublishAfter(context.Background(), tick{}, time.Second); !errors.Is(err, service.ErrNoScheduler) {
		t.Fatalf("PublishAfter without a scheduler: %v, want ErrNoScheduler", err)
	}
}

func TestConfigValidate(t *testing.T) {
	err := schedule.Config{PollInterval: -1, BatchSize: -2, Lease: -3}.Validate()
	for _, want := range []string{"schedule.poll_interval: -1ns", "schedule.batch_size: -2", "schedule.lease: -3ns"} {
		if err == nil || !contains(err.Error(), want) {
			t.Errorf("Validate: %v, want it to name %q", err, want)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// flakyBroker refuses the first fail publishes of ticks.
type flakyBroker struct {
	*memory.Broker
	mu        sync.Mutex
	fail, got int
}

func (f *flakyBroker) failed() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.got
}

func (f *flakyBroker) Publisher() message.Publisher { return flakyPublisher{f, f.Broker.Publisher()} }

type flakyPublisher struct {
	f *flakyBroker
	message.Publisher
}

func (p flakyPublisher) Publish(topic string, msgs ...*message.Message) error {
	p.f.mu.Lock()
	if topic == "schedtest.tick" && p.f.got < p.f.fail {
		p.f.got++
		p.f.mu.Unlock()
		return errors.New("broker says no")
	}
	p.f.mu.Unlock()
	return p.Publisher.Publish(topic, msgs...)
}

// TestRelayPublishesThroughTheService: the relay publishes as the service
// would (the topic's content mode applies, it counts as published).
func TestRelayPublishesThroughTheService(t *testing.T) {
	b, err := memory.New(memory.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	sch := schedule.New(schedule.NewMemory(), schedule.Config{PollInterval: 5 * time.Millisecond})
	svc := service.New(b, service.WithScheduler(sch), service.WithCompanion(sch),
		service.WithContentMode("schedtest.tick", event.ContentModeStructured))
	if err := service.Handle(svc, "h", func(context.Context, tick) error { return nil }); err != nil {
		t.Fatal(err)
	}
	sub, err := b.Subscriber("raw", broker.SubscriberOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, err := sub.Subscribe(ctx, "schedtest.tick")
	if err != nil {
		t.Fatal(err)
	}
	run(t, svc)
	if _, err := svc.PublishAfter(context.Background(), tick{N: 1}, 0); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-msgs:
		m.Ack()
		if !event.IsStructured(m.Metadata) {
			t.Errorf("published in binary mode (%v), the topic asks for structured", m.Metadata)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing published")
	}
	if p := svc.Stats().Published; p != 1 {
		t.Errorf("Stats().Published = %d, want 1", p)
	}
}
