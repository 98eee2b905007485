// Package memory is Switchyard's in-memory broker: the default for the quick
// start and for unit tests. It implements [broker.Broker] and [broker.Delayer]
// with Watermill's [message.Publisher] and [message.Subscriber] interfaces, and
// passes Watermill's universal Pub/Sub test suite.
//
// Create one with [New]; get publishers with [Broker.Publisher] and
// subscribers per consumer group with [Broker.Subscriber].
//
//	b, err := memory.New(memory.Config{}, logger)
//	if err != nil { ... }
//	defer b.Close()
//	sub, _ := b.Subscriber("billing", broker.SubscriberOptions{})
//	msgs, _ := sub.Subscribe(ctx, "orders")
//	_ = b.Publisher().Publish("orders", message.NewMessage(id, payload))
//
// # Features
//
//   - Consumer groups: every group registered for a topic receives its own
//     copy of every message; subscribers of one group compete for them (each
//     message goes to one of them). A group is registered for a topic by its
//     first Subscribe (or SubscribeInitialize) and stays registered after its
//     subscribers stop, like a durable queue: messages published while a
//     consumer restarts are kept for it.
//   - Backlog: messages published to a topic that no group has subscribed to
//     yet are kept in a backlog of at most BufferSize messages (the oldest are
//     dropped beyond that, with a warning logged) and handed to the first group
//     that subscribes. Later groups see only messages published after they
//     registered.
//   - Order per key: messages with the same [header.Key] are handed out in
//     publish order, and one is not handed out while an earlier one with that
//     key is unacked or waiting for redelivery in the group. This holds with
//     any prefetch and any number of competing subscribers, and across Nack.
//     Messages without a key may be handled in parallel, in any order.
//   - Prefetch: each Subscribe call hands out at most Prefetch unacked
//     messages at once (the Router then runs up to that many handlers).
//   - Nack: a nacked message is redelivered to its group after a backoff that
//     starts at NackBackoff and doubles per Nack of that message, up to
//     MaxNackBackoff; never in a tight loop.
//   - Delayed redelivery: [Broker.Delay] hands a message back to one group of
//     one topic after a delay, without holding a consumer slot meanwhile.
//   - Backpressure: each group queue holds at most BufferSize messages not yet
//     handed out. Publish blocks while any target queue is full, until there
//     is room, the message's context ([message.Message.Context]) is done or
//     the broker is closed. Blocked publishers get room in the order they
//     started waiting, one per message handed out, so many of them cost no
//     more than a few. Memory use is therefore bounded by the number of
//     topics and groups times BufferSize (plus what is in flight or delayed),
//     however fast publishers are.
//   - Operator groups: a group registered by [Broker.Provision], such as the
//     dead-letter group, is exempt from backpressure while no subscription
//     consumes it: nobody would make room, and a full dead-letter queue would
//     freeze every consumer that dead-letters. It keeps all its messages
//     (none dropped; a warning is logged past BufferSize), so its memory is
//     bounded only by what is dead-lettered until an operator consumes it.
//   - Copies: Publish copies the metadata (the caller may reuse the message;
//     the payload is shared, as everywhere in Watermill) and each delivery
//     gets its own metadata map, so a handler that changes metadata affects
//     neither other groups nor a redelivery.
//   - Quiet detection: [Broker.Depth], [Broker.Stats], [Broker.Idle] and
//     [Broker.WaitIdle] tell tests and examples when a flow has finished.
//
// # Delivery
//
// Delivery is at least once. Publish returns once every message is stored in
// every target queue. Ack removes a message for its group. Cancelling the
// context given to Subscribe stops intake: the returned channel is closed once
// no more messages will be sent on it, messages not handed out stay queued for
// the group, and messages already handed out can still be acked or nacked
// (graceful shutdown). [Subscriber.Close] puts messages handed out and not
// acked back at the front of the queue, for another subscriber. The context of
// a delivered message carries the values of the Subscribe context, not its
// cancellation, and is cancelled on Ack, Nack and Close; the publisher's
// message context is not carried over, as with a network broker.
//
// # What it does not do
//
//   - It is not durable: everything lives in the process and is lost when the
//     process exits or [Broker.Close] is called. Capabilities report
//     Durable: false.
//   - A group stays registered for a topic for the broker's lifetime; a group
//     registered by a subscriber that stops consuming for good eventually
//     fills its queue and then blocks publishers to that topic.
//   - It does not keep messages after they are acked: a new group does not
//     see old messages (except the backlog described above).
//   - It does not deduplicate: after Subscriber.Close requeues a message, the
//     same message may be handled twice. Make handlers idempotent.
package memory
