package service_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pkg/broker"
)

// fakeBroker is a broker that provokes what the memory broker never does:
// it hands out every queued message of a topic at once, several of one key
// included, without waiting for acks (a RabbitMQ or Kafka consumer with a
// large prefetch). A nacked message is handed out again after nackDelay,
// behind whatever was handed out meanwhile. It keeps no consumer groups:
// one subscription per topic. It has no Delayer and keeps no order across
// consumers, unless the test sets delay or ordering.
type fakeBroker struct {
	mu        sync.Mutex
	topics    map[string]*fakeTopic
	published map[string][]*message.Message
	// publishErr, if set, is called for each publish; a non-nil result
	// fails it. It may block on the message's context.
	publishErr func(topic string, msg *message.Message) error
	// subscribeErr, if set, fails Subscriber calls while it returns non-nil.
	subscribeErr func() error
	nackDelay    time.Duration
	ordering     broker.Ordering
	nackRewinds  bool     // what Capabilities reports as NackRewinds
	exactlyOnce  bool     // what Capabilities reports as ExactlyOnce
	acks, nacks  []string // message ids, in the order settled
	redeliver    []redelivery
	redelivering bool
	seqs         map[*message.Message]int // publish order
	done         chan struct{}            // closed when the test ends
	failure      error                    // what Failure reports, see fail
}

type fakeTopic struct {
	out    chan *message.Message
	closed bool
}

func newFakeBroker(t *testing.T) *fakeBroker {
	b := &fakeBroker{done: make(chan struct{}), topics: map[string]*fakeTopic{}, published: map[string][]*message.Message{}, seqs: map[*message.Message]int{}, nackDelay: time.Millisecond, ordering: broker.OrderPerKey}
	t.Cleanup(func() { close(b.done) })
	return b
}

func (b *fakeBroker) Name() string                 { return "fake" }
func (b *fakeBroker) Publisher() message.Publisher { return fakePublisher{b} }
func (b *fakeBroker) Close() error                 { return nil }
func (b *fakeBroker) Capabilities() broker.Capabilities {
	return broker.Capabilities{Delivery: "at-least-once", Ordering: b.ordering, NackRewinds: b.nackRewinds, ExactlyOnce: b.exactlyOnce}
}

func (b *fakeBroker) Subscriber(string, broker.SubscriberOptions) (message.Subscriber, error) {
	if b.subscribeErr != nil {
		if err := b.subscribeErr(); err != nil {
			return nil, err
		}
	}
	return fakeSubscriber{b}, nil
}

func (b *fakeBroker) topic(name string) *fakeTopic {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.topics[name]
	if t == nil {
		t = &fakeTopic{out: make(chan *message.Message, 10000)}
		b.topics[name] = t
	}
	return t
}

// end closes topic's channel as a dead connection would.
func (b *fakeBroker) end(topic string) {
	t := b.topic(topic)
	b.mu.Lock()
	defer b.mu.Unlock()
	if !t.closed {
		t.closed = true
		close(t.out)
	}
}

// waitEnded waits until topic's channel is closed (intake stopped).
func (b *fakeBroker) waitEnded(t *testing.T, topic string) {
	t.Helper()
	tp := b.topic(topic)
	deadline := time.Now().Add(guard)
	for {
		b.mu.Lock()
		closed := tp.closed
		b.mu.Unlock()
		if closed {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("intake on %q never stopped", topic)
		}
		time.Sleep(2 * time.Millisecond) // polling a condition, with a deadline
	}
}

// deliver hands msg out on its topic, watching its ack or nack.
func (b *fakeBroker) deliver(topic string, msg *message.Message) {
	t := b.topic(topic)
	m := msg.Copy()
	b.mu.Lock()
	if t.closed {
		b.mu.Unlock()
		return
	}
	t.out <- m
	b.mu.Unlock()
	go func() {
		select {
		case <-b.done:
		case <-m.Acked():
			b.mu.Lock()
			b.acks = append(b.acks, m.UUID)
			b.mu.Unlock()
		case <-m.Nacked():
			b.mu.Lock()
			b.nacks = append(b.nacks, m.UUID)
			b.redeliver = append(b.redeliver, redelivery{topic, msg, b.seqs[msg]})
			if !b.redelivering {
				b.redelivering = true
				go b.redeliverLoop()
			}
			b.mu.Unlock()
		}
	}()
}

// redeliverLoop hands nacked messages out again after the backoff, in
// publish order, as Kafka redelivers by offset and RabbitMQ requeues a
// message at its place in the queue.
func (b *fakeBroker) redeliverLoop() {
	for {
		time.Sleep(b.nackDelay) // the broker's redelivery backoff
		b.mu.Lock()
		batch := b.redeliver
		b.redeliver = nil
		if len(batch) == 0 {
			b.redelivering = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		slices.SortFunc(batch, func(x, y redelivery) int { return x.seq - y.seq })
		for _, r := range batch {
			b.deliver(r.topic, r.msg)
		}
	}
}

type redelivery struct {
	topic string
	msg   *message.Message
	seq   int
}

// settled reports how many messages were acked and nacked so far.
func (b *fakeBroker) settled() (acks, nacks int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.acks), len(b.nacks)
}

// publishedTo returns what was published to topic.
func (b *fakeBroker) publishedTo(topic string) []*message.Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*message.Message(nil), b.published[topic]...)
}

type fakePublisher struct{ b *fakeBroker }

func (p fakePublisher) Publish(topic string, msgs ...*message.Message) error {
	for _, m := range msgs {
		if p.b.publishErr != nil {
			if err := p.b.publishErr(topic, m); err != nil {
				return err
			}
		}
		p.b.mu.Lock()
		p.b.published[topic] = append(p.b.published[topic], m)
		p.b.seqs[m] = len(p.b.seqs)
		p.b.mu.Unlock()
		p.b.deliver(topic, m)
	}
	return nil
}

func (fakePublisher) Close() error { return nil }

type fakeSubscriber struct{ b *fakeBroker }

// Subscribe returns the topic's channel; cancelling ctx closes it.
func (s fakeSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	t := s.b.topic(topic)
	go func() {
		<-ctx.Done()
		s.b.end(topic)
	}()
	return t.out, nil
}

func (fakeSubscriber) Close() error { return nil }

// Failure implements broker.Failer.
func (s fakeSubscriber) Failure() error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	return s.b.failure
}

// fail ends topic's subscription on err, as an adapter does on an error it
// cannot recover from.
func (b *fakeBroker) fail(topic string, err error) {
	b.mu.Lock()
	b.failure = err
	b.mu.Unlock()
	b.end(topic)
}

var errFake = errors.New("fake broker: refused")

// topicClosed reports whether topic's channel was closed.
func (b *fakeBroker) topicClosed(topic string) bool {
	t := b.topic(topic)
	b.mu.Lock()
	defer b.mu.Unlock()
	return t.closed
}

// unread is how many messages of topic wait in its channel, not yet taken
// by the consumer.
func (b *fakeBroker) unread(topic string) int { return len(b.topic(topic).out) }

// settledIDs returns the ids of the messages acked and nacked so far, in
// the order they were settled.
func (b *fakeBroker) settledIDs() (acks, nacks []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.acks), slices.Clone(b.nacks)
}
