// Package rpctest is the suite every broker's request-reply
// ([service.Request], [service.Reply]) and batch publishing
// ([service.PublishBatch]) must pass: each adapter's tests run it against
// its real broker (the in-memory one for memory), so the three brokers are
// held to the same behaviour.
package rpctest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/retry"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// Harness is what the suite needs of a broker.
type Harness struct {
	// Open connects a new client to the broker under test, as a separate
	// instance of a service would (its own connections, so its own
	// inbox), and closes it when t ends. The in-memory broker, which has
	// no clients, returns one shared broker.
	Open func(t *testing.T) broker.Broker
	// Namespace returns a topic and group prefix unique to t, deleting
	// what was created under it when t ends where that matters.
	Namespace func(t *testing.T) string
	// Wait bounds every wait for something that must happen (Kafka takes
	// seconds to create a topic and to balance a group).
	Wait time.Duration
	// FailingTopic, if not empty, is a topic (put under the namespace)
	// that publishing to fails on this broker while other topics work: a
	// batch's partial failure.
	FailingTopic string
}

// Ask is the request of the suite.
type Ask struct {
	N    int    `json:"n"`
	From string `json:"from"`
}

func (Ask) EventType() string  { return "rpctest.ask" }
func (Ask) EventVersion() int  { return 1 }
func (a Ask) EventKey() string { return a.From }

// Answer is the response of the suite.
type Answer struct {
	N    int    `json:"n"`
	From string `json:"from"`
}

func (Answer) EventType() string { return "rpctest.answer" }
func (Answer) EventVersion() int { return 1 }

// Item is what the batch tests publish; Topic, when set, overrides its
// topic.
type Item struct {
	N     int    `json:"n"`
	Topic string `json:"-"`
	Bad   any    `json:"bad,omitempty"` // a func makes encoding fail
}

func (Item) EventType() string    { return "rpctest.item" }
func (Item) EventVersion() int    { return 1 }
func (i Item) EventTopic() string { return i.Topic }

// Run runs every test of the suite.
func Run(t *testing.T, h Harness) {
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, h) })
	t.Run("ReplyErrorIsTyped", func(t *testing.T) { testReplyError(t, h) })
	t.Run("DeadLetteredRequestIsAnswered", func(t *testing.T) { testDeadLettered(t, h) })
	t.Run("LateReplyIsDropped", func(t *testing.T) { testLateReply(t, h) })
	t.Run("SurvivesReplierRestart", func(t *testing.T) { testReplierRestart(t, h) })
	t.Run("TimesOutCleanlyWithoutReplier", func(t *testing.T) { testTimeout(t, h) })
	t.Run("RepliesReachOnlyTheirInstance", func(t *testing.T) { testTwoInstances(t, h) })
	t.Run("BatchDeliveredWithOneWait", func(t *testing.T) { testBatch(t, h) })
	t.Run("BatchRefusedBeforeSending", func(t *testing.T) { testBatchRefused(t, h) })
	t.Run("BatchPartialFailure", func(t *testing.T) { testBatchPartial(t, h) })
}

// newService is a service on a new client of the broker, in namespace ns.
func newService(t *testing.T, h Harness, ns string, opts ...service.Option) *service.Service {
	t.Helper()
	opts = append([]service.Option{
		service.WithNamespace(ns),
		service.WithShutdownTimeout(500 * time.Millisecond),
		service.WithLogger(testLogger(t)),
	}, opts...)
	return service.New(h.Open(t), opts...)
}

// start runs svc until stop is called or t ends, once it is ready.
func start(t *testing.T, h Harness, svc *service.Service) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- svc.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-errc; err != nil && !errors.Is(err, service.ErrShutdownTimeout) {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	select {
	case <-svc.Ready():
	case err := <-errc:
		t.Fatalf("Run ended before ready: %v", err)
	case <-time.After(h.Wait):
		t.Fatalf("service not ready within %s", h.Wait)
	}
	return stop
}

// echo is a replier that answers Ask{N, From} with Answer{N, From}.
func echo(_ context.Context, a Ask) (Answer, error) { return Answer(a), nil }

func request(ctx context.Context, h Harness, svc *service.Service, a Ask) (Answer, error) {
	ctx, cancel := context.WithTimeout(ctx, h.Wait)
	defer cancel()
	return service.Request[Ask, Answer](ctx, svc, a)
}

