package inbound

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/header"
)

// Mapping says how to read the messages of one topic whose producers do not
// write Switchyard's header contract: where each event attribute is found.
// It is what users write under "topics.<topic>.inbound" in a configuration
// file. Only Type is required; every other attribute has the default
// documented on it.
type Mapping struct {
	// Preset fills in what a kind of producer always writes; the fields
	// set here win over it. "watermill": services on watermill-kafka or
	// watermill-amqp with their default marshalers: the id from the
	// Watermill message UUID header (_watermill_message_uuid), the type
	// from the "name" header of Watermill's CQRS marshalers, the
	// correlation id, when present, from the "correlation_id" header of
	// Watermill's correlation middleware. Default none.
	Preset string `yaml:"preset"`
	// Type is where the event type is read: a header such as "eventType",
	// a JSON field such as "type", or one fixed value for the whole topic.
	// Required.
	Type From `yaml:"type"`
	// Types renames the types producers write into Switchyard event types,
	// e.g. {OrderPlaced: orders.order_placed}. A type it does not list is
	// kept as written. Default none.
	Types map[string]string `yaml:"types"`
	// ID is where the event id is read (a header or a JSON field). Default:
	// the id the broker adapter gives the message: on RabbitMQ the
	// message-id property (amqplib's messageId); on Kafka
	// "<topic>/<partition>/<offset>", the same on every redelivery. A
	// RabbitMQ message without a message-id gets a new id on each delivery,
	// which defeats idempotency: map the id when producers set none.
	ID From `yaml:"id"`
	// Key is where the aggregate id is read (a header or a JSON field); it
	// orders handling per key. Default: the key the adapter gives the
	// message (on Kafka, the record key).
	Key From `yaml:"key"`
	// CorrelationID is where the correlation id is read (a header such as
	// "correlationId", or a JSON field). Default: none, the event starts a
	// chain of its own.
	CorrelationID From `yaml:"correlation_id"`
	// Time is when the event happened, a header or a JSON field in
	// [From.Format]. Default: none.
	Time From `yaml:"time"`
	// Source is the CloudEvents source, a header, a JSON field or a fixed
	// value such as "node-order-service". Default: none.
	Source From `yaml:"source"`
	// ContentType is the payload's media type, a header or a fixed value.
	// Default: the message's content-type header (on RabbitMQ also the
	// content-type property); without one the payload is read as JSON.
	ContentType From `yaml:"content_type"`
	// Version is the event schema version, a positive integer: a header, a
	// JSON field or a fixed value. Default 1.
	Version From `yaml:"version"`
	// DataField, when set, is the JSON field that holds the event data, for
	// producers that wrap it ({"type": ..., "data": {...}}); the handler
	// then decodes only that field. Default: the whole payload.
	DataField string `yaml:"data_field"`
}

// From is where one attribute is read. Set at most one of Header, Field and
// Value.
type From struct {
	// Header is the name of a header (AMQP header, Kafka record header),
	// matched exactly.
	Header string `yaml:"header"`
	// Field is a field of the JSON payload; dots descend into objects
	// ("meta.type"). Strings are taken as they are, numbers and booleans in
	// their JSON text.
	Field string `yaml:"field"`
	// Value is a fixed value for every message of the topic.
	Value string `yaml:"value"`
	// Format is how a time is written, for Time only: "rfc3339" (default),
	// "unix_ms" (milliseconds since the epoch, as JavaScript's Date.now())
	// or "unix_s".
	Format string `yaml:"format"`
	// Optional makes a missing header or field fall back to the attribute's
	// default instead of failing the message. Not allowed for Type.
	Optional bool `yaml:"optional"`
}

// Presets of [Mapping.Preset].
const (
	PresetWatermill = "watermill"
)

// Resolved returns m with its preset's defaults filled in where m leaves
// a field unset, and no preset.
func (m Mapping) Resolved() Mapping {
	if m.Preset == PresetWatermill {
		if m.ID.IsZero() {
			m.ID = From{Header: header.WatermillUUID}
		}
		if m.Type.IsZero() {
			m.Type = From{Header: header.WatermillName}
		}
		if m.CorrelationID.IsZero() {
			m.CorrelationID = From{Header: header.WatermillCorrelationID, Optional: true}
		}
	}
	m.Preset = ""
	return m
}

// Time formats of [From.Format].
const (
	TimeRFC3339 = "rfc3339"
	TimeUnixMS  = "unix_ms"
	TimeUnixS   = "unix_s"
)

