package conformance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/service"
	"github.com/switchyard-go/switchyard/switchyardtest"
)

// Env is one scenario on one broker: a namespace of its own (topics and
// groups of earlier runs stay out), the services it started, a [Probe]
// in all of them, and raw access to the broker.
type Env struct {
	T *testing.T
	// Suite is the suite being run.
	Suite *Suite
	// BrokerName is the Name of the broker being run on.
	BrokerName string
	// Namespace prefixes every topic and group of the scenario.
	Namespace string
	// Probe sees every attempt of every instance.
	Probe *switchyardtest.Probe

	spec    Broker
	logger  *slog.Logger
	logOut  *testLog
	options []service.Option

	mu        sync.Mutex
	shared    broker.Broker // the in-memory broker, opened once
	spare     broker.Broker // opened by newEnv, handed out by the next Open
	opened    []broker.Broker
	instances int
}

func newEnv(t *testing.T, s *Suite, b Broker) *Env {
	var r [4]byte
	_, _ = rand.Read(r[:])
	level := slog.LevelWarn
	if os.Getenv("SWITCHYARD_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	out := &testLog{t: t}
	e := &Env{
		T: t, Suite: s, BrokerName: b.Name, spec: b,
		Namespace: "conformance-" + hex.EncodeToString(r[:]) + ".",
		Probe:     switchyardtest.NewProbe(),
		logger:    slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: level})),
		logOut:    out,
	}
	if s.Options != nil {
		e.options = s.Options()
	}
	t.Cleanup(func() {
		e.mu.Lock()
		opened := e.opened
		e.opened = nil
		e.mu.Unlock()
		for _, b := range slices.Backward(opened) {
			if err := b.Close(); err != nil {
				t.Errorf("conformance: close %s: %v", b.Name(), err)
			}
		}
		out.close()
	})
	e.spare = e.Open() // skips now when the broker is not configured
	return e
}

// Open returns a new connection to the broker (the same one, for the
// in-memory broker), closed when the scenario ends.
func (e *Env) Open() broker.Broker {
	e.T.Helper()
	e.mu.Lock()
	if e.shared != nil {
		defer e.mu.Unlock()
		return e.shared
	}
	if b := e.spare; b != nil {
		e.spare = nil
		e.mu.Unlock()
		return b
	}
	e.mu.Unlock()
	b := e.spec.Open(e.T)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.opened = append(e.opened, b)
	if _, ok := b.(*memory.Broker); ok || e.spec.Shared {
		e.shared = b
	}
	return b
}

// Topic returns name in the scenario's namespace.
func (e *Env) Topic(name string) string { return e.Namespace + name }

