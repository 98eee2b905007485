// Package broker is the contract between the Switchyard runtime and a broker
// adapter (memory, amqp, kafka). An adapter gives Watermill publishers and
// subscribers with Switchyard's meaning of a consumer group, plus optional
// capabilities the framework asks for with type assertions.
//
// # Delivery contract
//
// Every adapter delivers at least once:
//   - [message.Publisher.Publish] returns only after the broker has confirmed
//     every message it was given (publisher confirms, acks=all, or the
//     in-memory buffer accepted it). An error means the message may not have
//     been stored; nothing is dropped silently.
//   - A subscriber may hand out several messages before the first is acked
//     (its prefetch window), but it hands out messages with the same key
//     ([header.Key]) in the order they were published.
//   - Ack removes the message for that consumer group; Nack redelivers it to
//     the group after a backoff, never in a tight loop.
//   - Cancelling the context given to Subscribe stops intake: no new messages
//     are handed out, and messages already handed out can still be acked or
//     nacked until [message.Subscriber.Close].
//
// # Consumer groups
//
// Subscribers created for the same group compete for messages (a work
// queue); subscribers of different groups each receive every message
// published after the group first subscribed (pub/sub).
package broker

import (
	"context"
	"errors"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Broker is one connection to a broker: a shared publisher and subscribers per
// consumer group.
type Broker interface {
	// Name is the adapter's name as it appears in configuration: "memory",
	// "amqp" or "kafka".
	Name() string
	// Publisher returns the broker's publisher. It is safe for concurrent use
	// and is closed by [Broker.Close].
	Publisher() message.Publisher
	// Subscriber returns a subscriber that consumes as the given consumer group.
	Subscriber(group string, opts SubscriberOptions) (message.Subscriber, error)
	// Capabilities says what this broker really guarantees, so the runtime can
	// report it and refuse a policy it cannot honour.
	Capabilities() Capabilities
	// Close closes the publisher and every subscriber. It is idempotent.
	Close() error
}

// SubscriberOptions are per-subscription settings a handler asks for.
type SubscriberOptions struct {
	// Prefetch is how many unacknowledged messages the subscriber may hand out
	// at once. Zero means the adapter's default.
	Prefetch int
	// Ordered asks that messages with the same key are handed out in publish
	// order across all subscribers of the group (Kafka partitions; RabbitMQ
	// single-active-consumer queues; memory always).
	Ordered bool
	// ExactlyOnce asks that each handed-out message and whatever is
	// published through the broker while handling it (its context, see
	// [Scoped]) commit together or not at all: a Kafka transaction that
	// also commits the consumed offsets. Only brokers whose Capabilities
	// report ExactlyOnce accept it.
	ExactlyOnce bool
}

// Ordering describes what order a broker keeps.
type Ordering string

const (
	// OrderPerKey: messages with the same key arrive in publish order.
	OrderPerKey Ordering = "per-key"
	// OrderPerQueue: order holds only with a single active consumer.
	OrderPerQueue Ordering = "per-queue (single active consumer)"
	// OrderNone: no ordering guarantee.
	OrderNone Ordering = "none"
)

// Capabilities describes what a broker guarantees.
type Capabilities struct {
	// Delivery is the delivery guarantee, e.g. "at-least-once".
	Delivery string
	// Ordering is the ordering the broker keeps when Ordered is asked for.
	Ordering Ordering
	// DelayedRedelivery is true when the broker implements [Delayer].
	DelayedRedelivery bool
	// Durable is true when messages survive a broker restart.
	Durable bool
	// NackRewinds is true when a nack also takes back the acks of the
	// messages after it: the broker keeps a committed position per
	// partition (Kafka's offset) that cannot pass an unresolved message,
	// so whoever reads the partition next handles again everything acked
	// after a handed-back message. The runtime then finishes the messages
	// it holds when it shuts down, within the shutdown timeout, rather
	// than handing them back.
	NackRewinds bool
	// ExactlyOnce is true when the broker accepts
	// [SubscriberOptions].ExactlyOnce.
	ExactlyOnce bool
}

// CopyingPublisher is implemented by publishers whose Publish keeps no
// reference to a message, its metadata, payload or context once it
// returned: the runtime may then reuse the message for its next publish.
// It is a property of the publisher value, not of the broker, so that a
// wrapper of an adapter's publisher (a tap, a spy, a buffer) that may keep
// what it is given does not inherit it.
type CopyingPublisher interface {
	message.Publisher
	// PublishCopies reports whether Publish keeps nothing of a message
	// once it returned.
	PublishCopies() bool
}

// AsyncPublisher is implemented by publishers that can pipeline: one
// goroutine hands over many messages and learns each one's outcome later,
// without a goroutine per message and without waiting for each confirm in
// turn. Publish is the simple form (it waits); PublishAsync is for callers
// that publish in bulk (importers, relays, replays, benchmarks).
//
// Use it through [PublishAsync], which falls back to Publish for a
// publisher that does not implement it.
//
// The outcome of every message is reported exactly once, to done:
//   - nil means what a nil error from Publish means for that message: the
//     broker confirmed it (publisher confirm, acks=all, stored in memory);
//   - an error means it may or may not have been stored, as for Publish:
//     a nack, an unroutable message, a lost connection or channel
//     ([ErrDisconnected]), the adapter's confirm or delivery timeout, a
//     closed publisher ([ErrClosed]), or ctx's error for a message that
//     ctx's end kept from being sent.
//
// Nothing is reported twice or left unreported, including when the
// connection dies with confirms pending: those are reported with an error.
type AsyncPublisher interface {
	// PublishAsync sends msgs to topic, in order, and returns once each
	// has been handed to the broker client, without waiting for the
	// broker's answers. It blocks only while the publisher's window of
	// unconfirmed messages is full (back-pressure; the window is the
	// adapter's, see its docs) or until ctx is done. Messages ctx's end
	// kept from being sent are reported to done with ctx's error; once
	// sent, a message is reported when the broker answers or the
	// adapter's timeout passes, whatever happens to ctx afterwards.
	//
	// done is called exactly once per message, with that message. It may
	// be called before PublishAsync returns, from another goroutine, and
	// concurrently for different messages, in any order. It runs on the
	// adapter's confirm path, so it must be quick and must not block (no
	// Publish or PublishAsync from inside it: hand the outcome to a
	// channel or a counter). The caller must not modify a message until
	// done was called for it.
	PublishAsync(ctx context.Context, topic string, done func(msg *message.Message, err error), msgs ...*message.Message)
}

// PublishAsync publishes msgs through pub's [AsyncPublisher] when it has
// one; otherwise it calls pub.Publish for each message in turn (waiting for
// each) and reports each outcome to done before returning. Either way done
// is called exactly once per message.
func PublishAsync(ctx context.Context, pub message.Publisher, topic string, done func(msg *message.Message, err error), msgs ...*message.Message) {
	if ap, ok := pub.(AsyncPublisher); ok {
		ap.PublishAsync(ctx, topic, done, msgs...)
		return
	}
	for _, m := range msgs {
		if err := ctx.Err(); err != nil {
			done(m, err)
			continue
		}
		done(m, pub.Publish(topic, m))
	}
}

// Delayer is implemented by brokers that can hand a message back to a
// consumer group after a delay without holding a consumer slot meanwhile.
type Delayer interface {
	// Delay publishes msg so that it is delivered again to group on topic no
	// sooner than delay from now. It returns once the broker has stored it.
	Delay(ctx context.Context, topic, group string, msg *message.Message, delay time.Duration) error
}

// ErrClosed is returned by operations on a closed broker, publisher or subscriber.
var ErrClosed = errors.New("broker: closed")

// ErrDisconnected is returned by Publish while the broker connection is down
// and being re-established.
var ErrDisconnected = errors.New("broker: disconnected")

// Provisioner is implemented by brokers that must create storage before a
// message published to a topic is kept for a group (a RabbitMQ queue, a
// Kafka topic). The runtime provisions dead-letter topics at startup so
// that dead letters are kept even before any operator reads them.
type Provisioner interface {
	// Provision makes sure messages published to topic from now on are
	// kept for group, without consuming any.
	Provision(ctx context.Context, topic, group string) error
}

// Browser is implemented by brokers that can read what a consumer group has
// not consumed yet without consuming it. The operator CLI uses it to list
// and show dead letters.
type Browser interface {
	// Browse calls fn with each message of topic that group has not yet
	// acknowledged, oldest first, until fn returns false or no message is
	// left. Browsing does not acknowledge, remove or reorder messages for
	// the group's consumers (a broker may mark them redelivered).
	Browse(ctx context.Context, topic, group string, fn func(*message.Message) bool) error
}

// DeadLetterGroup is the consumer group that keeps dead letters for
// operators: dead-letter topics are provisioned for it, `switchyard dlq list`
// browses it and `dlq replay` and `dlq purge` consume from it.
const DeadLetterGroup = "switchyard-dlq"

// Revocable is implemented by the context of a message that the broker can
// take back while it is being handled: a Kafka record whose partition was
// revoked in a rebalance and whose handler outlived the drain time. Once
// Revocation's context is done the message belongs to another consumer:
// its ack is ignored and its handler should stop, so that no key is
// handled on two consumers at once. The runtime cancels the handler's
// context then (the delivery is nacked, never dead-lettered, for it).
type Revocable interface {
	Revocation() context.Context
}

// Scoped is implemented by the context of a message whose handling is part
// of a unit of work on the broker (a Kafka transaction): the runtime runs
// the handler under Scope(ctx), so that what the handler publishes with
// that context, dead letters included, joins the unit and commits or
// aborts with the message.
type Scoped interface {
	Scope(ctx context.Context) context.Context
}

// Failer is implemented by subscribers that can end a subscription on an
// error they cannot recover from (an authorization failure, a topic that no
// longer exists): they close the subscription's channel and Failure then
// says why, so the runtime reports the cause rather than a bare "channel
// closed". Failure is nil while the subscriber runs and after a normal
// shutdown.
type Failer interface {
	Failure() error
}

// HealthChecker is implemented by brokers that can tell whether they reach
// the broker now. The operations server's /readyz reports it.
type HealthChecker interface {
	// Check returns nil when the broker connection is up, else what is
	// wrong ("connection to 127.0.0.1:5672 lost: ..."). It must return
	// promptly, honouring ctx, and never block on a reconnect.
	Check(ctx context.Context) error
}

// BacklogReader is implemented by brokers that can say how much a consumer
// group has left to consume: queue depth on RabbitMQ and memory, consumer
// lag on Kafka.
type BacklogReader interface {
	// Backlog returns the messages of topic that group has not consumed
	// yet. Brokers with partitions fill Backlog.Partitions too.
	Backlog(ctx context.Context, topic, group string) (Backlog, error)
}

// Backlog is what a consumer group has not consumed yet of one topic.
type Backlog struct {
	// Messages is the total: ready messages in the group's queue, or the
	// sum of the group's lag over the topic's partitions.
	Messages int64
	// Partitions is the lag per partition (Kafka), nil elsewhere.
	Partitions map[int32]int64
}