// A request is answered by the replier's response, with the requester's
// correlation id carried to the replier.
func testRoundTrip(t *testing.T, h Harness) {
	ns := h.Namespace(t)
	replier := newService(t, h, ns)
	var seen atomic.Value
	if err := service.Reply(replier, "answer", func(ctx context.Context, a Ask) (Answer, error) {
		seen.Store(middleware.CorrelationID(ctx))
		return Answer{N: a.N * 2, From: "replier"}, nil
	}); err != nil {
		t.Fatal(err)
	}
	start(t, h, replier)
	requester := newService(t, h, ns)
	ctx := middleware.WithCorrelationID(context.Background(), "corr-"+ns)
	for i := 1; i <= 3; i++ {
		got, err := request(ctx, h, requester, Ask{N: i, From: "a"})
		if err != nil {
			t.Fatalf("Request %d: %v", i, err)
		}
		if want := (Answer{N: 2 * i, From: "replier"}); got != want {
			t.Fatalf("Request %d = %+v, want %+v", i, got, want)
		}
	}
	if got := seen.Load(); got != "corr-"+ns {
		t.Fatalf("replier saw correlation id %v, want %q", got, "corr-"+ns)
	}
}

// A ReplyError from the replier comes back as one, code and message, and
// the request is not retried.
func testReplyError(t *testing.T, h Harness) {
	ns := h.Namespace(t)
	replier := newService(t, h, ns)
	var calls atomic.Int32
	if err := service.Reply(replier, "answer", func(ctx context.Context, a Ask) (Answer, error) {
		calls.Add(1)
		return Answer{}, fmt.Errorf("checking stock: %w", &service.ReplyError{Code: "out_of_stock", Message: "no widgets left"})
	}, service.Retry(retry.Policy{MaxAttempts: 5, InitialInterval: time.Millisecond})); err != nil {
		t.Fatal(err)
	}
	start(t, h, replier)
	requester := newService(t, h, ns)
	_, err := request(context.Background(), h, requester, Ask{N: 1})
	var rerr *service.ReplyError
	if !errors.As(err, &rerr) {
		t.Fatalf("Request error = %v, want a *service.ReplyError", err)
	}
	if rerr.Code != "out_of_stock" || !strings.Contains(rerr.Message, "no widgets left") {
		t.Fatalf("ReplyError = %+v, want code out_of_stock with the message", rerr)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("replier called %d times, want 1 (a ReplyError is an answer, not retried)", n)
	}
}

// A request the replier gives up on (a permanent error) is dead-lettered,
// and its requester is told at once rather than at its timeout.
func testDeadLettered(t *testing.T, h Harness) {
	ns := h.Namespace(t)
	replier := newService(t, h, ns)
	if err := service.Reply(replier, "answer", func(ctx context.Context, a Ask) (Answer, error) {
		return Answer{}, failure.Permanent(errors.New("corrupt order"))
	}); err != nil {
		t.Fatal(err)
	}
	start(t, h, replier)
	requester := newService(t, h, ns)
	began := time.Now()
	_, err := request(context.Background(), h, requester, Ask{N: 1})
	var rerr *service.ReplyError
	if !errors.As(err, &rerr) || rerr.Code != service.CodeDeadLettered || !strings.Contains(rerr.Message, "corrupt order") {
		t.Fatalf("Request error = %v, want a ReplyError %q naming the cause", err, service.CodeDeadLettered)
	}
	if errors.Is(err, service.ErrRequestTimeout) || time.Since(began) >= h.Wait {
		t.Fatalf("the requester waited for its timeout")
	}
	if n := replier.Stats().DeadLettered; n != 1 {
		t.Fatalf("dead-lettered %d, want 1", n)
	}
}

