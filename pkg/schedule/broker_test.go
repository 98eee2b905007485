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
