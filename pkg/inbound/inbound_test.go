package inbound_test

import (
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/inbound"
)

func msg(uuid, payload string, md map[string]string) *message.Message {
	m := message.NewMessage(uuid, []byte(payload))
	maps.Copy(m.Metadata, md)
	return m
}

// The article's kafkajs producer: JSON body, eventType, correlationId and
// timestamp (ms) headers; the record key arrives as the adapter's key.
var articleKafka = inbound.Mapping{
	Type:          inbound.From{Header: "eventType"},
	Types:         map[string]string{"OrderPlaced": "orders.order_placed"},
	CorrelationID: inbound.From{Header: "correlationId"},
	Time:          inbound.From{Header: "timestamp", Format: inbound.TimeUnixMS},
}

func TestApply(t *testing.T) {
	tests := []struct {
		name    string
		mapping inbound.Mapping
		msg     *message.Message
		want    map[string]string // headers expected after Apply (in addition to what was there)
		payload string            // expected payload, "" for unchanged
	}{
		{
			name:    "article kafkajs style",
			mapping: articleKafka,
			msg: msg("orders/1/42", `{"id":"o-1","total":3}`, map[string]string{
				"eventType": "OrderPlaced", "correlationId": "corr-9", "timestamp": "1767322800123", header.Key: "o-1",
			}),
			want: map[string]string{
				header.SpecVersion: "1.0", header.Type: "orders.order_placed", header.ID: "orders/1/42",
				header.CorrelationID: "corr-9", header.Time: "2026-01-02T03:00:00.123Z",
			},
		},
		{
			name: "type, id, key and correlation from JSON fields, fixed source and version",
			mapping: inbound.Mapping{
				Type: inbound.From{Field: "type"}, ID: inbound.From{Field: "meta.id"}, Key: inbound.From{Field: "aggregateId"},
				CorrelationID: inbound.From{Field: "meta.correlationId"}, Source: inbound.From{Value: "node-orders"},
				Version: inbound.From{Value: "2"}, Time: inbound.From{Field: "timestamp"},
			},
			msg: msg("random", `{"type":"orders.order_placed","aggregateId":42,"meta":{"id":"e-1","correlationId":"c-1"},"timestamp":"2026-01-02T03:04:05.5+01:00"}`, nil),
			want: map[string]string{
				header.SpecVersion: "1.0", header.Type: "orders.order_placed", header.ID: "e-1", header.Key: "42",
				header.CorrelationID: "c-1", header.Source: "node-orders", header.Version: "2", header.Time: "2026-01-02T02:04:05.5Z",
			},
		},
		{
			name:    "fixed type per topic, key from a header, content type fixed",
			mapping: inbound.Mapping{Type: inbound.From{Value: "orders.order_placed"}, Key: inbound.From{Header: "orderId"}, ContentType: inbound.From{Value: "application/json"}},
			msg:     msg("m-1", `{}`, map[string]string{"orderId": "o-7"}),
			want: map[string]string{
				header.SpecVersion: "1.0", header.Type: "orders.order_placed", header.ID: "m-1", header.Key: "o-7", header.ContentType: "application/json",
			},
		},
		{
			name:    "data wrapped in a field",
			mapping: inbound.Mapping{Type: inbound.From{Field: "type"}, DataField: "data", Time: inbound.From{Field: "ts", Format: inbound.TimeUnixS}},
			msg:     msg("m-2", `{"type":"orders.order_placed","ts":1767322800,"data":{"orderId":"o-1", "total": 1.50}}`, nil),
			want:    map[string]string{header.SpecVersion: "1.0", header.Type: "orders.order_placed", header.ID: "m-2", header.Time: "2026-01-02T03:00:00Z"},
			payload: `{"orderId":"o-1", "total": 1.50}`,
		},
		{
			name:    "optional attributes fall back when missing",
			mapping: inbound.Mapping{Type: inbound.From{Header: "eventType"}, ID: inbound.From{Header: "x-id", Optional: true}, CorrelationID: inbound.From{Field: "corr", Optional: true}},
			msg:     msg("m-3", `{"corr":null}`, map[string]string{"eventType": "orders.order_placed"}),
			want:    map[string]string{header.SpecVersion: "1.0", header.Type: "orders.order_placed", header.ID: "m-3"},
		},
		{
			name:    "an unlisted type is kept as written",
			mapping: articleKafka,
			msg:     msg("m-4", `{}`, map[string]string{"eventType": "OrderShipped", "correlationId": "c", "timestamp": "0"}),
			want: map[string]string{
				header.SpecVersion: "1.0", header.Type: "OrderShipped", header.ID: "m-4", header.CorrelationID: "c", header.Time: "1970-01-01T00:00:00Z",
			},
		},
		{
			name:    "a message carrying the contract is left alone",
			mapping: articleKafka,
			msg:     msg("m-5", `x`, map[string]string{header.SpecVersion: "1.0", header.Type: "orders.order_paid", header.ID: "e-5"}),
			want:    map[string]string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.mapping.Validate("m"); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			want := maps.Clone(tt.msg.Metadata)
			maps.Copy(want, tt.want)
			payload := string(tt.msg.Payload)
			if tt.payload != "" {
				payload = tt.payload
			}
			if err := tt.mapping.Apply(tt.msg); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if !maps.Equal(tt.msg.Metadata, want) {
				t.Errorf("metadata\n got %v\nwant %v", tt.msg.Metadata, want)
			}
			if string(tt.msg.Payload) != payload {
				t.Errorf("payload %s, want %s", tt.msg.Payload, payload)
			}
			// A second Apply (the runtime may call it twice) changes nothing.
			again := maps.Clone(tt.msg.Metadata)
			if err := tt.mapping.Apply(tt.msg); err != nil || !maps.Equal(tt.msg.Metadata, again) || string(tt.msg.Payload) != payload {
				t.Errorf("second Apply: %v, metadata %v, payload %s", err, tt.msg.Metadata, tt.msg.Payload)
			}
			// What Apply wrote is an envelope the runtime reads.
			env, err := event.ReadEnvelope(tt.msg)
			if err != nil {
				t.Fatalf("ReadEnvelope after Apply: %v", err)
			}
			if env.Type != want[header.Type] || env.ID != want[header.ID] {
				t.Errorf("envelope %+v", env)
			}
		})
	}
}

