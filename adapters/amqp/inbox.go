package amqp

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-go/switchyard/pkg/broker"
)

// InboxQueuePrefix starts the name of every inbox queue (after
// [Config.QueuePrefix]); the rest is a random id.
const InboxQueuePrefix = "switchyard.inbox."

var _ broker.Inboxer = (*Broker)(nil)

// OpenInbox implements [broker.Inboxer] with an exclusive, auto-delete
// classic queue on the consuming connection: RabbitMQ deletes it when the
// connection closes, so an instance that dies leaves nothing behind. Its
// address is the queue name; senders reach it through the default
// exchange, which routes by queue name, so no exchange is declared per
// inbox. Deliveries are auto-acked (an inbox is best effort, see
// [broker.Inbox]). When the consuming connection is lost the queue is gone
// with it; the inbox declares it again, under the same name, once the
// connection is back, and replies sent meanwhile are returned to their
// senders as unroutable.
//
// Direct reply-to (amq.rabbitmq.reply-to) was not chosen: it needs the
// request published on the very channel that consumes the replies, which
// the pooled, confirm-mode publisher cannot promise, and it cannot confirm
// a request at all.
func (b *Broker) OpenInbox(ctx context.Context) (broker.Inbox, error) {
	in := &inbox{
		b:     b,
		queue: b.cfg.QueuePrefix + InboxQueuePrefix + watermill.NewUUID(),
		out:   make(chan *message.Message, inboxBuffer),
		done:  make(chan struct{}),
	}
	deliveries, ch, err := in.consume()
	if err != nil {
		return nil, fmt.Errorf("amqp: open inbox: %w", err)
	}
	// The broker's Close waits for the inbox's goroutine (it ends once
	// Close cancels stopCtx), so nothing outlives the broker.
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		_ = ch.Close()
		return nil, fmt.Errorf("amqp: open inbox: %w", broker.ErrClosed)
	}
	b.wg.Add(1)
	in.wg.Add(1)
	b.mu.Unlock()
	go in.run(deliveries, ch)
	return in, nil
}

// SendToInbox implements [broker.Inboxer]: it publishes msg through the
// default exchange to the inbox queue named address, with a publisher
// confirm, as mandatory. A return (the queue is gone: its connection
// closed) gives an error wrapping [broker.ErrNoInbox] and [ErrUnroutable].
func (b *Broker) SendToInbox(ctx context.Context, address string, msg *message.Message) error {
	p := b.pub
	err := p.publish(ctx, p.deadlines.current(), address, "", address, true, []*message.Message{msg})
	if errors.Is(err, ErrUnroutable) {
		return fmt.Errorf("%w: %w", broker.ErrNoInbox, err)
	}
	return err
}

// inboxBuffer is how many messages an inbox holds that its reader has not
// taken yet.
const inboxBuffer = 256

// inboxRetry is how long an inbox waits between attempts to declare its
// queue again after its connection was lost.
const inboxRetry = 500 * time.Millisecond

type inbox struct {
	b     *Broker
	queue string
	out   chan *message.Message

	once sync.Once
	done chan struct{}
	wg   sync.WaitGroup
}

func (in *inbox) Address() string                   { return in.queue }
func (in *inbox) Messages() <-chan *message.Message { return in.out }

// Close stops consuming; RabbitMQ deletes the queue with its channel's
// consumer (auto-delete).
func (in *inbox) Close() error {
	in.once.Do(func() { close(in.done) })
	in.wg.Wait()
	return nil
}

// consume declares the inbox queue on a new channel of the consuming
// connection and consumes it.
func (in *inbox) consume() (<-chan amqp091.Delivery, *amqp091.Channel, error) {
	conn, _, err := in.b.subLink.get()
	if err != nil {
		return nil, nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, nil, disconnectedErr(fmt.Errorf("open channel: %w", err))
	}
	args := amqp091.Table{amqp091.QueueTypeArg: amqp091.QueueTypeClassic}
	if _, err := ch.QueueDeclare(in.queue, false, true, true, false, args); err != nil {
		_ = ch.Close()
		return nil, nil, disconnectedErr(fmt.Errorf("declare inbox queue %q: %w", in.queue, err))
	}
	deliveries, err := ch.Consume(in.queue, "", true, true, false, false, nil)
	if err != nil {
		_ = ch.Close()
		return nil, nil, disconnectedErr(fmt.Errorf("consume inbox queue %q: %w", in.queue, err))
	}
	return deliveries, ch, nil
}

// run forwards deliveries to out and declares the queue again whenever its
// channel or connection is lost, until Close or the broker's Close.
func (in *inbox) run(deliveries <-chan amqp091.Delivery, ch *amqp091.Channel) {
	defer in.b.wg.Done()
	defer in.wg.Done()
	defer close(in.out)
	for {
		if !in.forward(deliveries) {
			_ = ch.Close()
			return
		}
		_ = ch.Close()
		for {
			if _, err := in.b.subLink.wait(in.b.stopCtx, in.done); err != nil {
				return
			}
			var err error
			if deliveries, ch, err = in.consume(); err == nil {
				break
			}
			in.b.log.Warn("inbox: declaring the queue again failed", "queue", in.queue, "error", err)
			select {
			case <-time.After(inboxRetry):
			case <-in.done:
				return
			case <-in.b.stopCtx.Done():
				return
			}
		}
	}
}

// forward hands deliveries out until they end (false: the inbox or the
// broker closed; true: the channel was lost).
func (in *inbox) forward(deliveries <-chan amqp091.Delivery) bool {
	for {
		select {
		case d, ok := <-deliveries:
			if !ok {
				return in.b.stopCtx.Err() == nil
			}
			select {
			case in.out <- toMessage(&d):
			case <-in.done:
				return false
			case <-in.b.stopCtx.Done():
				return false
			}
		case <-in.done:
			return false
		case <-in.b.stopCtx.Done():
			return false
		}
	}
}
