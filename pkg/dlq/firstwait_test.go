package dlq_test

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/dlq"
)

// slowJoin is the memory broker with a subscription that hands out nothing
// for a while, as a Kafka consumer group does while it joins.
type slowJoin struct {
	*memory.Broker
	delay time.Duration
}

func (b slowJoin) Subscriber(group string, opts broker.SubscriberOptions) (message.Subscriber, error) {
	sub, err := b.Broker.Subscriber(group, opts)
	return slowSubscriber{sub, b.delay}, err
}

type slowSubscriber struct {
	message.Subscriber
	delay time.Duration
}

// Subscribe returns at once, as Kafka's does, and joins later.
func (s slowSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	out := make(chan *message.Message)
	go func() {
		defer close(out)
		select {
		case <-time.After(s.delay):
		case <-ctx.Done():
			return
		}
		in, err := s.Subscriber.Subscribe(ctx, topic)
		if err != nil {
			return
		}
		for m := range in {
			select {
			case out <- m:
			case <-ctx.Done():
				m.Nack()
				return
			}
		}
	}()
	return out, nil
}

// A run whose subscription takes longer to start than Idle still reaches
// the dead letters a browse saw.
func TestDrainWaitsForASlowSubscription(t *testing.T) {
	mb, err := memory.New(memory.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mb.Close() })
	b := slowJoin{mb, 500 * time.Millisecond}
	ids := seed(t, b, "inventory.dead_letter", "orders", "inventory")
	res, err := dlq.New(b).Purge(context.Background(), "inventory.dead_letter", dlq.DrainOptions{Idle: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Count != len(ids) || res.NotReached != 0 {
		t.Fatalf("purge behind a slow subscription: %+v, want all %d", res, len(ids))
	}
}
