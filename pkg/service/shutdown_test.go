package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pkg/service"
)

const shuttingDown = "shutting down"

func TestGracefulShutdownFinishesInFlight(t *testing.T) {
	b := newBroker(t)
	logger, logs := newLogCapture(shuttingDown)
	svc := service.New(b, service.WithLogger(logger))
	started, release := make(chan struct{}), make(chan struct{})
	handlerCtxErr := make(chan error, 1)
	if err := service.Handle(svc, "reserve", func(ctx context.Context, e orderPlaced) error {
		close(started)
		<-release
		handlerCtxErr <- ctx.Err()
		return svc.Publish(ctx, stockReserved{OrderID: e.OrderID})
	}, service.Group("inventory"), service.Publishes(stockReserved{})); err != nil {
		t.Fatal(err)
	}
	published := probe(t, b, "audit", "inventory.stock_reserved")
	stop := start(t, svc)
	if err := svc.Publish(context.Background(), orderPlaced{OrderID: "o-1"}); err != nil {
		t.Fatal(err)
	}
	recv(t, started, "the handler to start")

	runErr := make(chan error, 1)
	go func() { runErr <- stop() }()
	recv(t, logs.seen(shuttingDown), "Run to begin shutting down")
	close(release)

	if err := recv(t, handlerCtxErr, "the handler to finish"); err != nil {
		t.Errorf("handler context cancelled during graceful shutdown: %v", err)
	}
	if err := recv(t, runErr, "Run to return"); err != nil {
		t.Errorf("Run = %v, want nil after a clean shutdown", err)
	}
	if m := recv(t, published, "the event published during shutdown"); m.Metadata.Get("ce_type") != "inventory.stock_reserved" {
		t.Errorf("published %v", m.Metadata)
	}
	if d := b.Depth("orders", "inventory"); d != 0 {
		t.Errorf("in-flight message not acked: depth %d", d)
	}
	if s := svc.Stats(); s.Handled != 1 || s.Nacked != 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestShutdownTimeoutCancelsAndNacks(t *testing.T) {
	for name, ret := range map[string]func(ctx context.Context) error{
		"ctx error":       func(ctx context.Context) error { return ctx.Err() },
		"unwrapped error": func(context.Context) error { return errors.New("query aborted: connection closed") },
	} {
		t.Run(name, func(t *testing.T) { testShutdownTimeout(t, ret) })
	}
}

func testShutdownTimeout(t *testing.T, ret func(context.Context) error) {
	b := newBroker(t)
	logger, logs := newLogCapture(shuttingDown)
	svc := service.New(b, service.WithLogger(logger), service.WithShutdownTimeout(50*time.Millisecond))
	started := make(chan struct{}, 10)
	never := make(chan struct{})
	handlerCtxErr := make(chan error, 10)
	if err := service.Handle(svc, "reserve", func(ctx context.Context, _ orderPlaced) error {
		started <- struct{}{}
		select {
		case <-never:
		case <-ctx.Done():
		}
		handlerCtxErr <- ctx.Err()
		return ret(ctx)
	}, service.Group("inventory")); err != nil {
		t.Fatal(err)
	}
	stop := start(t, svc)
	if err := svc.Publish(context.Background(), orderPlaced{OrderID: "o-1"}, service.WithID("evt-1")); err != nil {
		t.Fatal(err)
	}
	recv(t, started, "the handler to start")
	if err := stop(); err != nil {
		t.Errorf("Run = %v", err)
	}
	recv(t, logs.seen(shuttingDown), "the shutdown log")
	if err := recv(t, handlerCtxErr, "the handler to return"); !errors.Is(err, context.Canceled) {
		t.Errorf("handler ctx err = %v, want cancelled after the shutdown timeout", err)
	}
	if s := svc.Stats(); s.Nacked != 1 || s.DeadLettered != 0 || s.Handled != 0 {
		t.Errorf("stats = %+v, want one nack and no dead letter", s)
	}
	for _, q := range b.Stats() {
		if q.Topic == service.DeadLetterTopicFor("inventory") && q.Queued+q.InFlight+q.Delayed > 0 {
			t.Errorf("a shutdown was dead-lettered: %+v", q)
		}
	}
	// The message is still the group's and is redelivered to its next consumer.
	again := probe(t, b, "inventory", "orders")
	if m := recv(t, again, "the redelivery"); m.UUID != "evt-1" {
		t.Errorf("redelivered %s, want evt-1", m.UUID)
	}
}

// Messages the broker handed out but no handler finished before shutdown
// are not lost: each one is either handled (and acked) or goes back to the
// group and reaches its next consumer.
func TestShutdownLosesNothingPrefetched(t *testing.T) {
	b := newBroker(t)
	logger, logs := newLogCapture(shuttingDown)
	svc := service.New(b, service.WithLogger(logger))
	started, release := make(chan struct{}, 10), make(chan struct{})
	handled := make(chan string, 10)
	if err := service.Handle(svc, "proj", func(_ context.Context, e orderPlaced) error {
		started <- struct{}{}
		<-release
		handled <- e.OrderID
		return nil
	}, service.Group("proj"), service.Concurrency(1)); err != nil {
		t.Fatal(err)
	}
	stop := start(t, svc)
	want := []string{"o-1", "o-2", "o-3", "o-4"}
	for _, id := range want {
		if err := svc.Publish(context.Background(), orderPlaced{OrderID: id}); err != nil {
			t.Fatal(err)
		}
	}
	recv(t, started, "the first handler")
	runErr := make(chan error, 1)
	go func() { runErr <- stop() }()
	recv(t, logs.seen(shuttingDown), "shutdown to begin")
	close(release)
	if err := recv(t, runErr, "Run to return"); err != nil {
		t.Fatal(err)
	}
	close(handled)
	var got []string
	for id := range handled {
		got = append(got, id)
	}
	t.Logf("handled before stopping: %v", got)
	rest := probe(t, b, "proj", "orders")
	for len(got) < len(want) {
		m := recv(t, rest, "a message back in the group after shutdown")
		var e orderPlaced
		if err := json.Unmarshal(m.Payload, &e); err != nil {
			t.Fatal(err)
		}
		got = append(got, e.OrderID)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("handled + redelivered = %v, want each of %v once", got, want)
	}
}

// On a broker whose nack rewinds (Kafka: the committed offset cannot pass a
// handed-back message, so the next owner of the partition would handle
// again everything acked after it), shutdown finishes the messages held
// behind a busy key instead of handing them back. Elsewhere they go back
// to the broker, as before.
func TestShutdownFinishesHeldMessagesWhereANackRewinds(t *testing.T) {
	for _, rewinds := range []bool{true, false} {
		t.Run(fmt.Sprintf("NackRewinds=%v", rewinds), func(t *testing.T) {
			b := newFakeBroker(t)
			b.nackRewinds = rewinds
			logger, logs := newLogCapture(shuttingDown)
			svc := service.New(b, service.WithLogger(logger))
			started, release := make(chan int, 10), make(chan struct{})
			if err := service.Handle(svc, "seq", func(_ context.Context, e seqEvent) error {
				started <- e.Seq
				if e.Seq == 0 {
					<-release // the key is busy while the others are held
				}
				return nil
			}, service.Concurrency(4)); err != nil {
				t.Fatal(err)
			}
			stop := start(t, svc)
			const n = 4
			for i := range n {
				if err := svc.Publish(context.Background(), seqEvent{Key: "k", Seq: i}); err != nil {
					t.Fatal(err)
				}
			}
			if got := recv(t, started, "the first message of the key"); got != 0 {
				t.Fatalf("started %d first", got)
			}
			runErr := make(chan error, 1)
			go func() { runErr <- stop() }()
			recv(t, logs.seen(shuttingDown), "shutdown to begin")
			want := map[bool][2]int{true: {n, 0}, false: {1, n - 1}}[rewinds]
			if rewinds {
				b.waitEnded(t, "seq") // intake stopped: the held messages are the dispatcher's to settle
			} else {
				waitSettled(t, b, 0, want[1]) // handed back while the key is busy
			}
			close(release)
			if err := recv(t, runErr, "Run to return"); err != nil {
				t.Fatal(err)
			}
			waitSettled(t, b, want[0], want[1])
			for i := 1; i < want[0]; i++ {
				if got := <-started; got != i {
					t.Errorf("handled %d, want %d: the key's order", got, i)
				}
			}
		})
	}
}

// Where a nack rewinds, the held messages are finished only within the
// shutdown timeout: after it they are handed back, not started.
func TestShutdownTimeoutHandsBackHeldMessagesWhereANackRewinds(t *testing.T) {
	b := newFakeBroker(t)
	b.nackRewinds = true
	svc := service.New(b, service.WithShutdownTimeout(50*time.Millisecond))
	started := make(chan int, 10)
	if err := service.Handle(svc, "seq", func(ctx context.Context, e seqEvent) error {
		started <- e.Seq
		<-ctx.Done() // outlives the shutdown timeout
		return ctx.Err()
	}); err != nil {
		t.Fatal(err)
	}
	stop := start(t, svc)
	for i := range 3 {
		if err := svc.Publish(context.Background(), seqEvent{Key: "k", Seq: i}); err != nil {
			t.Fatal(err)
		}
	}
	recv(t, started, "the first message")
	if err := stop(); err != nil {
		t.Errorf("Run = %v", err)
	}
	waitSettled(t, b, 0, 3)
	if len(started) != 0 {
		t.Errorf("a held message was started after the shutdown timeout")
	}
}
