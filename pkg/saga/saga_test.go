package saga_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/retry"
	"github.com/switchyard-go/switchyard/pkg/saga"
	"github.com/switchyard-go/switchyard/pkg/schedule"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// The events of a counting saga: Begin starts it, Add adds (on two topics,
// so that two adds of one instance are handled on two subscriptions at
// once), End completes it, Ping is its command and Late its timeout.
type Begin struct{ ID string }
type AddA struct{ ID string }
type AddB struct{ ID string }
type End struct{ ID string }
type Ping struct{ ID string }
type Late struct{ ID string }

func (Begin) EventType() string { return "sagatest.begin" }
func (AddA) EventType() string  { return "sagatest.add_a" }
func (AddB) EventType() string  { return "sagatest.add_b" }
func (End) EventType() string   { return "sagatest.end" }
func (Ping) EventType() string  { return "sagatest.ping" }
func (Late) EventType() string  { return "sagatest.late" }
func (Begin) EventVersion() int { return 1 }
func (AddA) EventVersion() int  { return 1 }
func (AddB) EventVersion() int  { return 1 }
func (End) EventVersion() int   { return 1 }
func (Ping) EventVersion() int  { return 1 }
func (Late) EventVersion() int  { return 1 }

type counter struct {
	N     int  `json:"n"`
	Timed bool `json:"timed"`
}

type fixture struct {
	svc   *service.Service
	sg    *saga.Saga[counter]
	steps atomic.Int64
	pings chan string
}

var fast = retry.Policy{MaxAttempts: 20, InitialInterval: time.Millisecond, MaxInterval: 5 * time.Millisecond, Jitter: retry.NoJitter}

