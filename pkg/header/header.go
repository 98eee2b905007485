// Package header is Switchyard's header contract: the one place that names every
// metadata key a Switchyard message carries, on every broker.
//
// Event attributes follow CloudEvents 1.0 binary content mode: each attribute is
// a header with the "ce_" prefix and the payload is the event data, so a service
// written with kafkajs or amqplib (or any CloudEvents SDK) can read and write the
// same events. Switchyard's own attributes (event version, correlation, causation,
// hop count) are CloudEvents extension attributes, named as the spec requires:
// lowercase letters and digits only.
//
// Keys that start with "sy_" are Switchyard's operational headers: delivery
// attempts, replay count and dead-letter failure metadata. They are not event
// attributes and are not CloudEvents extensions.
//
// A CloudEvent in structured content mode (content type
// [ContentTypeCloudEvents]) is read too: the runtime turns it into binary
// mode before handling it.
//
// Adapters write these keys unchanged as broker headers (Kafka record headers,
// AMQP message headers). On read, the AMQP binding's "cloudEvents_" and
// "cloudEvents:" prefixes are accepted as well; see [Canonical].
package header

import "strings"

// CloudEvents required and optional context attributes.
const (
	// ID identifies the event; it is also the Watermill message UUID.
	ID = "ce_id"
	// SpecVersion is always [SpecVersionValue].
	SpecVersion = "ce_specversion"
	// Type is the event's stable name, e.g. "orders.order_placed".
	Type = "ce_type"
	// Source names the producing service, a URI-reference.
	Source = "ce_source"
	// Time is when the event happened, RFC 3339 with nanoseconds.
	Time = "ce_time"
	// ContentType is the media type of the payload, e.g. "application/json".
	// In binary mode it is a plain header, not a "ce_" attribute.
	ContentType = "content-type"
)

// Switchyard's CloudEvents extension attributes.
const (
	// Version is the event schema version, a positive integer in decimal.
	Version = "ce_eventversion"
	// Key is the aggregate id; Kafka uses it as the partition key and every
	// broker keeps messages with the same key in order. It is the CloudEvents
	// "partitioning" extension.
	Key = "ce_partitionkey"
	// CorrelationID ties together every event caused, directly or not, by one
	// original event.
	CorrelationID = "ce_correlationid"
	// CausationID is the ID of the event whose handler published this one.
	CausationID = "ce_causationid"
	// HopCount counts how many handlers this event chain has passed through;
	// the hop-limit guard uses it to stop event loops.
	HopCount = "ce_hopcount"
	// TraceParent and TraceState carry W3C trace context (the CloudEvents
	// "distributed tracing" extension).
	TraceParent = "ce_traceparent"
	TraceState  = "ce_tracestate"
)

// Switchyard's operational headers.
const (
	// Attempt is how many times this message has already been handed to the
	// handler and failed (set by delayed retry when it hands a message back to
	// the broker). Absent means zero.
	Attempt = "sy_attempt"
	// FirstFailure is when the first attempt failed (RFC 3339 with
	// nanoseconds), carried across delayed redeliveries.
	FirstFailure = "sy_first_failure"
	// RetryTarget names the consumer group a delayed retry is meant for, so
	// that a retried message reaches only the handler that failed.
	RetryTarget = "sy_retry_group"
	// ReplayCount counts how many times an operator replayed this message out
	// of a dead-letter topic.
	ReplayCount = "sy_replaycount"

	// Dead-letter metadata, written when a message is given up on.
	DeadLetterReason       = "sy_dlq_reason"        // short, machine-readable reason (see failure reasons)
	DeadLetterError        = "sy_dlq_error"         // the full error chain, as text
	DeadLetterHandler      = "sy_dlq_handler"       // handler name
	DeadLetterGroup        = "sy_dlq_group"         // consumer group
	DeadLetterTopic        = "sy_dlq_topic"         // topic the message was consumed from
	DeadLetterAttempts     = "sy_dlq_attempts"      // attempts made, decimal
	DeadLetterFirstFailure = "sy_dlq_first_failure" // RFC 3339 with nanoseconds
	DeadLetterLastFailure  = "sy_dlq_last_failure"  // RFC 3339 with nanoseconds
	DeadLetterParkedBehind = "sy_dlq_parked_behind" // key_parked: id of the key's first dead letter
)

// Request-reply headers (service.Request and service.Reply). A request
// carries where to answer and until when; a reply carries which request it
// answers and, when the replier refused, the refusal's code and message.
const (
	// ReplyTo is the inbox address the reply goes to (broker.Inbox).
	ReplyTo = "sy_reply_to"
	// ReplyDeadline is when the requester stops waiting, RFC 3339 with
	// nanoseconds: a replier skips a request whose deadline has passed.
	ReplyDeadline = "sy_reply_deadline"
	// ReplyFor is the id of the request a reply answers.
	ReplyFor = "sy_reply_for"
	// ReplyErrorCode and ReplyErrorMessage are set on a reply that carries
	// the replier's error instead of a response (service.ReplyError).
	ReplyErrorCode    = "sy_reply_error_code"
	ReplyErrorMessage = "sy_reply_error"
)

// Metadata the Kafka adapter adds to every message it hands out (never
// written as record headers). Defined here so that code outside the adapter
// (tracing) can read them without importing it.
const (
	KafkaPartition = "sy_kafka_partition" // partition the record was read from, decimal
	KafkaOffset    = "sy_kafka_offset"    // the record's offset in its partition, decimal
)

// Values.
const (
	SpecVersionValue = "1.0"
	ContentTypeJSON  = "application/json"
	// ContentTypeCloudEvents is the content type of a CloudEvent in
	// structured content mode: the whole event, as JSON, in the payload.
	ContentTypeCloudEvents = "application/cloudevents+json"
	// ContentTypeCloudEventsBatch is the content type of a batch of
	// CloudEvents (a JSON array) in one message.
	ContentTypeCloudEventsBatch = "application/cloudevents-batch+json"
)

// Headers of Watermill's default marshalers and components, written for
// and read from services on plain watermill-kafka and watermill-amqp (see
// inbound.PresetWatermill and service.WithWatermillHeaders).
const (
	// WatermillUUID carries the Watermill message UUID
	// (watermill-kafka's UUIDHeaderKey, watermill-amqp's
	// DefaultMessageUUIDHeaderKey).
	WatermillUUID = "_watermill_message_uuid"
	// WatermillCorrelationID is the correlation id of Watermill's
	// correlation middleware (middleware.CorrelationIDMetadataKey).
	WatermillCorrelationID = "correlation_id"
	// WatermillName is the event or command name Watermill's CQRS
	// marshalers write.
	WatermillName = "name"
)

// CloudEventsPrefix is the prefix of every CloudEvents attribute header.
const CloudEventsPrefix = "ce_"

// Canonical returns the Switchyard name of a header read from a broker. It
// maps the AMQP CloudEvents binding's "cloudEvents_" and "cloudEvents:"
// prefixes and Kafka's "ce-" spelling to "ce_", and lowercases "Content-Type".
// Other names are returned unchanged.
func Canonical(name string) string {
	switch {
	case strings.HasPrefix(name, "cloudEvents_"):
		return CloudEventsPrefix + name[len("cloudEvents_"):]
	case strings.HasPrefix(name, "cloudEvents:"):
		return CloudEventsPrefix + name[len("cloudEvents:"):]
	case strings.HasPrefix(name, "ce-"):
		return CloudEventsPrefix + name[len("ce-"):]
	case strings.EqualFold(name, ContentType):
		return ContentType
	}
	return name
}
