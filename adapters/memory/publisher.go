package memory

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pkg/broker"
)

// Publisher publishes to a [Broker]. Get one with [Broker.Publisher].
type Publisher struct {
	b      *Broker
	closed atomic.Bool
}

var (
	_ message.Publisher       = (*Publisher)(nil)
	_ broker.AsyncPublisher   = (*Publisher)(nil)
	_ broker.CopyingPublisher = (*Publisher)(nil)
)

// PublishCopies implements [broker.CopyingPublisher]: Publish copies each
// message into a record of its own.
func (p *Publisher) PublishCopies() bool { return true }

// Publish stores each message, in order, in the queue of every consumer group
// registered for topic (see the package doc for a topic with no group yet).
// It blocks while any of those queues is full, until there is room, the
// message's context is done or the broker is closed; it returns once every
// message is stored. Messages are copied: the caller may reuse them.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	if p.closed.Load() || p.b.closed.Load() {
		return fmt.Errorf("memory: publish to %q: %w", topic, broker.ErrClosed)
	}
	t, err := p.b.topic(topic)
	if err != nil {
		return fmt.Errorf("memory: publish to %q: %w", topic, err)
	}
	for _, msg := range msgs {
		if err := p.b.publish(msg.Context(), t, msg); err != nil {
			return fmt.Errorf("memory: publish to %q: message %s: %w", topic, msg.UUID, err)
		}
	}
	return nil
}

// Close makes this handle refuse further publishing; other handles and the
// broker are unaffected. It is idempotent.
func (p *Publisher) Close() error {
	p.closed.Store(true)
	return nil
}

// PublishAsync implements [broker.AsyncPublisher]. Storing a message in
// memory is its confirmation, so each outcome is known before PublishAsync
// returns and done is called on the caller's goroutine, in order. It
// waits for room as Publish does, but until ctx (not the message's
// context) is done: the window is the group queues' buffer_size. After a
// failure the remaining messages are still attempted, each reported on
// its own.
func (p *Publisher) PublishAsync(ctx context.Context, topic string, done func(*message.Message, error), msgs ...*message.Message) {
	if p.closed.Load() || p.b.closed.Load() {
		for _, m := range msgs {
			done(m, fmt.Errorf("memory: publish to %q: %w", topic, broker.ErrClosed))
		}
		return
	}
	t, err := p.b.topic(topic)
	if err != nil {
		for _, m := range msgs {
			done(m, fmt.Errorf("memory: publish to %q: %w", topic, err))
		}
		return
	}
	for _, m := range msgs {
		if err := ctx.Err(); err != nil {
			done(m, fmt.Errorf("memory: publish to %q: message %s: %w", topic, m.UUID, err))
			continue
		}
		if err := p.b.publish(ctx, t, m); err != nil {
			done(m, fmt.Errorf("memory: publish to %q: message %s: %w", topic, m.UUID, err))
			continue
		}
		done(m, nil)
	}
}
