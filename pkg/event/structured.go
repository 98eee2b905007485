package event

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/header"
)

// ContentMode is how a message carries a CloudEvent: binary content mode
// (attributes in headers, the payload is the data; Switchyard's default) or
// structured content mode (the whole event, attributes and data, as one
// JSON document in the payload; what many CloudEvents SDKs and Dapr send).
type ContentMode string

// Content modes.
const (
	ContentModeBinary     ContentMode = "binary"
	ContentModeStructured ContentMode = "structured"
)

// IsStructured reports whether md is the metadata of a CloudEvent in
// structured (or batched) content mode, as the CloudEvents Kafka and AMQP
// bindings tell it: by a content type starting with
// "application/cloudevents".
func IsStructured(md message.Metadata) bool {
	const prefix = "application/cloudevents"
	ct := md[header.ContentType]
	return len(ct) >= len(prefix) && strings.EqualFold(ct[:len(prefix)], prefix)
}

// FromStructured rewrites msg, a CloudEvent in structured content mode
// (see [IsStructured]), into binary mode in place: every attribute becomes
// its "ce_" header (datacontenttype becomes content-type), and the payload
// becomes the event data (data as it is for JSON, the string for other
// media types, data_base64 decoded). The runtime then reads it as any other
// message.
//
// An event that is not a JSON object, lacks id, source, type or
// specversion 1.0, or has both data and data_base64, is rejected with a
// permanent error of reason "invalid_envelope" and msg is left unchanged.
// Batched mode (application/cloudevents-batch+json) is rejected with
// reason "unsupported_content_type": one message, one event.
func FromStructured(msg *message.Message) error {
	ct := msg.Metadata[header.ContentType]
	if mt := mediaType(ct); mt == header.ContentTypeCloudEventsBatch {
		return failure.WithReason(failure.ReasonUnsupportedContentType,
			fmt.Errorf("CloudEvents batched content mode (%s) is not supported: publish one event per message", mt))
	} else if mt != header.ContentTypeCloudEvents {
		return failure.WithReason(failure.ReasonUnsupportedContentType,
			fmt.Errorf("structured CloudEvent: content type %q, want %s", ct, header.ContentTypeCloudEvents))
	}
	invalid := func(err error) error {
		return failure.WithReason(failure.ReasonInvalidEnvelope, fmt.Errorf("%w: structured CloudEvent: %w", ErrInvalidEnvelope, err))
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(msg.Payload, &doc); err != nil || doc == nil {
		return invalid(errors.New("the payload is not a JSON object"))
	}
	attrs := make(map[string]string, len(doc))
	var errs []error
	for name, raw := range doc {
		if name == "data" || name == "data_base64" {
			continue
		}
		v, ok, err := attributeValue(raw)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("attribute %q: %w", name, err))
		case ok:
			attrs[name] = v
		}
	}
	if v := attrs["specversion"]; v != header.SpecVersionValue {
		errs = append(errs, fmt.Errorf("specversion %q, want %q", v, header.SpecVersionValue))
	}
	for _, name := range []string{"id", "source", "type"} {
		if attrs[name] == "" {
			errs = append(errs, fmt.Errorf("attribute %q is missing", name))
		}
	}
	dataContentType := attrs["datacontenttype"]
	var data []byte
	raw, hasData := doc["data"]
	raw64, hasData64 := doc["data_base64"]
	hasData = hasData && !isJSONNull(raw)
	hasData64 = hasData64 && !isJSONNull(raw64)
	switch {
	case hasData && hasData64:
		errs = append(errs, errors.New("both data and data_base64 are set"))
	case hasData64:
		var s string
		if err := json.Unmarshal(raw64, &s); err != nil {
			errs = append(errs, errors.New("data_base64 is not a string"))
		} else if data, err = base64.StdEncoding.DecodeString(s); err != nil {
			errs = append(errs, fmt.Errorf("data_base64: %w", err))
		}
	case hasData:
		data = bytes.TrimSpace(raw)
		if dataContentType == "" {
			dataContentType = header.ContentTypeJSON
		}
		if !isJSONMediaType(mediaType(dataContentType)) {
			// Data of other media types is a JSON string in this format.
			var s string
			if err := json.Unmarshal(raw, &s); err == nil {
				data = []byte(s)
			}
		}
	}
	if len(errs) > 0 {
		return invalid(errors.Join(errs...))
	}

	md := msg.Metadata
	delete(md, header.ContentType)
	for name, v := range attrs {
		if name == "datacontenttype" {
			continue
		}
		md[header.CloudEventsPrefix+name] = v
	}
	if dataContentType != "" {
		md[header.ContentType] = dataContentType
	}
	msg.Payload = data
	return nil
}

