package amqp

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-go/switchyard/pkg/broker"
)

// topology declares exchanges, queues and bindings on a dedicated channel and
// remembers what it declared on the current connection, so that the hot paths
// (Publish, Subscribe) declare each name once.
type topology struct {
	b *Broker

	mu       sync.Mutex // serialises declarations (synchronous RPCs)
	ch       *amqp091.Channel
	chGen    uint64
	declared sync.Map // string key -> struct{}
}

func (t *topology) reset() { t.declared.Clear() }

func (t *topology) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ch != nil {
		_ = t.ch.Close()
		t.ch = nil
	}
}

// renew closes the topology channel, so that the next declaration opens a
// fresh one. RabbitMQ caches a channel's last permission checks (twelve of
// them) for the channel's life: a declaration that must see the user's
// permissions as they are now, such as a resubscription's after the
// consumer was lost, must not run on a channel that passed it before.
func (t *topology) renew() { t.close() }

// do runs fn on the topology channel, opening one on the current connection if
// needed. A failed declaration closes the channel (AMQP channel exception), so
// the next call opens a fresh one. Success is remembered under key; an empty
// key means fn runs every time.
func (t *topology) do(key string, fn func(ch *amqp091.Channel) error) error {
	if _, ok := t.declared.Load(key); ok && key != "" {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.declared.Load(key); ok && key != "" {
		return nil
	}
	conn, gen, err := t.b.pubLink.get()
	if err != nil {
		return err
	}
	if t.ch == nil || t.ch.IsClosed() || t.chGen != gen {
		if t.ch != nil {
			_ = t.ch.Close()
		}
		t.ch = nil
		ch, err := conn.Channel()
		if err != nil {
			return disconnectedErr(fmt.Errorf("open channel: %w", err))
		}
		t.ch, t.chGen = ch, gen
	}
	if err := fn(t.ch); err != nil {
		if t.ch.IsClosed() {
			t.ch = nil
		}
		return disconnectedErr(err)
	}
	if key != "" {
		t.declared.Store(key, struct{}{})
	}
	return nil
}

// exchange declares the durable fanout exchange of a topic.
func (t *topology) exchange(name string) error {
	return t.exchangeKeyed(name, exchangeKey(name))
}

// exchangeKey is the declaration key of an exchange.
func exchangeKey(name string) string { return "x:" + name }

// exchangeKeyed is exchange with its key already built (see exchangeKey).
func (t *topology) exchangeKeyed(name, key string) error {
	return t.do(key, func(ch *amqp091.Channel) error {
		if err := ch.ExchangeDeclare(name, amqp091.ExchangeFanout, true, false, false, false, nil); err != nil {
			return fmt.Errorf("declare exchange %q: %w", name, err)
		}
		return nil
	})
}

// workQueue declares the durable queue of a consumer group and binds it to
// the topic's exchange. See groupQueueArgs for its arguments.
func (t *topology) workQueue(topic, group string, ordered bool) (string, error) {
	exchange, queue := t.b.cfg.exchangeName(topic), t.b.cfg.queueName(topic, group)
	if err := t.exchange(exchange); err != nil {
		return "", err
	}
	var dlTopic string
	if t.b.cfg.QueueType == QueueTypeQuorum && group != broker.DeadLetterGroup && t.b.cfg.DeliveryLimit != NoDeliveryLimit {
		// What the delivery limit dead-letters must have somewhere to go
		// before the queue points at it (at-least-once dead-lettering
		// would hold it back meanwhile, but an operator could not see it).
		dlTopic = t.b.cfg.deadLetterTopic(group)
		if _, err := t.workQueue(dlTopic, broker.DeadLetterGroup, false); err != nil {
			return "", fmt.Errorf("dead-letter topic %q of queue %q: %w", dlTopic, queue, err)
		}
	}
	args := t.b.cfg.groupQueueArgs(group, ordered, dlTopic, t.b.serverMajor.Load())
	err := t.do("q:"+queue+":"+strconv.FormatBool(ordered), func(ch *amqp091.Channel) error {
		if _, err := ch.QueueDeclare(queue, true, false, false, false, args); err != nil {
			var aerr *amqp091.Error
			if errors.As(err, &aerr) && aerr.Code == amqp091.PreconditionFailed {
				return fmt.Errorf("declare queue %q: it exists with other arguments than %v (queue type, single active consumer, "+
					"delivery limit, dead-letter exchange or expiry changed in the config?): delete the queue, or keep the old "+
					"settings: %w", queue, args, err)
			}
			return fmt.Errorf("declare queue %q: %w", queue, err)
		}
		if err := ch.QueueBind(queue, "", exchange, false, nil); err != nil {
			return fmt.Errorf("bind queue %q to exchange %q: %w", queue, exchange, err)
		}
		return nil
	})
	return queue, err
}

// groupQueueArgs are the arguments of group's queue: its type, single
// active consumer when ordered, x-expires (never for the dead-letter group,
// whose queues hold what operators must see), and for quorum queues the
// delivery limit with at-least-once dead-lettering to dlTopic's exchange
// (when dlTopic is set). major is RabbitMQ's major version (0: unknown):
// "no limit" is an absent argument before 4.0 and -1 from 4.0, which
// otherwise applies a default limit of 20.
func (c Config) groupQueueArgs(group string, ordered bool, dlTopic string, major int32) amqp091.Table {
	args := amqp091.Table{amqp091.QueueTypeArg: c.QueueType}
	if ordered {
		args[amqp091.SingleActiveConsumerArg] = true
	}
	dlq := group == broker.DeadLetterGroup
	if c.QueueExpires > 0 && !dlq {
		args[amqp091.QueueTTLArg] = c.QueueExpires.Milliseconds()
	}
	if c.QueueType != QueueTypeQuorum {
		return args
	}
	switch {
	case dlq || c.DeliveryLimit == NoDeliveryLimit:
		if major >= 4 {
			args[deliveryLimitArg] = int64(-1)
		}
	default:
		args[deliveryLimitArg] = int64(c.DeliveryLimit)
		if dlTopic != "" {
			args["x-dead-letter-exchange"] = c.exchangeName(dlTopic)
			args["x-dead-letter-strategy"] = "at-least-once"
			// at-least-once dead-lettering requires it; without a length
			// limit it refuses nothing.
			args[amqp091.QueueOverflowArg] = amqp091.QueueOverflowRejectPublish
		}
	}
	return args
}

// queueExists checks with a passive declaration that queue exists. It asks
// the broker every time: a queue deleted since (or expired, see
// [Config.QueueExpires]) must be noticed.
func (t *topology) queueExists(queue string) error {
	return t.do("", func(ch *amqp091.Channel) error {
		if _, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil); err != nil {
			var aerr *amqp091.Error
			if errors.As(err, &aerr) && aerr.Code == amqp091.NotFound {
				return fmt.Errorf("queue %q does not exist (the group never subscribed): %w", queue, err)
			}
			return fmt.Errorf("check queue %q: %w", queue, err)
		}
		return nil
	})
}

