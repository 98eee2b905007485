package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/retry"
	"github.com/switchyard-go/switchyard/pkg/service"
)

func TestDelayedRetryThroughBroker(t *testing.T) {
	b := newBroker(t)
	svc := service.New(b)
	attempts := make(chan int, 10)
	other := make(chan string, 10)
	if err := service.Handle(svc, "charge", func(ctx context.Context, e orderPlaced) error {
		n := middleware.DeliveryFrom(ctx).Attempt
		attempts <- n
		if n < 3 {
			return errors.New("payment provider unavailable")
		}
		return nil
	}, service.Group("billing"), service.WithPolicy(service.Policy{
		MaxInProcessWait: time.Nanosecond, // every wait goes through the broker
		Retry:            retry.Policy{MaxAttempts: 5, InitialInterval: time.Millisecond, MaxInterval: 2 * time.Millisecond},
	})); err != nil {
		t.Fatal(err)
	}
	if err := service.Handle(svc, "ship", func(_ context.Context, e orderPlaced) error {
		other <- e.OrderID
		return nil
	}, service.Group("shipping")); err != nil {
		t.Fatal(err)
	}
	stop := start(t, svc)
	if err := svc.Publish(context.Background(), orderPlaced{OrderID: "o-1"}); err != nil {
		t.Fatal(err)
	}
	var got []int
	for range 3 {
		got = append(got, recv(t, attempts, "an attempt"))
	}
	if !slices.Equal(got, []int{1, 2, 3}) {
		t.Errorf("attempts = %v, want [1 2 3] counted across redeliveries", got)
	}
	recv(t, other, "the other group's delivery")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if len(other) != 0 {
		t.Errorf("the delayed retry reached another group %d more times", len(other))
	}
	if s := svc.Stats(); s.Retried != 2 || s.Handled != 2 || s.DeadLettered != 0 || s.Nacked != 0 {
		t.Errorf("stats = %+v", s)
	}
}

type pinged struct {
	N int `json:"n"`
}

func (pinged) EventType() string { return "test.pinged" }
func (pinged) EventVersion() int { return 1 }