// Instance is one running service of a scenario.
type Instance struct {
	Name string
	Svc  *service.Service
	// Broker is the instance's connection.
	Broker broker.Broker
	env    *Env
	stop   context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// Start opens a connection, creates a service on it with the suite's
// options, opts, the scenario's namespace and the probe, calls define (the
// suite's Define when nil), runs it and waits until it is subscribed. The
// scenario's end stops it.
func (e *Env) Start(define switchyardtest.Define, opts ...service.Option) *Instance {
	e.T.Helper()
	if define == nil {
		define = e.Suite.Define
	}
	e.mu.Lock()
	e.instances++
	name := fmt.Sprintf("instance-%d", e.instances)
	e.mu.Unlock()
	all := []service.Option{
		service.WithLogger(e.logger),
		service.WithSource("conformance"),
		service.WithShutdownTimeout(20 * time.Second),
	}
	all = append(all, e.Probe.Options(name)...)
	all = append(all, e.options...)
	all = append(all, opts...)
	all = append(all, service.WithNamespace(e.Namespace))
	conn := e.Open()
	svc := service.New(conn, all...)
	if err := svc.Err(); err != nil {
		e.T.Fatalf("conformance: %v", err)
	}
	if err := define(svc); err != nil {
		e.T.Fatalf("conformance: define %s: %v", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in := &Instance{Name: name, Svc: svc, Broker: conn, env: e, stop: cancel, done: make(chan error, 1)}
	go func() { in.done <- svc.Run(ctx) }()
	timer := time.NewTimer(e.Suite.Timeout)
	defer timer.Stop()
	select {
	case <-svc.Ready():
	case err := <-in.done:
		cancel()
		e.T.Fatalf("conformance: %s did not start: %v", name, err)
	case <-timer.C:
		cancel()
		e.T.Fatalf("conformance: %s not subscribed after %s", name, e.Suite.Timeout)
	}
	e.T.Cleanup(func() {
		if err := in.Stop(); err != nil {
			e.T.Errorf("conformance: %s: Run returned: %v", name, err)
		}
	})
	return in
}

// BeginStop cancels the instance's Run: intake stops, in-flight handlers
// go on. Stop waits for the rest.
func (in *Instance) BeginStop() { in.stop() }

// Stop stops the instance gracefully and returns what Run returned. It is
// idempotent.
func (in *Instance) Stop() error {
	in.once.Do(func() {
		in.stop()
		timer := time.NewTimer(in.env.Suite.Timeout)
		defer timer.Stop()
		select {
		case in.err = <-in.done:
		case <-timer.C:
			in.err = fmt.Errorf("did not stop within %s", in.env.Suite.Timeout)
		}
	})
	return in.err
}

// Sent is an input the kit published.
type Sent struct {
	ID, Key string
	Event   event.Event
}

// Publish publishes the suite's input n for key through in, with an id of
// its own, starting a chain (with correlation id corr if not empty).
func (e *Env) Publish(in *Instance, key string, n int, corr string) Sent {
	e.T.Helper()
	s := Sent{ID: uuid.Must(uuid.NewV7()).String(), Key: key, Event: e.Suite.Input(key, n)}
	e.publish(in, s, corr)
	return s
}

func (e *Env) publish(in *Instance, s Sent, corr string) {
	e.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e.Suite.Timeout)
	defer cancel()
	if corr != "" {
		ctx = middleware.WithCorrelationID(ctx, corr)
	}
	if err := in.Svc.Publish(ctx, s.Event, service.WithKey(s.Key), service.WithID(s.ID)); err != nil {
		e.T.Fatalf("conformance: publish %s: %v", s.Event.EventType(), err)
	}
}

// consumer is a handler of the suite's input type, in its group.
type consumer struct {
	Handler, Group, Topic string
}

// consumers returns the handlers of in that consume the input type on its
// topic, sorted by handler name.
func (e *Env) consumers(in *Instance) []consumer {
	e.T.Helper()
	sample := e.Suite.Input("sample", 0)
	topic := e.Namespace + event.TopicOf(sample)
	var out []consumer
	for _, h := range in.Svc.Handlers() {
		if h.EventType == sample.EventType() && h.Topic == topic {
			out = append(out, consumer{Handler: h.Name, Group: h.Group, Topic: h.Topic})
		}
	}
	if len(out) == 0 {
		e.T.Fatalf("conformance: no handler consumes the input %s on %q", sample.EventType(), topic)
	}
	slices.SortFunc(out, func(a, b consumer) int { return strings.Compare(a.Handler, b.Handler) })
	return out
}

// succeeded returns the successful attempts of handler at message id.
func (e *Env) succeeded(handler, id string) []switchyardtest.Attempt {
	var out []switchyardtest.Attempt
	for _, a := range e.Probe.Attempts(handler) {
		if a.Done && a.Err == nil && a.Envelope.ID == id {
			out = append(out, a)
		}
	}
	return out
}

// Eventually waits until cond holds, re-checking it on every attempt the
// probe records and at least every 10ms, and fails the scenario with the
// probe's journal after the suite's timeout.
func (e *Env) Eventually(what string, cond func() bool) {
	e.T.Helper()
	e.until(cond, func() string { return what })
}

// Quiet waits until no attempt runs and none started or ended for the
// suite's settle time: redeliveries and duplicates have shown up.
func (e *Env) Quiet() {
	e.T.Helper()
	deadline := time.NewTimer(e.Suite.Timeout)
	defer deadline.Stop()
	for {
		changed := e.Probe.Changed()
		settle := time.NewTimer(e.Suite.Settle)
		select {
		case <-changed:
			settle.Stop()
			continue
		case <-settle.C:
			if e.Probe.InFlight() == 0 {
				return
			}
		case <-deadline.C:
			settle.Stop()
			e.T.Fatalf("conformance: %s: never quiet for %s within %s\n%s", e.BrokerName, e.Suite.Settle, e.Suite.Timeout, e.Probe.Journal(40))
		}
	}
}

// SettleGroups waits, on brokers whose groups rebalance ([GroupWaiter]),
// until every consumer group of in's handlers has instances members per
// subscription.
func (e *Env) SettleGroups(in *Instance, instances int) {
	e.T.Helper()
	gw, ok := in.Broker.(GroupWaiter)
	if !ok {
		return
	}
	topics := map[string]map[string]bool{} // group -> topics
	for _, h := range in.Svc.Handlers() {
		if topics[h.Group] == nil {
			topics[h.Group] = map[string]bool{}
		}
		topics[h.Group][h.Topic] = true
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.Suite.Timeout)
	defer cancel()
	for _, g := range slices.Sorted(maps.Keys(topics)) {
		if err := gw.WaitGroup(ctx, g, instances*len(topics[g])); err != nil {
			e.T.Fatalf("conformance: %v", err)
		}
	}
}

// Inspector reads a topic as a consumer outside the service does: a raw
// subscriber in a group of its own, acking what it reads.
type Inspector struct {
	env     *Env
	topic   string
	mu      sync.Mutex
	msgs    []*message.Message
	changed chan struct{}
}

// Inspect subscribes an inspector to topic (in the scenario's namespace).
// Call it before what it should see is published.
func (e *Env) Inspect(topic string) *Inspector {
	e.T.Helper()
	b := e.Open()
	sub, err := b.Subscriber(e.Namespace+"conformance-inspector", broker.SubscriberOptions{})
	if err != nil {
		e.T.Fatalf("conformance: inspector: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	msgs, err := sub.Subscribe(ctx, e.Namespace+topic)
	if err != nil {
		cancel()
		e.T.Fatalf("conformance: inspect %q: %v", topic, err)
	}
	in := &Inspector{env: e, topic: topic, changed: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m := range msgs {
			m.Ack()
			in.mu.Lock()
			in.msgs = append(in.msgs, m)
			close(in.changed)
			in.changed = make(chan struct{})
			in.mu.Unlock()
		}
	}()
	e.T.Cleanup(func() {
		cancel()
		_ = sub.Close()
		<-done
	})
	return in
}

// Wait returns the first message for which match returns true, waiting
// up to the suite's timeout.
func (in *Inspector) Wait(what string, match func(*message.Message) bool) *message.Message {
	e := in.env
	e.T.Helper()
	deadline := time.NewTimer(e.Suite.Timeout)
	defer deadline.Stop()
	for {
		in.mu.Lock()
		for _, m := range in.msgs {
			if match(m) {
				in.mu.Unlock()
				return m
			}
		}
		seen := len(in.msgs)
		changed := in.changed
		in.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			e.T.Fatalf("conformance: %s: no %s on %q within %s (%d other messages there)\n%s",
				e.BrokerName, what, in.topic, e.Suite.Timeout, seen, e.Probe.Journal(40))
		}
	}
}

// testLog writes log lines to the test log until the scenario ended.
type testLog struct {
	mu     sync.Mutex
	t      *testing.T
	closed bool
}

func (w *testLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Logf("%s", strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testLog) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}