// delayTier declares the exchange and queue of one delay tier: messages wait
// there for the tier's TTL, then dead-letter through the default exchange to
// the queue named by their routing key. Quorum tiers dead-letter at least
// once: RabbitMQ keeps an expired message in the tier until the target
// queue has confirmed it, so neither a target without a leader nor a
// deleted target drops it (it waits for the queue to come back).
func (t *topology) delayTier(tier time.Duration) (string, error) {
	name, queue := t.b.cfg.delayTierNames(tier)
	err := t.do("d:"+name, func(ch *amqp091.Channel) error {
		if err := ch.ExchangeDeclare(name, amqp091.ExchangeTopic, true, false, false, false, nil); err != nil {
			return fmt.Errorf("declare delay exchange %q: %w", name, err)
		}
		args := amqp091.Table{
			amqp091.QueueTypeArg:       t.b.cfg.DelayQueueType,
			amqp091.QueueMessageTTLArg: tier.Milliseconds(),
			"x-dead-letter-exchange":   "",
		}
		if t.b.cfg.DelayQueueType == QueueTypeQuorum {
			args["x-dead-letter-strategy"] = "at-least-once"
			args[amqp091.QueueOverflowArg] = amqp091.QueueOverflowRejectPublish
		}
		if _, err := ch.QueueDeclare(queue, true, false, false, false, args); err != nil {
			return fmt.Errorf("declare delay queue %q: %w", queue, err)
		}
		if err := ch.QueueBind(queue, "#", name, false, nil); err != nil {
			return fmt.Errorf("bind delay queue %q: %w", queue, err)
		}
		return nil
	})
	return name, err
}

// delayTierNames are the exchange and queue of tier. Quorum and classic
// tiers have different names, so that switching delay_queue_type never
// meets a queue declared with the other type.
func (c Config) delayTierNames(tier time.Duration) (exchange, queue string) {
	base := "switchyard.delay."
	if c.DelayQueueType == QueueTypeQuorum {
		base += "quorum."
	}
	return c.ExchangePrefix + base + tierName(tier), c.QueuePrefix + base + tierName(tier)
}

// tierName spells a tier the way it is configured: "1s", "30s", "2m", "1h", "250ms".
func tierName(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

// forgetQueue drops the cached declaration of a group's queue and its
// topic's exchange, so that the next declaration reaches the broker (after
// a consumer was cancelled because the queue was deleted, say).
func (t *topology) forgetQueue(topic, group string, ordered bool) {
	t.declared.Delete(exchangeKey(t.b.cfg.exchangeName(topic)))
	t.declared.Delete("q:" + t.b.cfg.queueName(topic, group) + ":" + strconv.FormatBool(ordered))
}

// deliveryLimitArg is the quorum queue argument amqp091-go has no constant for.
const deliveryLimitArg = "x-delivery-limit"
