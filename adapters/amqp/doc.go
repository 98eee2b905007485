// Package amqp is Switchyard's RabbitMQ adapter, written directly on
// github.com/rabbitmq/amqp091-go. [New] connects and returns a [Broker]
// implementing [broker.Broker] and [broker.Delayer].
//
// A Broker opens two connections, named "<ConnectionName> (publish)" and
// "<ConnectionName> (consume)": RabbitMQ applies flow control per
// connection, and a publisher being throttled must not hold back the acks
// of consumers (a handler that publishes and then acks would otherwise slow
// itself down).
//
// # Topology
//
// Every topic is a durable fanout exchange named after the topic. Every
// consumer group of a topic is a durable queue "<topic>.<group>" bound to
// that exchange, so each group receives every message (pub/sub) and the
// subscribers of one group compete for the messages of its queue (work
// queue). Queues are classic or quorum ([Config.QueueType]). A subscription
// with [broker.SubscriberOptions] Ordered declares its queue with
// x-single-active-consumer. Quorum group queues carry x-delivery-limit
// ([Config.DeliveryLimit]) and dead-letter at least once to the group's
// dead-letter topic ([Config.DeadLetterTopic]); the dead-letter group's
// queues ([broker.DeadLetterGroup]) get no limit. [Config.QueueExpires]
// sets x-expires so abandoned groups' queues go away.
// [Config.ExchangePrefix] and [Config.QueuePrefix] prefix every name.
// Declarations are cached per connection.
//
// A group receives the messages published after it first subscribed
// ([Subscriber.SubscribeInitialize] or [Subscriber.Subscribe] declared its
// queue); the queue is durable, so messages wait for the group across
// consumer restarts and broker restarts.
//
// # Publishing
//
// [Publisher.Publish] publishes persistent messages with publisher confirms
// on a pool of confirm-mode channels ([Config.PublishChannels]): all
// messages of a call are sent without waiting, then every confirm is
// awaited, so batches and concurrent callers pipeline. It returns nil only
// when RabbitMQ acked every message. A nack ([ErrNacked]), a return because
// no group's queue is bound to the topic ([ErrUnroutable], unless
// [Config.AllowUnroutable]), a lost connection ([broker.ErrDisconnected]) or
// [Config.ConfirmTimeout] (which may run up to 1/16 longer: calls share
// deadlines) is an error naming the topic.
//
// Metadata travels as AMQP headers (strings); the message UUID is also the
// MessageId property, and the content-type metadata the ContentType
// property. CloudEvents attributes are written as "ce_*" headers, or with
// the AMQP binding's "cloudEvents_" prefix when [Config.CloudEventsPrefix]
// says so. On delivery, headers become metadata again: names go through
// [header.Canonical] ("cloudEvents_type" becomes "ce_type") and values that
// are not strings, such as the x-death table RabbitMQ adds when it
// dead-letters, are rendered as stable strings (numbers in decimal, times in
// RFC 3339, tables and arrays as JSON). The UUID is MessageId, else the
// ce_id header, else a new UUID.
//
// # Consuming and guarantees
//
// Delivery is at least once. A subscription consumes with manual
// acknowledgement and hands out up to its prefetch window
// ([Config.Prefetch], or the subscriber's Prefetch option) without waiting
// for earlier messages to be acked. Ack is basic.ack: acks are observed by
// the subscription's one goroutine, which waits on the oldest handed-out
// message and settles a run of acked messages in delivery order with one
// basic.ack (multiple), never covering a message not acked yet or waiting
// for its nack; acks out of order are found by a sweep (every 1ms, backing
// off to 50ms while it finds none) and sent one by one. Nack is basic.nack
// with requeue after [Config.NackDelay], doubled for every further Nack of
// the same message up to [Config.MaxNackDelay]; the wait is a timer, so it
// neither blocks other messages nor loops tightly.
//
// Cancelling the context given to Subscribe cancels the consumer and closes
// the output channel; messages already handed out can be acked or nacked
// until [Subscriber.Close], which closes the AMQP channels so that RabbitMQ
// requeues whatever is unacked.
//
// When the connection is lost, the broker reconnects with exponential
// backoff ([Config.ReconnectBackoff] up to [Config.MaxReconnectBackoff]).
// Meanwhile Publish fails fast with an error wrapping
// [broker.ErrDisconnected]; it never drops a message silently and never
// waits longer than [Config.ConfirmTimeout]. Subscriptions re-declare their
// queue and consume again. Messages handed out on the lost channel can no
// longer be settled: their Ack and Nack do nothing, and RabbitMQ redelivers
// them, so handlers must be idempotent (the idempotency middleware exists for
// this).
// A subscription that RabbitMQ refuses to let back in (ACCESS_REFUSED,
// PRECONDITION_FAILED, NOT_ALLOWED on declaring or consuming its queue)
// gives up: its channel closes and [Subscriber.Failure] ([broker.Failer])
// says why, so the runtime ends Run with that error.
//
// # Ordering
//
// RabbitMQ keeps a queue in publish order (for messages published on one
// channel, which one Publish call is), but with several consumers, a
// prefetch window larger than one and Nack requeues, handlers see messages
// out of order. Ordered subscriptions use single-active-consumer queues:
// one subscriber of the group receives the queue, in order, and another
// takes over if it goes away. They hold one message at a time
// ([Config.OrderedPrefetch], default 1), so a Nack (which requeues the
// message at the head) is retried before later messages; with a larger
// window the runtime keeps per-key order only while nothing is handed
// back. [Broker.Capabilities] reports [broker.OrderPerQueue].
//
// # Delayed retry
//
// RabbitMQ from Debian has no delayed-message plugin, so [Broker.Delay]
// uses TTL queues in tiers ([Config.DelayTiers], default 1s, 5s, 30s, 2m,
// 10m). A delay is rounded up to a tier. Each tier is a durable topic
// exchange and a quorum queue of the same name,
// "switchyard.delay.quorum.<tier>" ([Config.DelayQueueType]; classic tiers
// are "switchyard.delay.<tier>"), bound with "#", with x-message-ttl set to
// the tier, x-dead-letter-exchange set to the default exchange and
// at-least-once dead-lettering. The message is published there with the
// target group's queue name as routing key; on expiry RabbitMQ dead-letters
// it through the default exchange straight into that one queue, so other
// groups do not see it again, and keeps it until that queue confirmed it
// (a deleted queue does not drop it). One queue per tier, because a queue
// expires messages only from its head. A delay longer than the largest tier
// carries its due time ([DelayUntilHeader]); the subscription receiving it
// early sends it through the largest tier again, so it is never cut short.
//
// # Browsing
//
// [Broker.Browse] reads messages from the head of a group's queue without
// removing them (basic.get, then the channel is closed and RabbitMQ puts
// them back in place), for the operator CLI to list dead letters. A quorum
// queue counts that as a delivery; the dead-letter group's queues have no
// delivery limit, so browsing them loses nothing.
//
// # Security
//
// [New] logs a warning when a password goes over amqp:// to a host that is
// not loopback, and when TLS verification is skipped.
// [Config.AuthMechanism] "external" authenticates with the client
// certificate.
package amqp
