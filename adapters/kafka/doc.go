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
// Topic auto-creation is not relied upon: the adapter creates missing topics
// with Config.Partitions and Config.ReplicationFactor through the admin API,
// and remembers which exist.
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
// record when it and every earlier record were acked. Offsets are committed
// every Config.CommitInterval, when partitions are revoked and on Close.
//
// Nack: the record is handed out again after a backoff, Config.NackBackoff
// doubling with each nack of the same record up to Config.MaxNackBackoff. It
// goes before any later record with the same key that was not handed out
// yet; records with other keys, or without a key, are not held back. The
// commit never passes it.
//
// Rebalances: when partitions are revoked, what was acked on them is
// committed; acks of their records arriving later are ignored, and the new
// owner redelivers those records (at-least-once).
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
// [Broker.Delay] publishes a message to a retry topic named after the delay
// tier it is rounded up to, "<topic>.retry.<tier>" (Config.DelayTiers,
// default 1s, 5s, 30s, 2m and 10m, e.g. "orders.retry.5s"), with headers
// naming the target group ([header.RetryTarget]) and the due time
// ([MetadataRetryDue], Unix milliseconds). Every subscription of a topic
// also consumes its retry topics: a record for another group is skipped (and
// committed), and a record not due yet pauses only its retry partition until
// it is due, so the main topic and other partitions keep flowing, as Spring
// Kafka's non-blocking retries do. The handed-out message carries the
// original metadata; [MetadataTopic] names the retry topic. Retry topics are
// created by the first Delay to them (not by Subscribe, so that a topic
// nobody retries costs no extra partitions); a subscription notices a
// retry topic created after it joined within a few seconds, so the first
// delayed message of a tier may arrive that much later than due, never
// sooner.
//
// # Operations: provisioning and browsing
//
// The Broker also implements [broker.Provisioner] and [broker.Browser].
// [Broker.Provision] creates the topic if it is missing; Kafka keeps records
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
// Close commits every offset acked before it, leaves the group and cancels
// the context of messages still in flight (all messages of a subscription
// share one context, cancelled then, not when a message is acked); their
// records are redelivered to the group.
// [Broker.Close] closes every subscriber, then flushes and closes the
// publisher.
package kafka