// IsZero reports whether f names no source.
func (f From) IsZero() bool { return f.Header == "" && f.Field == "" && f.Value == "" }

func (f From) String() string {
	switch {
	case f.Header != "":
		return fmt.Sprintf("header %q", f.Header)
	case f.Field != "":
		return fmt.Sprintf("JSON field %q", f.Field)
	case f.Value != "":
		return fmt.Sprintf("value %q", f.Value)
	}
	return "nothing"
}

// ErrUnmapped is wrapped by every error of [Mapping.Apply].
var ErrUnmapped = errors.New("message does not fit the inbound mapping")

// Validate reports every problem in m at once, naming each field under
// prefix (e.g. "topics.orders.inbound").
func (m Mapping) Validate(prefix string) error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", prefix, field, fmt.Sprintf(format, args...)))
	}
	switch m.Preset {
	case "", PresetWatermill:
	default:
		bad("preset", "%q, want %q or none", m.Preset, PresetWatermill)
	}
	m = m.Resolved()
	check := func(field string, f From, allowValue bool) {
		n := 0
		for _, s := range []string{f.Header, f.Field, f.Value} {
			if s != "" {
				n++
			}
		}
		switch {
		case n > 1:
			bad(field, "set one of header, field or value, not %d", n)
		case f.Value != "" && !allowValue:
			bad(field+".value", "%q: a fixed %s is not allowed, want header or field", f.Value, field)
		case f.Optional && f.Value != "":
			bad(field+".optional", "true with a fixed value, which is never missing")
		}
		if f.Field != "" && !validPath(f.Field) {
			bad(field+".field", "%q, want names separated by single dots", f.Field)
		}
		if f.Format != "" && field != "time" {
			bad(field+".format", "%q: only time has a format", f.Format)
		}
	}
	if m.Type.IsZero() {
		bad("type", "required: a header, a JSON field or a fixed value")
	}
	if m.Type.Optional {
		bad("type.optional", "true, but a message without a type cannot be handled")
	}
	check("type", m.Type, true)
	check("id", m.ID, false)
	check("key", m.Key, true)
	check("correlation_id", m.CorrelationID, false)
	check("time", m.Time, false)
	check("source", m.Source, true)
	check("content_type", m.ContentType, true)
	check("version", m.Version, true)
	switch m.Time.Format {
	case "", TimeRFC3339, TimeUnixMS, TimeUnixS:
	default:
		bad("time.format", "%q, want %s (default), %s or %s", m.Time.Format, TimeRFC3339, TimeUnixMS, TimeUnixS)
	}
	if v := m.Version.Value; v != "" {
		if n, err := strconv.Atoi(v); err != nil || n < 1 {
			bad("version.value", "%q, want a positive integer", v)
		}
	}
	for from, to := range m.Types {
		if from == "" || to == "" {
			bad("types", "%q: %q, want non-empty names on both sides", from, to)
		}
	}
	if m.DataField != "" && !validPath(m.DataField) {
		bad("data_field", "%q, want names separated by single dots", m.DataField)
	}
	return errors.Join(errs...)
}

func validPath(p string) bool {
	for _, part := range strings.Split(p, ".") {
		if part == "" {
			return false
		}
	}
	return true
}

