package memory_test

import (
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/pkg/broker"
)

// universalFeatures are the Watermill suite features the memory broker really has.
//
//   - ConsumerGroups: each group gets every message; subscribers of one group compete.
//   - Persistent: true in the suite's sense: messages outlive a Subscriber (its
//     Close requeues what was in flight, and a group's queue keeps filling while
//     it has no subscriber), as long as the Broker lives. Every constructor call
//     returns handles on one Broker, as it would return connections to one
//     RabbitMQ. Not durable across process restarts (Capabilities().Durable is false).
//   - GuaranteedOrder: false. The suite's TestPublishSubscribeInOrder publishes
//     unkeyed messages and reads them with 10 competing subscribers, and TestNoAck
//     expects a subscriber to hand out nothing more while one message is unacked.
//     Neither holds by design: order is kept per key (header.Key), unkeyed
//     messages go in parallel, and Prefetch (default 64) messages may be unacked.
//     TestWatermillOrder below runs those two suite tests where they do apply
//     (Prefetch 1, one subscriber) and TestOrderPerKey checks the per-key order
//     with competing subscribers.
//   - ExactlyOnceDelivery: false (at least once).
//   - NewSubscriberReceivesOldMessages: false: acked messages are gone, and a
//     new group sees only messages published after it registered.
//   - ContextPreserved: false: as with a network broker, the publisher's
//     message context is not carried to the consumer.
//   - RestartServiceCommand: none; TestReconnect skips (there is no server).
var universalFeatures = tests.Features{
	ConsumerGroups:                      true,
	ExactlyOnceDelivery:                 false,
	GuaranteedOrder:                     false,
	GuaranteedOrderWithSingleSubscriber: false,
	Persistent:                          true,
	RequireSingleInstance:               false,
	NewSubscriberReceivesOldMessages:    false,
	ContextPreserved:                    false,
}

// newUniversalBroker returns a broker for the suite. Several suite tests publish
// up to 10000 messages before anyone consumes; the default BufferSize (1024)
// would block those publishers by design (backpressure), so the suite runs with
// a queue large enough for them.
func newUniversalBroker(t *testing.T, prefetch int) *memory.Broker {
	t.Helper()
	b, err := memory.New(memory.Config{BufferSize: 20000, Prefetch: prefetch, NackBackoff: 5 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWatermillUniversal(t *testing.T) {
	b := newUniversalBroker(t, 0)
	t.Cleanup(func() { _ = b.Close() })
	newGroup := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		sub, err := b.Subscriber(group, broker.SubscriberOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return b.Publisher(), sub
	}
	tests.TestPubSub(t, universalFeatures,
		func(t *testing.T) (message.Publisher, message.Subscriber) { return newGroup(t, "universal") },
		newGroup,
	)
}

// TestWatermillOrder runs the suite's order tests in the setting where total
// order does hold: one subscriber handing out one message at a time.
func TestWatermillOrder(t *testing.T) {
	b := newUniversalBroker(t, 1)
	t.Cleanup(func() { _ = b.Close() })
	features := universalFeatures
	features.GuaranteedOrder = true
	features.GuaranteedOrderWithSingleSubscriber = true
	constructor := func(t *testing.T) (message.Publisher, message.Subscriber) {
		sub, err := b.Subscriber("ordered", broker.SubscriberOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return b.Publisher(), sub
	}
	for name, fn := range map[string]func(*testing.T, tests.TestContext, tests.PubSubConstructor){
		"TestPublishSubscribeInOrder": tests.TestPublishSubscribeInOrder,
		"TestNoAck":                   tests.TestNoAck,
	} {
		t.Run(name, func(t *testing.T) {
			fn(t, tests.TestContext{TestID: tests.NewTestID(), Features: features}, constructor)
		})
	}
}