// A reply that comes after its requester gave up is dropped, and the next
// request gets its own answer, not the stale one: the late reply is sent
// while the next request waits, so a reply matched to the wrong request
// would be seen.
func testLateReply(t *testing.T, h Harness) {
	ns := h.Namespace(t)
	release := make(chan struct{})
	nextWaits := make(chan struct{})
	lateSent := make(chan struct{})
	var lateID atomic.Value
	// The replier's stack returns once its reply was sent: that is when
	// the late reply is on its way.
	replier := newService(t, h, ns, service.WithMiddleware(func(next middleware.Handler) middleware.Handler {
		return func(ctx context.Context, d *middleware.Delivery) error {
			err := next(ctx, d)
			if id, _ := lateID.Load().(string); id != "" && id == d.Envelope.ID {
				close(lateSent)
			}
			return err
		}
	}))
	if err := service.Reply(replier, "answer", func(ctx context.Context, a Ask) (Answer, error) {
		switch a.N {
		case 1:
			lateID.Store(middleware.DeliveryFrom(ctx).Envelope.ID)
			<-release // past the requester's deadline
		case 2:
			close(nextWaits) // the next request is published, so it waits
			select {
			case <-lateSent:
			case <-time.After(h.Wait):
				return Answer{}, errors.New("the late reply was never sent")
			}
		}
		return Answer(a), nil
	}, service.Concurrency(2)); err != nil {
		t.Fatal(err)
	}
	start(t, h, replier)
	requester := newService(t, h, ns)
	// Open the inbox first, so that the short request below spends its
	// time waiting for the replier only.
	if _, err := request(context.Background(), h, requester, Ask{N: 0, From: "warm"}); err != nil {
		t.Fatalf("first request: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_, err := service.Request[Ask, Answer](ctx, requester, Ask{N: 1, From: "late"})
	cancel()
	if !errors.Is(err, service.ErrRequestTimeout) {
		t.Fatalf("Request = %v, want ErrRequestTimeout", err)
	}
	type result struct {
		a   Answer
		err error
	}
	next := make(chan result, 1)
	go func() {
		a, err := request(context.Background(), h, requester, Ask{N: 2, From: "next"})
		next <- result{a, err}
	}()
	select {
	case <-nextWaits:
	case <-time.After(h.Wait):
		t.Fatal("the next request never reached the replier")
	}
	close(release)
	r := <-next
	if r.err != nil || r.a != (Answer{N: 2, From: "next"}) {
		t.Fatalf("next Request = %+v, %v; want its own answer N=2, not the late reply", r.a, r.err)
	}
}

// A replier that stops while a request waits (its handler cancelled by the
// shutdown) and a new replier started in its place: the request is
// redelivered to the new one and answered within its timeout.
func testReplierRestart(t *testing.T, h Harness) {
	ns := h.Namespace(t)
	first := newService(t, h, ns)
	got := make(chan struct{})
	if err := service.Reply(first, "answer", func(ctx context.Context, a Ask) (Answer, error) {
		close(got)
		<-ctx.Done() // the shutdown timeout cancels it: the request is nacked
		return Answer{}, ctx.Err()
	}); err != nil {
		t.Fatal(err)
	}
	stopFirst := start(t, h, first)
	requester := newService(t, h, ns)
	type result struct {
		a   Answer
		err error
	}
	done := make(chan result, 1)
	go func() {
		a, err := request(context.Background(), h, requester, Ask{N: 7, From: "r"})
		done <- result{a, err}
	}()
	select {
	case <-got:
	case <-time.After(h.Wait):
		t.Fatal("the first replier never got the request")
	}
	stopFirst()
	second := newService(t, h, ns)
	if err := service.Reply(second, "answer", echo); err != nil {
		t.Fatal(err)
	}
	start(t, h, second)
	r := <-done
	if r.err != nil || r.a != (Answer{N: 7, From: "r"}) {
		t.Fatalf("Request = %+v, %v; want the second replier's answer", r.a, r.err)
	}
}

// Without a replier, Request fails with ErrRequestTimeout at its deadline;
// a replier that starts later skips the expired request (it does not run
// the function for it) and answers the next.
func testTimeout(t *testing.T, h Harness) {
	ns := h.Namespace(t)
	replier := newService(t, h, ns)
	var answered sync.Map
	if err := service.Reply(replier, "answer", func(ctx context.Context, a Ask) (Answer, error) {
		answered.Store(a.N, true)
		return Answer(a), nil
	}); err != nil {
		t.Fatal(err)
	}
	// Subscribe the group and open the requester's inbox with a first
	// request, so that requests are kept for the group while the replier
	// is down and the short request below spends its time waiting only.
	stop := start(t, h, replier)
	requester := newService(t, h, ns)
	if _, err := request(context.Background(), h, requester, Ask{N: 0, From: "k"}); err != nil {
		t.Fatalf("first request: %v", err)
	}
	stop()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	began := time.Now()
	_, err := service.Request[Ask, Answer](ctx, requester, Ask{N: 1, From: "k"})
	cancel()
	if !errors.Is(err, service.ErrRequestTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Request = %v, want ErrRequestTimeout wrapping context.DeadlineExceeded", err)
	}
	if took := time.Since(began); took > 3*time.Second+h.Wait/4 {
		t.Fatalf("Request returned %s after its 3s deadline", took-3*time.Second)
	}
	start(t, h, replier)
	// Same key: after the expired request on every broker.
	got, err := request(context.Background(), h, requester, Ask{N: 2, From: "k"})
	if err != nil || got.N != 2 {
		t.Fatalf("Request after restart = %+v, %v", got, err)
	}
	if _, ok := answered.Load(1); ok {
		t.Fatal("the replier ran its function for a request whose requester had given up")
	}
}

// Two requesting instances, requesting at once, each get exactly their own
// replies and never see the other's.
func testTwoInstances(t *testing.T, h Harness) {
	ns := h.Namespace(t)
	replier := newService(t, h, ns)
	if err := service.Reply(replier, "answer", echo, service.Concurrency(4)); err != nil {
		t.Fatal(err)
	}
	start(t, h, replier)
	const n = 10
	var wg sync.WaitGroup
	for _, name := range []string{"one", "two"} {
		drops := &dropCounter{}
		requester := newService(t, h, ns, service.WithLogger(slog.New(drops)))
		// The inbox first, so that the other instance's requests do not
		// come before this one reads.
		if _, err := request(context.Background(), h, requester, Ask{N: -1, From: name}); err != nil {
			t.Fatalf("%s: first request: %v", name, err)
		}
		t.Cleanup(func() {
			if d := drops.n.Load(); d != 0 {
				t.Errorf("instance %s saw %d replies that were not its own", name, d)
			}
		})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := request(context.Background(), h, requester, Ask{N: i, From: name})
				if err != nil || got != (Answer{N: i, From: name}) {
					t.Errorf("%s: Request %d = %+v, %v", name, i, got, err)
				}
			}()
		}
	}
	wg.Wait()
}

