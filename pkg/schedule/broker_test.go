package schedule_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/schedule"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// TestOnBrokerEveryGroupNeverEarly: on the memory broker's delay
// machinery a scheduled tick reaches both groups, not before due; cancel
// says it is not supported.
func TestOnBrokerEveryGroupNeverEarly(t *testing.T) {
	b, err := memory.New(memory.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	sch := schedule.NewOnBroker(b, schedule.BrokerConfig{})
	svc := service.New(b, service.WithScheduler(sch), service.WithCompanion(sch))
	rec := &recorder{ch: make(chan struct{}, 1)}
	for _, g := range []string{"a", "b"} {
		if err := service.Handle(svc, g, func(ctx context.Context, e tick) error {
			rec.add(got{group: g, n: e.N, at: time.Now()})
			return nil
		}, service.Group(g)); err != nil {
			t.Fatal(err)
		}
	}
	run(t, svc)
	at := time.Now().Add(150 * time.Millisecond)
	id, err := svc.PublishAt(context.Background(), tick{N: 1}, at)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.CancelScheduled(context.Background(), id); !errors.Is(err, service.ErrCancelUnsupported) {
		t.Fatalf("cancel: %v, want ErrCancelUnsupported", err)
	}
	seen := rec.waitFor(t, 10*time.Second, "the tick in both groups", func(s []got) bool { return len(s) >= 2 })
	for _, g := range seen {
		if g.at.Before(at) {
			t.Errorf("%s handled it %s early", g.group, at.Sub(g.at))
		}
	}
	if seen[0].group == seen[1].group {
		t.Errorf("handled twice by %s, never by the other group", seen[0].group)
	}
}

// noDelay is a broker without the delay capability.
type noDelay struct{ b *memory.Broker }

func (n noDelay) Name() string                      { return "nodelay" }
func (n noDelay) Publisher() message.Publisher      { return n.b.Publisher() }
func (n noDelay) Capabilities() broker.Capabilities { return broker.Capabilities{} }
func (n noDelay) Close() error                      { return nil }
func (n noDelay) Subscriber(g string, o broker.SubscriberOptions) (message.Subscriber, error) {
	return n.b.Subscriber(g, o)
}

func TestOnBrokerWithoutDelayer(t *testing.T) {
	mb, _ := memory.New(memory.Config{}, nil)
	defer mb.Close()
	sch := schedule.NewOnBroker(noDelay{mb}, schedule.BrokerConfig{})
	err := sch.Schedule(context.Background(), "t", message.NewMessage("x", nil), time.Now())
	if err == nil || !strings.Contains(err.Error(), `broker "nodelay" cannot delay`) {
		t.Fatalf("Schedule on a broker without Delayer: %v, want an error naming it", err)
	}
}

// endingRelay is the memory broker with a relay subscription that the
// test ends, as a broker that refuses it does.
type endingRelay struct {
	*memory.Broker
	end chan struct{}
}

func (e endingRelay) Subscriber(g string, o broker.SubscriberOptions) (message.Subscriber, error) {
	sub, err := e.Broker.Subscriber(g, o)
	if err != nil || g != schedule.DefaultRelayGroup {
		return sub, err
	}
	return &endingSub{Subscriber: sub, end: e.end}, nil
}

type endingSub struct {
	message.Subscriber
	end chan struct{}
}

func (s *endingSub) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	in, err := s.Subscriber.Subscribe(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := make(chan *message.Message)
	go func() {
		defer close(out)
		for {
			select {
			case m, ok := <-in:
				if !ok {
					return
				}
				out <- m
			case <-s.end:
				return
			}
		}
	}()
	return out, nil
}

func (s *endingSub) Failure() error { return errors.New("ACCESS_REFUSED: permissions revoked") }

// A relay whose subscription the broker ends while the service runs ends
// Run with the broker's reason, instead of leaving a ready service that
// never delivers what is scheduled. Break it (return from the relay
// without reporting) and Run runs on.
func TestOnBrokerRelayEndingEndsRun(t *testing.T) {
	mb, err := memory.New(memory.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mb.Close() })
	b := endingRelay{Broker: mb, end: make(chan struct{})}
	sch := schedule.NewOnBroker(b, schedule.BrokerConfig{})
	svc := service.New(b, service.WithScheduler(sch), service.WithCompanion(sch))
	if err := service.Handle(svc, "a", func(context.Context, tick) error { return nil }); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- svc.Run(context.Background()) }()
	select {
	case <-svc.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("service not ready after 30s")
	}
	close(b.end)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "ACCESS_REFUSED") || !strings.Contains(err.Error(), schedule.DefaultRelayTopic) {
			t.Fatalf("Run = %v, want the relay's end with the broker's reason and topic", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run still running 30s after the relay's subscription ended")
	}
}

// The relay starts again when Run does: a service run a second time
// (after a failed or ended Run) still relays what it schedules, on the
// broker's delay machinery and from a store.
func TestRelayRunsAgain(t *testing.T) {
	t.Run("on the broker", func(t *testing.T) {
		b, err := memory.New(memory.Config{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		sch := schedule.NewOnBroker(b, schedule.BrokerConfig{})
		svc := service.New(b, service.WithScheduler(sch), service.WithCompanion(sch))
		rec := &recorder{ch: make(chan struct{}, 1)}
		if err := service.Handle(svc, "a", func(ctx context.Context, e tick) error {
			rec.add(got{group: "a", n: e.N, at: time.Now()})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		relaysOnSecondRun(t, svc, rec)
	})
	t.Run("from a store", func(t *testing.T) {
		svc, rec := newService(t, schedule.NewMemory())
		relaysOnSecondRun(t, svc, rec)
	})
}

func relaysOnSecondRun(t *testing.T, svc *service.Service, rec *recorder) {
	t.Helper()
	if err := run(t, svc)(); err != nil {
		t.Fatalf("first Run: %v", err)
	}
	run(t, svc)
	if _, err := svc.PublishAt(context.Background(), tick{N: 2}, time.Now().Add(50*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, 10*time.Second, "the tick scheduled in the second Run", func(s []got) bool { return len(s) >= 1 })
}