// attributeValue renders a structured-mode attribute as its header value:
// strings as they are, numbers and booleans in their JSON text. ok is false
// for null (an absent attribute).
func attributeValue(raw json.RawMessage) (v string, ok bool, err error) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || isJSONNull(raw):
		return "", false, nil
	case raw[0] == '"':
		if err := json.Unmarshal(raw, &v); err != nil {
			return "", false, err
		}
		return v, true, nil
	case raw[0] == '{' || raw[0] == '[':
		return "", false, errors.New("is an object or array, want a string, number or boolean")
	}
	return string(raw), true, nil
}

func isJSONNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

func isJSONMediaType(mt string) bool {
	return mt == header.ContentTypeJSON || mt == "text/json" || strings.HasSuffix(mt, "+json")
}

// integerAttributes are Switchyard's extensions of CloudEvents type
// Integer, written as JSON numbers in structured mode.
var integerAttributes = map[string]bool{
	header.Version[len(header.CloudEventsPrefix):]:  true,
	header.HopCount[len(header.CloudEventsPrefix):]: true,
}

// ToStructured returns msg in structured content mode: a new message with
// the same UUID whose payload is the whole CloudEvent as JSON (every "ce_"
// header as an attribute, content-type as datacontenttype, the payload as
// data when it is JSON, else as data_base64) and whose content type is
// application/cloudevents+json. Headers that are not event attributes
// (sy_*, or any other) are kept, and so is the key header
// (ce_partitionkey): adapters take the Kafka record key from it. msg is
// not changed.
//
// It fails when msg lacks ce_id, ce_type or ce_source, which structured
// mode requires (every message Switchyard publishes has them).
func ToStructured(msg *message.Message) (*message.Message, error) {
	md := msg.Metadata
	var missing []string
	for _, k := range []string{header.ID, header.Type, header.Source} {
		if md[k] == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("event: structured mode needs headers %s", strings.Join(missing, ", "))
	}
	out := message.NewMessage(msg.UUID, nil)
	attrs := map[string]string{}
	for k, v := range md {
		if name, ok := strings.CutPrefix(k, header.CloudEventsPrefix); ok && name != "" {
			attrs[name] = v
			if k != header.Key {
				continue
			}
		}
		if k != header.ContentType {
			out.Metadata[k] = v
		}
	}
	attrs["specversion"] = header.SpecVersionValue
	contentType := md[header.ContentType]
	if contentType != "" {
		attrs["datacontenttype"] = contentType
	}

	var b bytes.Buffer
	b.WriteByte('{')
	first := true
	field := func(name string, value []byte) {
		if !first {
			b.WriteByte(',')
		}
		first = false
		k, _ := json.Marshal(name)
		b.Write(k)
		b.WriteByte(':')
		b.Write(value)
	}
	// The required attributes first, then the others in name order, then
	// data: the same event always gives the same bytes.
	order := []string{"specversion", "id", "source", "type"}
	rest := slices.Sorted(maps.Keys(attrs))
	for _, name := range append(order, rest...) {
		v, ok := attrs[name]
		if !ok {
			continue
		}
		delete(attrs, name)
		if integerAttributes[name] {
			if _, err := strconv.Atoi(v); err == nil {
				field(name, []byte(v))
				continue
			}
		}
		s, _ := json.Marshal(v)
		field(name, s)
	}
	if len(msg.Payload) > 0 {
		mt := mediaType(contentType)
		switch {
		case (mt == "" || isJSONMediaType(mt)) && json.Valid(msg.Payload):
			var compact bytes.Buffer
			_ = json.Compact(&compact, msg.Payload)
			field("data", compact.Bytes())
		case strings.HasPrefix(mt, "text/") && utf8.Valid(msg.Payload):
			s, _ := json.Marshal(string(msg.Payload))
			field("data", s)
		default:
			s, _ := json.Marshal(base64.StdEncoding.EncodeToString(msg.Payload))
			field("data_base64", s)
		}
	}
	b.WriteByte('}')
	out.Payload = b.Bytes()
	out.Metadata[header.ContentType] = header.ContentTypeCloudEvents + "; charset=utf-8"
	return out, nil
}