// dropCounter is a slog handler counting the replies a requester dropped.
type dropCounter struct{ n atomic.Int32 }

func (d *dropCounter) Enabled(context.Context, slog.Level) bool { return true }
func (d *dropCounter) Handle(_ context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, "dropping a reply") {
		d.n.Add(1)
	}
	return nil
}
func (d *dropCounter) WithAttrs([]slog.Attr) slog.Handler { return d }
func (d *dropCounter) WithGroup(string) slog.Handler      { return d }

// collect consumes topic as a group and reports each Item's N.
func collect(t *testing.T, h Harness, ns, topic string) <-chan int {
	t.Helper()
	svc := newService(t, h, ns)
	got := make(chan int, 1024)
	if err := service.Handle(svc, "collect."+topic, func(_ context.Context, it Item) error {
		got <- it.N
		return nil
	}, service.Topic(topic)); err != nil {
		t.Fatal(err)
	}
	start(t, h, svc)
	return got
}

// countingBroker counts how its publisher is called.
type countingBroker struct {
	broker.Broker
	publishes, asyncCalls atomic.Int32
}

func (b *countingBroker) Publisher() message.Publisher {
	return &countingPublisher{b.Broker.Publisher(), b}
}

type countingPublisher struct {
	message.Publisher
	b *countingBroker
}

func (p *countingPublisher) Publish(topic string, msgs ...*message.Message) error {
	p.b.publishes.Add(1)
	return p.Publisher.Publish(topic, msgs...)
}

// PublishAsync counts a pipelined call, and goes on to the adapter's
// publisher. One that cannot pipeline would be called once per message
// by broker.PublishAsync: those calls count as the Publish calls they
// are, so the test sees an adapter that lost its AsyncPublisher.
func (p *countingPublisher) PublishAsync(ctx context.Context, topic string, done func(*message.Message, error), msgs ...*message.Message) {
	p.b.asyncCalls.Add(1)
	if _, ok := p.Publisher.(broker.AsyncPublisher); !ok {
		p.b.publishes.Add(int32(len(msgs)))
	}
	broker.PublishAsync(ctx, p.Publisher, topic, done, msgs...)
}

