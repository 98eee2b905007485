package asyncapi

import (
	"strconv"

	"github.com/switchyard-go/switchyard/pkg/header"
)

// headersSchemaID is the components/schemas entry of the header contract.
const headersSchemaID = "SwitchyardHeaders"

// headersSchema is docs/headers.md as a JSON Schema, from package header's
// names: the CloudEvents binary-mode attributes and the operational sy_*
// headers a message may carry. Dead-letter metadata is left out: it is on
// dead letters only, which are not channels of the document. Every value
// is a string, as on every broker.
func headersSchema() map[string]any {
	str := func(desc string) map[string]any { return map[string]any{"type": "string", "description": desc} }
	withFormat := func(desc, format string) map[string]any {
		s := str(desc)
		s["format"] = format
		return s
	}
	decimal := func(desc string) map[string]any {
		s := str(desc)
		s["pattern"] = "^[0-9]+$"
		return s
	}
	specVersion := str("CloudEvents spec version, always " + header.SpecVersionValue + ".")
	specVersion["const"] = header.SpecVersionValue
	version := str("Schema version of the payload; missing means 1 (Switchyard leaves version 1 out).")
	version["pattern"] = "^[1-9][0-9]*$"
	return map[string]any{
		"type":        "object",
		"description": "Switchyard's header contract: CloudEvents 1.0 binary content mode (ce_* attributes) and operational sy_* headers. Header names may also arrive as cloudEvents_* or cloudEvents:* (AMQP) and ce-* (Kafka).",
		"required":    []any{header.ID, header.SpecVersion, header.Type, header.Source},
		"properties": map[string]any{
			header.ID:            str("Unique event id (UUIDv7); also the Watermill message UUID."),
			header.SpecVersion:   specVersion,
			header.Type:          str("Stable event name, e.g. orders.order_placed."),
			header.Source:        str("Producing service (service.name), a URI-reference."),
			header.Time:          withFormat("When it happened, RFC 3339 with nanoseconds, UTC.", "date-time"),
			header.ContentType:   str("Media type of the payload, application/json by default."),
			header.Version:       version,
			header.Key:           str("Aggregate id: the Kafka partition key; events with the same key are handled in order."),
			header.CorrelationID: str("Id of the event that started the chain; missing means this event's id."),
			header.CausationID:   str("Id of the event whose handler published this one."),
			header.HopCount:      decimal("How many handlers the chain has passed; missing means 0."),
			header.TraceParent:   str("W3C trace context: traceparent."),
			header.TraceState:    str("W3C trace context: tracestate."),
			header.Attempt:       decimal("Attempts already made, on a delayed retry handed back to the broker."),
			header.FirstFailure:  withFormat("When the first attempt failed, carried across delayed retries.", "date-time"),
			header.RetryTarget:   str("The one consumer group a delayed retry or a replay is for; other groups ack and skip it."),
			header.ReplayCount:   decimal("How many times an operator replayed the message from a dead-letter topic."),
		},
	}
}

// messageHeaders is the header schema of one event type: the contract,
// with ce_type fixed and the version the current code writes.
func messageHeaders(eventType string, version int) map[string]any {
	props := map[string]any{header.Type: map[string]any{"const": eventType}}
	if version > 0 {
		props[header.Version] = map[string]any{"const": strconv.Itoa(version)}
	}
	return map[string]any{
		"type":       "object",
		"allOf":      []any{map[string]any{"$ref": "#/components/schemas/" + headersSchemaID}},
		"properties": props,
	}
}
