// Package kafka is Switchyard's Apache Kafka adapter, written on franz-go
// (github.com/twmb/franz-go, kgo and kadm). It implements [broker.Broker],
// [broker.Delayer], [broker.Provisioner] and [broker.Browser] and gives
// Watermill publishers and subscribers that pass Watermill's universal
// Pub/Sub test suite.
//
// It replaces watermill-kafka (Sarama), which publishes one synchronous
// request per message and stops a partition on a record it cannot handle.
//
// # Publishing
//
// [Broker.Publisher] is one shared franz-go producing client. Publish
// produces every message asynchronously and returns once all are
// acknowledged: with Acks "all" (the default) by every in-sync replica, with
// the idempotent producer on, so retries never duplicate or reorder records.
// Concurrent Publish calls share produce requests.
//
// Batches are produced uncompressed unless Config.Compression says
// otherwise: franz-go's own default, snappy, cannot be read by kafkajs
// without a plugin, and "none" and "gzip" are read by every Kafka client.
//
// The record key is the message's [header.Key] metadata (the aggregate id),
// so messages with one key land on one partition and keep their order. All
// metadata becomes record headers, unchanged ([header] is the contract);
// [header.ID] is set from the message UUID when missing. Metadata the
// subscriber adds ("sy_kafka_*") is not written back.
//
// Topic auto-creation is not relied upon. Config.Provision says what the
// adapter does: "create" (default) looks topics up in the metadata and
// creates the missing ones with Config.Partitions and
// Config.ReplicationFactor (default -1, the cluster's default) through the
// admin API, once per topic (an ACL principal without CREATE permission
// works with topics that exist); "verify" fails naming a missing topic
// ([ErrTopicMissing]); "none" neither looks nor creates.
//
// # Subscribing
//
// [Broker.Subscriber] returns a subscriber for one consumer group; each
// Subscribe call joins the group with its own client. Subscribers of one
// group share the topic's partitions (a work queue); different groups each
// get every message.
//
// A subscription hands out up to its prefetch of records (Config.Prefetch,
// or SubscriberOptions.Prefetch) without waiting for acks, across its
// partitions. Records of one partition are handed out in offset order.
// Message UUIDs come from the ce_id header, or "<topic>/<partition>/<offset>"
// when it is missing; metadata comes from the headers with [header.Canonical]
// applied, plus [MetadataTopic], [MetadataPartition] and [MetadataOffset].
// A message's key ([header.Key]) is its ce_partitionkey header, else the
// record key, so records keyed by a producer that writes no such header
// (kafkajs with `key: aggregateId`) keep their key.
// A record whose headers or payload are junk is handed out all the same: the
// runtime dead-letters what it cannot decode, and a partition never stops.
//
// Acks are noticed without a goroutine per message: the dispatcher waits on
// the oldest message handed out, collects every acked one behind it at
// once, and sweeps the rest for acks out of order (every 1ms, backing off
// to 50ms while it finds none).
//
// Offsets: acks may come in any order (the runtime handles different keys
// concurrently); the committed offset of a partition only moves past a
// record when it and every earlier record were acked. Commit points are
// marked on the franz-go client and committed every Config.CommitInterval
// (a failed commit is retried at the next one), when partitions are revoked
// and on Close. franz-go drops the marks of revoked partitions, so a member
// never commits a partition it no longer owns.
//
// Nack: the record is handed out again after a backoff, Config.NackBackoff
// doubling with each nack of the same record up to Config.MaxNackBackoff. It
// goes before any later record with the same key that was not handed out
// yet; records with other keys, or without a key, are not held back. The
// commit never passes it.
//
// Rebalances: when partitions are revoked, the subscription stops handing
// out their records and takes back those still buffered in its channel,
// waits up to 3/4 of Config.RebalanceTimeout for those being handled,
// cancels the contexts of the ones still running (each partition's
// messages share a context), commits what was acked and only then lets the
// rebalance go on. So the new owner starts after the last acked record and
// a key is not handled on two members at once, unless a handler ignores its
// cancelled context. Acks arriving after that are ignored and the new owner
// redelivers those records (at-least-once). Lost partitions (an expired
// session) are neither drained nor committed. Config.InstanceID turns on
// static membership: a restarted member gets its partitions back without a
// rebalance.
//
// Failures: an authentication or authorization failure, or a static member
// fenced by another with the same instance id, ends the subscription: its
// channel closes and [Subscriber.Failure] ([broker.Failer]) says why.
//
// # Ordering
//
// Order holds per key, through the partition key, whether or not
// SubscriberOptions.Ordered is set: Kafka keeps one partition in order and
// one partition is consumed by one group member at a time. A subscription
// may hand out several records of one key before the first is acked; the
// runtime serialises handling per key. Only a redelivery (nack, rebalance,
// restart) can hand a record out after a later one of the same key.
//
// # Delayed redelivery
//
// [Broker.Delay] publishes a message to a retry topic of the target group,
// named after the delay tier it is rounded up to,
// "<topic>.retry.<group>.<tier>" (Config.DelayTiers, default 1s, 5s, 30s,
// 2m and 10m, e.g. "orders.retry.billing.5s"), with headers naming the
// group ([header.RetryTarget]) and the due time ([MetadataRetryDue], Unix
// milliseconds). Subscribe creates the group's retry topics (as
// Config.Provision says), and every subscription reads them with a client
// of its own, in the consumer group "<group>.retry", always from the
// earliest offset: a delayed record is never skipped, whatever
// InitialOffset says and whenever the topic was created. That client has
// its own fetch budget, so records waiting to be due never stop the main
// topic's fetching. A record not due yet pauses only its retry partition
// until it is due, as Spring Kafka's non-blocking retries do. A delay
// longer than the last tier goes to the last tier with its final due time
// ([MetadataRetryUntil]) and is forwarded through the tiers until then:
// never handed out early, never holding a partition longer than its tier.
// The retry topics of a group are found by a pattern, so records in tiers
// no longer configured are still read. The handed-out message carries the
// original metadata; [MetadataTopic] names the retry topic.
//
// # Operations: provisioning and browsing
//
// The Broker also implements [broker.Provisioner] and [broker.Browser].
// [Broker.Provision] creates the topic and the group's retry topics if they
// are missing (Config.Provision); Kafka keeps records
// for their retention time whoever consumes them. With InitialOffset
// "earliest" (the default) it commits nothing: a group without committed
// offsets reads the whole topic, which for a dead-letter topic is every dead
// letter. With "latest" it commits the current end offsets where the group
// has none, so that the group's first subscription does not skip what was
// published in between; committed offsets are never moved. Mind the topic's
// retention (retention.ms, 7 days by default on most clusters): dead letters
// older than that are deleted by Kafka.
//
// [Broker.Browse] reads what a group has not consumed (from its committed
// offsets up to the high watermarks captured when it starts) with a
// direct-partition client of its own: it neither joins the group nor
// commits. Partitions are merged by record timestamp. Records acked but not
// committed yet are still shown.
//
// # Shutdown
//
// Cancelling the context given to Subscribe stops intake and closes the
// channel. Messages already handed out can still be acked or nacked until
// [Subscriber.Close]; once none is in flight, acked offsets are committed
// and the subscription leaves the group so that others take its partitions.
// The channel buffers up to 64 messages (within the prefetch window); those
// nobody received when intake stops are taken back, not acked, and the
// group gets them again.
// Close commits every offset acked before it, leaves the groups and cancels
// the context of messages still in flight (without waiting for them: the
// drain on revoke is for rebalances, not for Close); their records are
// redelivered to the group.
// [Broker.Close] closes every subscriber, then flushes and closes the
// publisher.
package kafka