// A batch over two topics is delivered whole, with the messages handed
// over in one pipelined call per topic and never one Publish (one
// confirm wait) per message.
func testBatch(t *testing.T, h Harness) {
	ns := h.Namespace(t)
	a, b := collect(t, h, ns, "items.a"), collect(t, h, ns, "items.b")
	cb := &countingBroker{Broker: h.Open(t)}
	svc := service.New(cb, service.WithNamespace(ns))
	const n = 100
	var batch []event.Event
	for i := range n {
		topic := "items.a"
		if i%2 == 1 {
			topic = "items.b"
		}
		batch = append(batch, Item{N: i, Topic: topic})
	}
	if err := svc.PublishBatch(context.Background(), batch...); err != nil {
		t.Fatalf("PublishBatch: %v", err)
	}
	if p, c := cb.publishes.Load(), cb.asyncCalls.Load(); p != 0 || c != 2 {
		t.Fatalf("publisher called: %d Publish, %d PublishAsync; want 0 and 2 (one per topic)", p, c)
	}
	if got := svc.Stats().Published; got != n {
		t.Fatalf("Stats.Published = %d, want %d", got, n)
	}
	seen := map[int]bool{}
	deadline := time.After(h.Wait)
	for len(seen) < n {
		select {
		case i := <-a:
			seen[i] = true
		case i := <-b:
			seen[i] = true
		case <-deadline:
			t.Fatalf("%d of %d delivered within %s", len(seen), n, h.Wait)
		}
	}
}

// A batch with an event that cannot be encoded is refused whole: nothing
// is published, and the error says which event was at fault.
func testBatchRefused(t *testing.T, h Harness) {
	ns := h.Namespace(t)
	got := collect(t, h, ns, "items.a")
	svc := newService(t, h, ns)
	err := svc.PublishBatch(context.Background(),
		Item{N: 1, Topic: "items.a"}, Item{N: 2, Topic: "items.a", Bad: func() {}}, Item{N: 3, Topic: "items.a"})
	var berr *service.PublishBatchError
	if !errors.As(err, &berr) || berr.Sent || fmt.Sprint(berr.Failed()) != "[1]" {
		t.Fatalf("PublishBatch = %v, want a PublishBatchError refusing event #1 before sending", err)
	}
	// Nothing was sent: the next publish is the first thing delivered.
	if err := svc.Publish(context.Background(), Item{N: 4, Topic: "items.a"}); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-got:
		if n != 4 {
			t.Fatalf("delivered %d first, want 4: the refused batch was partly sent", n)
		}
	case <-time.After(h.Wait):
		t.Fatal("nothing delivered")
	}
}

// Events of a batch that fail on the broker are named one by one; the
// others are delivered.
func testBatchPartial(t *testing.T, h Harness) {
	if h.FailingTopic == "" {
		t.Skip("this broker cannot fail one topic while another works; see BatchRefusedBeforeSending")
	}
	ns := h.Namespace(t)
	got := collect(t, h, ns, "items.a")
	svc := newService(t, h, ns)
	err := svc.PublishBatch(context.Background(),
		Item{N: 0, Topic: "items.a"}, Item{N: 1, Topic: h.FailingTopic}, Item{N: 2, Topic: "items.a"}, Item{N: 3, Topic: h.FailingTopic})
	var berr *service.PublishBatchError
	if !errors.As(err, &berr) || !berr.Sent || fmt.Sprint(berr.Failed()) != "[1 3]" {
		t.Fatalf("PublishBatch = %v, want a PublishBatchError naming events 1 and 3", err)
	}
	seen := map[int]bool{}
	deadline := time.After(h.Wait)
	for len(seen) < 2 {
		select {
		case n := <-got:
			seen[n] = true
		case <-deadline:
			t.Fatalf("delivered %v, want 0 and 2", seen)
		}
	}
	if !seen[0] || !seen[2] {
		t.Fatalf("delivered %v, want 0 and 2", seen)
	}
}

// testLogger discards, unless the test is verbose about failures.
func testLogger(*testing.T) *slog.Logger { return slog.New(slog.DiscardHandler) }