// Apply rewrites msg into Switchyard's header contract as m says: it sets
// the CloudEvents attribute headers (ce_specversion, ce_id, ce_type, ...)
// from where m finds them and, with DataField, replaces the payload by that
// field. A message that already carries the contract (a ce_specversion
// header: a Switchyard or CloudEvents producer on the same topic) is left
// as it is.
//
// Either every attribute is found and msg is rewritten, or msg is left
// unchanged and the error, wrapping [ErrUnmapped], names every attribute
// that is missing or malformed and where it was looked for.
func (m *Mapping) Apply(msg *message.Message) error {
	md := msg.Metadata
	if md[header.SpecVersion] != "" {
		return nil
	}
	if m.Preset != "" {
		r := m.Resolved()
		m = &r
	}
	r := reader{msg: msg}
	typ, _ := r.read("type", m.Type)
	if to, ok := m.Types[typ]; ok {
		typ = to
	}
	id, found := r.read("id", m.ID)
	if !found {
		id = md[header.ID]
		if id == "" {
			id = msg.UUID
		}
	}
	key, _ := r.read("key", m.Key)
	corr, _ := r.read("correlation_id", m.CorrelationID)
	source, _ := r.read("source", m.Source)
	contentType, _ := r.read("content_type", m.ContentType)
	version, _ := r.read("version", m.Version)
	if version != "" {
		if n, err := strconv.Atoi(version); err != nil || n < 1 {
			r.fail("version", m.Version, fmt.Sprintf("%q is not a positive integer", version))
		}
	}
	var when string
	if raw, ok := r.read("time", m.Time); ok {
		t, err := parseTime(raw, m.Time.Format)
		if err != nil {
			r.fail("time", m.Time, err.Error())
		} else {
			when = string(event.AppendTime(nil, t))
		}
	}
	var data []byte
	if m.DataField != "" {
		raw, err := r.field(m.DataField)
		switch {
		case err != nil:
			r.problems = append(r.problems, fmt.Errorf("data_field %q: %v", m.DataField, err))
		case raw == nil:
			r.problems = append(r.problems, fmt.Errorf("data_field %q is missing", m.DataField))
		default:
			data = raw
		}
	}
	if len(r.problems) > 0 {
		return fmt.Errorf("%w: %w", ErrUnmapped, errors.Join(r.problems...))
	}

	md[header.SpecVersion] = header.SpecVersionValue
	md[header.Type] = typ
	md[header.ID] = id // kept across delayed retries and dead letters
	set := func(k, v string) {
		if v != "" {
			md[k] = v
		}
	}
	set(header.Key, key)
	set(header.CorrelationID, corr)
	set(header.Source, source)
	set(header.ContentType, contentType)
	set(header.Version, version)
	set(header.Time, when)
	if data != nil {
		msg.Payload = data
	}
	return nil
}

// reader finds attributes in one message, decoding its JSON payload at
// most once.
type reader struct {
	msg      *message.Message
	top      map[string]json.RawMessage
	topErr   error
	decoded  bool
	problems []error
}

func (r *reader) fail(attr string, f From, why string) {
	r.problems = append(r.problems, fmt.Errorf("%s from %s: %s", attr, f, why))
}

// read returns the value of attribute attr from f; found is false when f
// names nothing, or names something missing that is optional (a missing
// required one is recorded as a problem).
func (r *reader) read(attr string, f From) (v string, found bool) {
	switch {
	case f.Value != "":
		return f.Value, true
	case f.Header != "":
		v, ok := r.msg.Metadata[f.Header]
		if ok && v != "" {
			return v, true
		}
	case f.Field != "":
		raw, err := r.field(f.Field)
		if err != nil {
			r.fail(attr, f, err.Error())
			return "", false
		}
		if raw != nil {
			s, err := scalar(raw)
			if err != nil {
				r.fail(attr, f, err.Error())
				return "", false
			}
			if s != "" {
				return s, true
			}
		}
	default:
		return "", false
	}
	if !f.Optional {
		r.fail(attr, f, "missing")
	}
	return "", false
}

// field returns the raw JSON of the payload field at path, or nil when it
// is absent or null.
func (r *reader) field(path string) (json.RawMessage, error) {
	if !r.decoded {
		r.decoded = true
		if err := json.Unmarshal(r.msg.Payload, &r.top); err != nil || r.top == nil {
			r.topErr = errors.New("the payload is not a JSON object")
		}
	}
	if r.topErr != nil {
		return nil, r.topErr
	}
	parts := strings.Split(path, ".")
	obj := r.top
	for i, p := range parts {
		raw, ok := obj[p]
		if !ok || isNull(raw) {
			return nil, nil
		}
		if i == len(parts)-1 {
			return raw, nil
		}
		obj = nil
		if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
			return nil, fmt.Errorf("%q is not a JSON object", strings.Join(parts[:i+1], "."))
		}
	}
	return nil, nil
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

// scalar renders a JSON string, number or boolean as text.
func scalar(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0:
		return "", nil
	case raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", err
		}
		return s, nil
	case raw[0] == '{' || raw[0] == '[':
		return "", errors.New("is an object or array, want a string, number or boolean")
	}
	return string(raw), nil
}

func parseTime(s, format string) (time.Time, error) {
	switch format {
	case TimeUnixMS, TimeUnixS:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is not a whole number of %s", s, map[string]string{TimeUnixMS: "milliseconds", TimeUnixS: "seconds"}[format])
		}
		t := time.UnixMilli(n)
		if format == TimeUnixS {
			t = time.Unix(n, 0)
		}
		if y := t.Year(); y < 1 || y > 9999 || (format == TimeUnixS && (n > 1<<40 || n < -(1<<40))) {
			return time.Time{}, fmt.Errorf("%q is out of range (years 1 to 9999)", s)
		}
		return t, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time", s)
	}
	return t, nil
}