// A message the mapping cannot be applied to is left unchanged, and the
// error names every missing or malformed attribute and where it looked.
func TestApplyFailsWholly(t *testing.T) {
	tests := []struct {
		name    string
		mapping inbound.Mapping
		msg     *message.Message
		want    []string
	}{
		{"every problem at once", articleKafka,
			msg("m", `{}`, map[string]string{"timestamp": "yesterday"}),
			[]string{`type from header "eventType": missing`, `correlation_id from header "correlationId": missing`,
				`time from header "timestamp": "yesterday" is not a whole number of milliseconds`}},
		{"payload not JSON where a field is read", inbound.Mapping{Type: inbound.From{Field: "type"}},
			msg("m", `<order/>`, nil), []string{`type from JSON field "type": the payload is not a JSON object`}},
		{"field is an object", inbound.Mapping{Type: inbound.From{Field: "type"}},
			msg("m", `{"type":{"name":"x"}}`, nil), []string{`type from JSON field "type": is an object or array`}},
		{"path through a scalar", inbound.Mapping{Type: inbound.From{Field: "meta.type"}},
			msg("m", `{"meta":"x"}`, nil), []string{`"meta" is not a JSON object`}},
		{"bad version", inbound.Mapping{Type: inbound.From{Value: "t"}, Version: inbound.From{Header: "v"}},
			msg("m", `{}`, map[string]string{"v": "two"}), []string{`version from header "v": "two" is not a positive integer`}},
		{"bad RFC 3339 time", inbound.Mapping{Type: inbound.From{Value: "t"}, Time: inbound.From{Header: "at"}},
			msg("m", `{}`, map[string]string{"at": "02/01/2026"}), []string{`"02/01/2026" is not an RFC 3339 time`}},
		{"data field missing", inbound.Mapping{Type: inbound.From{Value: "t"}, DataField: "data"},
			msg("m", `{"other":1}`, nil), []string{`data_field "data" is missing`}},
		{"empty header is missing", inbound.Mapping{Type: inbound.From{Header: "eventType"}},
			msg("m", `{}`, map[string]string{"eventType": ""}), []string{`type from header "eventType": missing`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, payload := maps.Clone(tt.msg.Metadata), string(tt.msg.Payload)
			err := tt.mapping.Apply(tt.msg)
			if !errors.Is(err, inbound.ErrUnmapped) {
				t.Fatalf("Apply: %v, want ErrUnmapped", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
			if !maps.Equal(tt.msg.Metadata, before) || string(tt.msg.Payload) != payload {
				t.Errorf("message changed by a failed Apply: %v %s", tt.msg.Metadata, tt.msg.Payload)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	bad := inbound.Mapping{
		Type:          inbound.From{Header: "a", Field: "b", Optional: true},
		ID:            inbound.From{Value: "fixed"},
		CorrelationID: inbound.From{Field: "meta..id"},
		Time:          inbound.From{Header: "ts", Format: "iso"},
		Key:           inbound.From{Header: "k", Format: "unix_ms"},
		Version:       inbound.From{Value: "0"},
		Source:        inbound.From{Value: "s", Optional: true},
		Types:         map[string]string{"OrderPlaced": ""},
		DataField:     ".data",
	}
	err := bad.Validate("topics.orders.inbound")
	if err == nil {
		t.Fatal("Validate accepted a bad mapping")
	}
	for _, w := range []string{
		"topics.orders.inbound.type: set one of header, field or value, not 2",
		"topics.orders.inbound.type.optional: true",
		`topics.orders.inbound.id.value: "fixed": a fixed id is not allowed`,
		`topics.orders.inbound.correlation_id.field: "meta..id"`,
		`topics.orders.inbound.time.format: "iso", want rfc3339 (default), unix_ms or unix_s`,
		`topics.orders.inbound.key.format: "unix_ms": only time has a format`,
		`topics.orders.inbound.version.value: "0", want a positive integer`,
		"topics.orders.inbound.source.optional: true with a fixed value",
		`topics.orders.inbound.types: "OrderPlaced": ""`,
		`topics.orders.inbound.data_field: ".data"`,
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Validate error lacks %q:\n%v", w, err)
		}
	}
	if err := (inbound.Mapping{}).Validate("m"); err == nil || !strings.Contains(err.Error(), "m.type: required") {
		t.Errorf("empty mapping: %v, want m.type required", err)
	}
}

// FuzzApply: whatever a foreign producer sends, Apply either rewrites the
// message into an envelope the runtime reads, or leaves it unchanged with
// ErrUnmapped. It never panics.
func FuzzApply(f *testing.F) {
	f.Add(`{"type":"orders.order_placed","aggregateId":"a","data":{"x":1},"ts":"2026-01-02T03:04:05Z"}`, "OrderPlaced", "1767322800123")
	f.Add(`{"type":{"a":1},"data":null}`, "", "x")
	f.Add(`[1,2]`, "x", "-1")
	f.Add(`{"meta":{"type":"t"}}`, "t", "99999999999999999999")
	f.Add(`{"type":"t","data":{}}`, "t", "999999999999999")
	m := inbound.Mapping{
		Type:          inbound.From{Field: "type"},
		Key:           inbound.From{Field: "aggregateId", Optional: true},
		CorrelationID: inbound.From{Header: "correlationId", Optional: true},
		Time:          inbound.From{Header: "timestamp", Format: inbound.TimeUnixMS, Optional: true},
		Version:       inbound.From{Header: "v", Optional: true},
		DataField:     "data",
	}
	f.Fuzz(func(t *testing.T, payload, corr, ts string) {
		in := msg("m", payload, map[string]string{"correlationId": corr, "timestamp": ts, "v": ts})
		before := maps.Clone(in.Metadata)
		err := m.Apply(in)
		if err != nil {
			if !errors.Is(err, inbound.ErrUnmapped) || !maps.Equal(in.Metadata, before) || string(in.Payload) != payload {
				t.Fatalf("failed Apply: %v, message %v %q", err, in.Metadata, in.Payload)
			}
			return
		}
		if _, err := event.ReadEnvelope(in); err != nil {
			t.Fatalf("Apply succeeded but ReadEnvelope fails: %v (%v)", err, in.Metadata)
		}
	})
}

// The Watermill preset reads what watermill-kafka and watermill-amqp's
// default marshalers, the CQRS marshalers and the correlation middleware
// write; fields set in the mapping win.
func TestWatermillPreset(t *testing.T) {
	m := inbound.Mapping{Preset: inbound.PresetWatermill, Types: map[string]string{"interop.OrderPlaced": "orders.order_placed"}}
	if err := m.Validate("m"); err != nil {
		t.Fatal(err)
	}
	in := msg("", `{"orderId":"o-1"}`, map[string]string{
		header.WatermillUUID: "wm-1", header.WatermillName: "interop.OrderPlaced", header.WatermillCorrelationID: "c-1",
	})
	if err := m.Apply(in); err != nil {
		t.Fatal(err)
	}
	env, err := event.ReadEnvelope(in)
	if err != nil || env.ID != "wm-1" || env.Type != "orders.order_placed" || env.CorrelationID != "c-1" {
		t.Fatalf("envelope %+v, %v", env, err)
	}
	// No correlation id: a chain of its own. A fixed type wins over "name".
	m.Type = inbound.From{Value: "orders.order_paid"}
	in = msg("", `{}`, map[string]string{header.WatermillUUID: "wm-2"})
	if err := m.Apply(in); err != nil {
		t.Fatal(err)
	}
	if env, _ := event.ReadEnvelope(in); env.ID != "wm-2" || env.Type != "orders.order_paid" || env.CorrelationID != "wm-2" {
		t.Fatalf("envelope %+v", env)
	}
	// Without the UUID header it is not a Watermill message.
	err = m.Apply(msg("x", `{}`, nil))
	if err == nil || !strings.Contains(err.Error(), `id from header "_watermill_message_uuid": missing`) {
		t.Fatalf("Apply without the UUID header: %v", err)
	}
	if err := (inbound.Mapping{Preset: "sarama"}).Validate("m"); err == nil || !strings.Contains(err.Error(), `m.preset: "sarama", want "watermill"`) {
		t.Errorf("unknown preset: %v", err)
	}
}