func TestHopLimitStopsEventLoop(t *testing.T) {
	b := newBroker(t)
	svc := service.New(b)
	var mu sync.Mutex
	var hops []int
	if err := service.Handle(svc, "echo", func(ctx context.Context, e pinged) error {
		mu.Lock()
		hops = append(hops, middleware.DeliveryFrom(ctx).Envelope.HopCount)
		mu.Unlock()
		return svc.Publish(ctx, pinged{N: e.N + 1}) // feeds itself: a loop
	}, service.Group("echo"), service.Publishes(pinged{}), service.WithPolicy(service.Policy{HopLimit: 3})); err != nil {
		t.Fatal(err)
	}
	dead := probe(t, b, "ops", "echo.dead_letter")
	stop := start(t, svc)
	if err := svc.Publish(context.Background(), pinged{}, service.WithID("root")); err != nil {
		t.Fatal(err)
	}
	md := recv(t, dead, "the loop's dead letter").Metadata
	if md.Get(header.DeadLetterReason) != "hop_limit" || md.Get(header.HopCount) != "4" || md.Get(header.CorrelationID) != "root" {
		t.Errorf("dead letter: reason %q hops %q correlation %q", md.Get(header.DeadLetterReason), md.Get(header.HopCount), md.Get(header.CorrelationID))
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(hops, []int{0, 1, 2, 3}) {
		t.Errorf("handler saw hops %v, want [0 1 2 3]", hops)
	}
}

func TestPerKeyOrderWithConcurrency(t *testing.T) {
	b := newBroker(t)
	svc := service.New(b)
	var mu sync.Mutex
	seen := map[string][]int{}
	total := make(chan struct{}, 100)
	type seq struct {
		Key string `json:"key"`
		N   int    `json:"n"`
	}
	if err := service.Handle(svc, "proj", func(_ context.Context, e orderPlaced) error {
		var s seq
		_ = json.Unmarshal([]byte(e.OrderID), &s)
		time.Sleep(time.Duration(s.N%3) * time.Millisecond) // let workers interleave
		mu.Lock()
		seen[s.Key] = append(seen[s.Key], s.N)
		mu.Unlock()
		total <- struct{}{}
		return nil
	}, service.Concurrency(4)); err != nil {
		t.Fatal(err)
	}
	start(t, svc)
	const keys, per = 4, 10
	for n := range per {
		for k := range keys {
			id, _ := json.Marshal(seq{fmt.Sprintf("k%d", k), n})
			if err := svc.Publish(context.Background(), orderPlaced{OrderID: string(id)}, service.WithKey(fmt.Sprintf("k%d", k))); err != nil {
				t.Fatal(err)
			}
		}
	}
	for range keys * per {
		recv(t, total, "a delivery")
	}
	mu.Lock()
	defer mu.Unlock()
	for k, ns := range seen {
		if !slices.IsSorted(ns) || len(ns) != per {
			t.Errorf("key %s handled in order %v", k, ns)
		}
	}
}

type orderPlacedV2 struct {
	OrderID string `json:"order_id"`
	Total   int    `json:"total"`
}

func (orderPlacedV2) EventType() string  { return "orders.order_placed" }
func (orderPlacedV2) EventVersion() int  { return 2 }
func (orderPlacedV2) EventTopic() string { return "orders" }

func TestUpcastAndNewerVersion(t *testing.T) {
	b := newBroker(t)
	svc := service.New(b)
	got := make(chan orderPlacedV2, 10)
	if err := service.Handle(svc, "proj", func(_ context.Context, e orderPlacedV2) error {
		got <- e
		return nil
	}, service.Group("proj")); err != nil {
		t.Fatal(err)
	}
	if err := svc.Registry().Upcast("orders.order_placed", 1, func(p []byte) ([]byte, error) {
		var v1 struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(p, &v1); err != nil {
			return nil, err
		}
		return json.Marshal(orderPlacedV2{OrderID: v1.ID, Total: -1})
	}); err != nil {
		t.Fatal(err)
	}
	dead := probe(t, b, "ops", "proj.dead_letter")
	start(t, svc)
	raw := func(id, version, payload string) *message.Message {
		m := message.NewMessage(id, []byte(payload))
		m.Metadata.Set(header.ID, id)
		m.Metadata.Set(header.Type, "orders.order_placed")
		m.Metadata.Set(header.Version, version)
		return m
	}
	bad := raw("v2-bad", "2", `{"order_id":`)
	bad.Metadata.Set(header.ContentType, "application/json")
	avro := raw("v2-avro", "2", `{}`)
	avro.Metadata.Set(header.ContentType, "application/avro")
	if err := b.Publisher().Publish("orders", raw("v1", "1", `{"id":"o-1"}`), raw("v3", "3", `{}`), bad, avro); err != nil {
		t.Fatal(err)
	}
	if e := recv(t, got, "the upcast event"); e != (orderPlacedV2{OrderID: "o-1", Total: -1}) {
		t.Errorf("upcast v1 = %+v", e)
	}
	reasons := map[string]string{}
	for range 3 {
		m := recv(t, dead, "a dead letter")
		reasons[m.UUID] = m.Metadata.Get(header.DeadLetterReason)
	}
	want := map[string]string{"v3": "unsupported_version", "v2-bad": "decode", "v2-avro": "unsupported_content_type"}
	if !maps.Equal(reasons, want) {
		t.Errorf("dead-letter reasons = %v, want %v", reasons, want)
	}
}

func TestUserMiddlewareRunsPerAttempt(t *testing.T) {
	b := newBroker(t)
	var mu sync.Mutex
	var seen []int
	mw := func(next middleware.Handler) middleware.Handler {
		return func(ctx context.Context, d *middleware.Delivery) error {
			mu.Lock()
			seen = append(seen, d.Attempt)
			mu.Unlock()
			return next(ctx, d)
		}
	}
	svc := service.New(b, service.WithMiddleware(mw), service.WithClock(immediateClock{}))
	calls := 0
	done := make(chan struct{})
	if err := service.Handle(svc, "h", func(context.Context, orderPlaced) error {
		calls++
		if calls < 3 {
			return errors.New("again")
		}
		close(done)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	stop := start(t, svc)
	if err := svc.Publish(context.Background(), orderPlaced{OrderID: "o"}); err != nil {
		t.Fatal(err)
	}
	recv(t, done, "success")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seen, []int{1, 2, 3}) {
		t.Errorf("user middleware saw attempts %v, want [1 2 3]", seen)
	}
}

// failingBroker fails the n-th Subscriber call and records closed subscribers.
type failingBroker struct {
	*memory.Broker // keeps Delay, so the runtime accepts the default retry policy
	mu             sync.Mutex
	calls          int
	failAt         int
	closed         int
}

type closeCounting struct {
	message.Subscriber
	b *failingBroker
}

func (c closeCounting) Close() error {
	c.b.mu.Lock()
	c.b.closed++
	c.b.mu.Unlock()
	return c.Subscriber.Close()
}

func (f *failingBroker) Subscriber(group string, opts broker.SubscriberOptions) (message.Subscriber, error) {
	f.mu.Lock()
	f.calls++
	n := f.calls
	f.mu.Unlock()
	if n == f.failAt {
		return nil, errors.New("channel limit reached")
	}
	s, err := f.Broker.Subscriber(group, opts)
	if err != nil {
		return nil, err
	}
	return closeCounting{s, f}, nil
}

func TestRunSubscriberErrorClosesEarlierSubscribers(t *testing.T) {
	fb := &failingBroker{Broker: newBroker(t), failAt: 2}
	svc := service.New(fb)
	noop := func(context.Context, orderPlaced) error { return nil }
	for _, g := range []string{"a", "b"} {
		if err := service.Handle(svc, g, noop, service.Group(g)); err != nil {
			t.Fatal(err)
		}
	}
	err := svc.Run(context.Background())
	if err == nil {
		t.Fatal("Run = nil with a failing subscriber")
	}
	fb.mu.Lock()
	defer fb.mu.Unlock()
	if fb.closed != 1 {
		t.Errorf("closed %d subscribers, want the 1 opened before the failure", fb.closed)
	}
}

// A dead letter replayed by an operator (after the bug is fixed) must get the
// whole retry policy again, however many delayed retries it went through
// before it was given up on.
func TestReplayedDeadLetterStartsAfresh(t *testing.T) {
	b := newBroker(t)
	svc := service.New(b)
	var mu sync.Mutex
	fixed := false
	attempts := make(chan int, 20)
	if err := service.Handle(svc, "charge", func(ctx context.Context, _ orderPlaced) error {
		attempts <- middleware.DeliveryFrom(ctx).Attempt
		mu.Lock()
		defer mu.Unlock()
		if !fixed {
			return errors.New("bug")
		}
		return errors.New("still flaky once")
	}, service.Group("billing"), service.WithPolicy(service.Policy{
		MaxInProcessWait: time.Nanosecond,
		Retry:            retry.Policy{MaxAttempts: 3, InitialInterval: time.Millisecond, MaxInterval: 2 * time.Millisecond, MaxElapsed: time.Hour},
	})); err != nil {
		t.Fatal(err)
	}
	dead := probe(t, b, "ops", "billing.dead_letter")
	start(t, svc)
	if err := svc.Publish(context.Background(), orderPlaced{OrderID: "o-1"}); err != nil {
		t.Fatal(err)
	}
	dl := recv(t, dead, "the dead letter")
	for range 3 {
		recv(t, attempts, "a first-life attempt")
	}
	mu.Lock()
	fixed = true
	mu.Unlock()
	replay := dl.Copy()
	if err := b.Publisher().Publish("orders", replay); err != nil {
		t.Fatal(err)
	}
	if n := recv(t, attempts, "the replay's first attempt"); n != 1 {
		t.Errorf("replayed message started at attempt %d, want 1", n)
	}
	if n := recv(t, attempts, "the replay's second attempt"); n != 2 {
		t.Errorf("replayed message's second attempt is %d, want 2", n)
	}
	md := recv(t, dead, "the second dead letter").Metadata
	if md.Get(header.DeadLetterAttempts) != "3" {
		t.Errorf("second dead letter after %s attempts, want 3", md.Get(header.DeadLetterAttempts))
	}
}

// flakyDLQBroker fails dead-letter publishes while down is set.
type flakyDLQBroker struct {
	*memory.Broker // keeps Delay, so the runtime accepts the default retry policy
	mu             sync.Mutex
	down           bool
}

func (f *flakyDLQBroker) Publisher() message.Publisher {
	return flakyPublisher{f.Broker.Publisher(), f}
}

func (f *flakyDLQBroker) setDown(v bool) {
	f.mu.Lock()
	f.down = v
	f.mu.Unlock()
}

type flakyPublisher struct {
	message.Publisher
	f *flakyDLQBroker
}

func (p flakyPublisher) Publish(topic string, msgs ...*message.Message) error {
	p.f.mu.Lock()
	down := p.f.down
	p.f.mu.Unlock()
	if down && strings.HasSuffix(topic, ".dead_letter") {
		return errors.New("dead-letter topic unavailable")
	}
	return p.Publisher.Publish(topic, msgs...)
}

func TestFailedDeadLetterPublishNacks(t *testing.T) {
	mb := newBroker(t)
	fb := &flakyDLQBroker{Broker: mb, down: true}
	svc := service.New(fb)
	calls := make(chan struct{}, 100)
	if err := service.Handle(svc, "charge", func(context.Context, orderPlaced) error {
		calls <- struct{}{}
		return failure.Permanent(errors.New("negative total"))
	}, service.Group("billing")); err != nil {
		t.Fatal(err)
	}
	dead := probe(t, mb, "ops", "billing.dead_letter")
	stop := start(t, svc)
	if err := svc.Publish(context.Background(), orderPlaced{OrderID: "o-1"}, service.WithID("evt-1")); err != nil {
		t.Fatal(err)
	}
	recv(t, calls, "the first delivery")
	recv(t, calls, "a redelivery after the failed dead-letter publish")
	fb.setDown(false)
	if m := recv(t, dead, "the dead letter once the topic is back"); m.UUID != "evt-1" {
		t.Errorf("dead letter %s", m.UUID)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if s := svc.Stats(); s.Nacked < 1 || s.DeadLettered != 1 {
		t.Errorf("stats = %+v, want nacks and exactly one dead letter", s)
	}
	if d := mb.Depth("orders", "billing"); d != 0 {
		t.Errorf("depth = %d after the dead letter was confirmed", d)
	}
}

// A publish blocked by backpressure gives up when its context does.
func TestPublishHonoursContextWhenBlocked(t *testing.T) {
	b, err := memory.New(memory.Config{BufferSize: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// A group that exists but consumes nothing yet (a provisioned operator
	// group would not apply backpressure).
	sub, err := b.Subscriber("nobody-consumes", broker.SubscriberOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.(message.SubscribeInitializer).SubscribeInitialize("svc-test.blocked"); err != nil {
		t.Fatal(err)
	}
	svc := service.New(b)
	// Fill the only slot of the group's queue, then block.
	if err := svc.Publish(context.Background(), blocked{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- svc.Publish(ctx, blocked{}) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Publish = %v, want the context's deadline error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Publish ignored its context while blocked on a full buffer")
	}
}

type blocked struct{}

func (blocked) EventType() string { return "svc-test.blocked" }
func (blocked) EventVersion() int { return 1 }