func setup(t *testing.T, wrap func(*memory.Broker) broker.Broker, store saga.Store) *fixture {
	t.Helper()
	mb, err := memory.New(memory.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mb.Close() })
	var b broker.Broker = mb
	if wrap != nil {
		b = wrap(mb)
	}
	sch := schedule.New(schedule.NewMemory(), schedule.Config{PollInterval: 5 * time.Millisecond})
	f := &fixture{pings: make(chan string, 100)}
	f.svc = service.New(b, service.WithScheduler(sch), service.WithCompanion(sch), service.WithDefaults(service.Policy{Retry: fast}))
	f.sg = saga.New[counter](f.svc, "counting", store, saga.Publishes(Ping{}, Late{}))
	step := func(ctx context.Context, in *saga.Instance[counter]) { f.steps.Add(1) }
	must(t, saga.Start(f.sg, func(e Begin) string { return e.ID }, func(ctx context.Context, in *saga.Instance[counter], e Begin) error {
		step(ctx, in)
		if err := in.Publish(ctx, Ping{ID: in.ID}); err != nil {
			return err
		}
		return in.Timeout(ctx, 50*time.Millisecond, Late{ID: in.ID})
	}))
	add := func(ctx context.Context, in *saga.Instance[counter]) error {
		step(ctx, in)
		in.State.N++
		return nil
	}
	must(t, saga.On(f.sg, func(e AddA) string { return e.ID }, func(ctx context.Context, in *saga.Instance[counter], e AddA) error { return add(ctx, in) }))
	must(t, saga.On(f.sg, func(e AddB) string { return e.ID }, func(ctx context.Context, in *saga.Instance[counter], e AddB) error { return add(ctx, in) }))
	must(t, saga.On(f.sg, func(e End) string { return e.ID }, func(ctx context.Context, in *saga.Instance[counter], e End) error {
		step(ctx, in)
		in.Complete()
		return nil
	}))
	must(t, saga.On(f.sg, func(e Late) string { return e.ID }, func(ctx context.Context, in *saga.Instance[counter], e Late) error {
		step(ctx, in)
		in.State.Timed = true
		return nil
	}))
	must(t, service.Handle(f.svc, "pinged", func(ctx context.Context, e Ping) error {
		f.pings <- e.ID
		return nil
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-f.svc.Ready():
	case err := <-done:
		t.Fatal(err)
	}
	return f
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 10s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (f *fixture) get(t *testing.T, id string) saga.Snapshot[counter] {
	t.Helper()
	s, err := f.sg.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// gatedStore makes the first step that loads instance version 1 wait for
// a second one, so that two steps decide on the same version and race to
// save the next.
type gatedStore struct {
	saga.Store
	mu        sync.Mutex
	armed     bool
	waiting   chan struct{}
	conflicts atomic.Int64
}

func (g *gatedStore) Load(ctx context.Context, name, id string) (saga.Record, error) {
	r, err := g.Store.Load(ctx, name, id)
	g.mu.Lock()
	if !g.armed || r.Version != 1 || middleware.DeliveryFrom(ctx) == nil { // a step's load, not the test's Get
		g.mu.Unlock()
		return r, err
	}
	if g.waiting == nil {
		g.waiting = make(chan struct{})
		w := g.waiting
		g.mu.Unlock()
		select {
		case <-w:
		case <-time.After(5 * time.Second):
		}
		return r, err
	}
	close(g.waiting)
	g.armed = false
	g.mu.Unlock()
	return r, err
}

func (g *gatedStore) Save(ctx context.Context, name, id string, r saga.Record) error {
	err := g.Store.Save(ctx, name, id, r)
	if errors.Is(err, saga.ErrConflict) {
		g.conflicts.Add(1)
	}
	return err
}

// TestRacingStepsBothApply: two events for one instance handled at the
// same moment on two subscriptions: one save conflicts, its retry decides
// on the other's state, and neither update is lost.
func TestRacingStepsBothApply(t *testing.T) {
	store := &gatedStore{Store: saga.NewMemory()}
	f := setup(t, nil, store)
	ctx := context.Background()
	must(t, f.svc.Publish(ctx, Begin{ID: "r"}))
	waitUntil(t, "instance r started", func() bool { return f.get(t, "r").Version == 1 })
	store.mu.Lock()
	store.armed = true
	store.mu.Unlock()
	must(t, f.svc.Publish(ctx, AddA{ID: "r"}))
	must(t, f.svc.Publish(ctx, AddB{ID: "r"}))
	waitUntil(t, "both adds applied", func() bool { return f.get(t, "r").State.N >= 2 })
	if n := f.get(t, "r").State.N; n != 2 {
		t.Fatalf("N = %d, want 2", n)
	}
	if store.conflicts.Load() == 0 {
		t.Fatal("no save conflicted: the two steps did not race (the test did not provoke what it tests)")
	}
}

// TestUnknownInstanceDeadLettered: an advancing event without an instance
// is dead-lettered at once, its step never runs.
func TestUnknownInstanceDeadLettered(t *testing.T) {
	f := setup(t, nil, saga.NewMemory())
	must(t, f.svc.Publish(context.Background(), AddA{ID: "nobody"}))
	waitUntil(t, "the event dead-lettered", func() bool { return f.svc.Stats().DeadLettered == 1 })
	if f.steps.Load() != 0 || f.get(t, "nobody").Version != 0 {
		t.Fatalf("steps ran %d times, instance %+v; want none", f.steps.Load(), f.get(t, "nobody"))
	}
	if r := f.svc.Stats().Retried; r != 0 {
		t.Errorf("retried %d times: ErrUnknown should be permanent", r)
	}
}

// TestCompletedInstanceIgnoresEvents: after Complete, later events (and
// the timeout) are acknowledged without running a step.
func TestCompletedInstanceIgnoresEvents(t *testing.T) {
	f := setup(t, nil, saga.NewMemory())
	ctx := context.Background()
	must(t, f.svc.Publish(ctx, Begin{ID: "c"}))
	waitUntil(t, "instance started", func() bool { return f.get(t, "c").Version >= 1 })
	must(t, f.svc.Publish(ctx, End{ID: "c"}))
	waitUntil(t, "instance completed", func() bool { return f.get(t, "c").Completed })
	must(t, f.svc.Publish(ctx, AddA{ID: "c"}))
	// Begin, its Ping, End, AddA and the Late timeout.
	waitUntil(t, "five handlings", func() bool { return f.svc.Stats().Handled >= 5 })
	snap := f.get(t, "c")
	if snap.State.N != 0 || snap.State.Timed || f.steps.Load() != 2 {
		t.Fatalf("after completion: %+v, %d steps; want N 0, no timeout, 2 steps (Begin, End)", snap, f.steps.Load())
	}
	if d := f.svc.Stats().DeadLettered; d != 0 {
		t.Errorf("dead-lettered %d", d)
	}
}

// TestTimeoutReachesTheSaga: a timeout scheduled by a step is handled by
// the saga no sooner than asked.
func TestTimeoutReachesTheSaga(t *testing.T) {
	f := setup(t, nil, saga.NewMemory())
	start := time.Now()
	must(t, f.svc.Publish(context.Background(), Begin{ID: "t"}))
	waitUntil(t, "the timeout handled", func() bool { return f.get(t, "t").State.Timed })
	if el := time.Since(start); el < 50*time.Millisecond {
		t.Fatalf("timeout of 50ms handled after %s", el)
	}
}

// failingBroker refuses the first fail publishes to topic.
type failingBroker struct {
	*memory.Broker
	topic string
	mu    sync.Mutex
	fail  int
}

func (f *failingBroker) Publisher() message.Publisher {
	return failingPublisher{f, f.Broker.Publisher()}
}

type failingPublisher struct {
	f *failingBroker
	message.Publisher
}

func (p failingPublisher) Publish(topic string, msgs ...*message.Message) error {
	p.f.mu.Lock()
	if topic == p.f.topic && p.f.fail > 0 {
		p.f.fail--
		p.f.mu.Unlock()
		return errors.New("broker unavailable")
	}
	p.f.mu.Unlock()
	return p.Publisher.Publish(topic, msgs...)
}

// TestPublishAfterSaveMadeGood: the step saved but its command could not
// be published; the redelivery publishes it without running the step again.
func TestPublishAfterSaveMadeGood(t *testing.T) {
	f := setup(t, func(b *memory.Broker) broker.Broker {
		return &failingBroker{Broker: b, topic: "sagatest.ping", fail: 2}
	}, saga.NewMemory())
	must(t, f.svc.Publish(context.Background(), Begin{ID: "p"}))
	select {
	case id := <-f.pings:
		if id != "p" {
			t.Fatalf("ping for %q", id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the command was never published")
	}
	waitUntil(t, "the timeout handled", func() bool { return f.get(t, "p").State.Timed })
	if n := f.steps.Load(); n != 2 {
		t.Fatalf("steps ran %d times, want 2 (Begin once, its timeout once)", n)
	}
	select {
	case id := <-f.pings:
		t.Fatalf("a second ping for %q", id)
	default:
	}
}
