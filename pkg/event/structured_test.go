package event_test

import (
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/header"
)

func structured(body string, md map[string]string) *message.Message {
	m := message.NewMessage("uuid-1", []byte(body))
	m.Metadata.Set(header.ContentType, "application/cloudevents+json; charset=UTF-8")
	maps.Copy(m.Metadata, md)
	return m
}

func TestIsStructured(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/cloudevents+json":                true,
		"Application/CloudEvents+JSON; charset=utf-8": true,
		"application/cloudevents-batch+json":          true,
		"application/json":                            false,
		"":                                            false,
		"application/cloud":                           false,
	} {
		if got := event.IsStructured(message.Metadata{header.ContentType: ct}); got != want {
			t.Errorf("IsStructured(%q) = %v, want %v", ct, got, want)
		}
	}
}

func TestFromStructured(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    map[string]string
		payload string
	}{
		{
			name: "what the CloudEvents SDK sends",
			body: `{"id":"e-1","time":"2026-01-02T03:04:05.678Z","type":"orders.order_placed","source":"/node","specversion":"1.0",
				"datacontenttype":"application/json","partitionkey":"o-1","correlationid":"c-1","data":{"orderId":"o-1", "total": 1.50}}`,
			want: map[string]string{
				header.ID: "e-1", header.Type: "orders.order_placed", header.Source: "/node", header.SpecVersion: "1.0",
				header.Time: "2026-01-02T03:04:05.678Z", header.ContentType: "application/json", header.Key: "o-1", header.CorrelationID: "c-1",
			},
			payload: `{"orderId":"o-1", "total": 1.50}`,
		},
		{
			name:    "integer extensions as numbers, no datacontenttype means JSON",
			body:    `{"specversion":"1.0","id":"e-2","source":"s","type":"t","eventversion":2,"hopcount":0,"ok":true,"data":[1,2]}`,
			want:    map[string]string{header.ID: "e-2", header.Type: "t", header.Source: "s", header.SpecVersion: "1.0", header.Version: "2", header.HopCount: "0", "ce_ok": "true", header.ContentType: "application/json"},
			payload: `[1,2]`,
		},
		{
			name:    "text data is the string",
			body:    `{"specversion":"1.0","id":"e-3","source":"s","type":"t","datacontenttype":"text/plain","data":"hello \"world\""}`,
			want:    map[string]string{header.ID: "e-3", header.Type: "t", header.Source: "s", header.SpecVersion: "1.0", header.ContentType: "text/plain"},
			payload: `hello "world"`,
		},
		{
			name:    "binary data in base64",
			body:    `{"specversion":"1.0","id":"e-4","source":"s","type":"t","datacontenttype":"application/octet-stream","data_base64":"AAEC/w=="}`,
			want:    map[string]string{header.ID: "e-4", header.Type: "t", header.Source: "s", header.SpecVersion: "1.0", header.ContentType: "application/octet-stream"},
			payload: "\x00\x01\x02\xff",
		},
		{
			name:    "no data, null attributes absent",
			body:    `{"specversion":"1.0","id":"e-5","source":"s","type":"t","subject":null,"data":null}`,
			want:    map[string]string{header.ID: "e-5", header.Type: "t", header.Source: "s", header.SpecVersion: "1.0"},
			payload: ``,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := structured(tt.body, map[string]string{"x-other": "kept"})
			if err := event.FromStructured(m); err != nil {
				t.Fatalf("FromStructured: %v", err)
			}
			want := maps.Clone(tt.want)
			want["x-other"] = "kept"
			if !maps.Equal(m.Metadata, want) {
				t.Errorf("metadata\n got %v\nwant %v", m.Metadata, want)
			}
			if string(m.Payload) != tt.payload {
				t.Errorf("payload %q, want %q", m.Payload, tt.payload)
			}
			if _, err := event.ReadEnvelope(m); err != nil {
				t.Errorf("ReadEnvelope: %v", err)
			}
			if event.IsStructured(m.Metadata) {
				t.Errorf("still structured after FromStructured: %v", m.Metadata)
			}
		})
	}
}

func TestFromStructuredRejects(t *testing.T) {
	tests := []struct {
		name, body, contentType string
		reason                  failure.Reason
		want                    []string
	}{
		{"not JSON", `<event/>`, "", failure.ReasonInvalidEnvelope, []string{"not a JSON object"}},
		{"every missing attribute at once", `{"specversion":"0.3","data":{}}`, "", failure.ReasonInvalidEnvelope,
			[]string{`specversion "0.3", want "1.0"`, `"id" is missing`, `"source" is missing`, `"type" is missing`}},
		{"data twice", `{"specversion":"1.0","id":"i","source":"s","type":"t","data":1,"data_base64":"AA=="}`, "", failure.ReasonInvalidEnvelope,
			[]string{"both data and data_base64"}},
		{"bad base64", `{"specversion":"1.0","id":"i","source":"s","type":"t","data_base64":"!!"}`, "", failure.ReasonInvalidEnvelope,
			[]string{"data_base64"}},
		{"object attribute", `{"specversion":"1.0","id":"i","source":"s","type":{"a":1}}`, "", failure.ReasonInvalidEnvelope,
			[]string{`attribute "type": is an object or array`}},
		{"batch", `[{"specversion":"1.0","id":"i","source":"s","type":"t"}]`, "application/cloudevents-batch+json", failure.ReasonUnsupportedContentType,
			[]string{"batched content mode"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := structured(tt.body, nil)
			if tt.contentType != "" {
				m.Metadata.Set(header.ContentType, tt.contentType)
			}
			before := maps.Clone(m.Metadata)
			err := event.FromStructured(m)
			assertReason(t, err, tt.reason)
			if tt.reason == failure.ReasonInvalidEnvelope && !errors.Is(err, event.ErrInvalidEnvelope) {
				t.Errorf("%v does not wrap ErrInvalidEnvelope", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if !maps.Equal(m.Metadata, before) || string(m.Payload) != tt.body {
				t.Errorf("message changed: %v %s", m.Metadata, m.Payload)
			}
		})
	}
}

// What Switchyard publishes in binary mode survives structured mode and
// back unchanged; the structured body is what the CloudEvents JSON format
// says.
func TestToStructuredRoundTrip(t *testing.T) {
	m := message.NewMessage("e-1", []byte(`{"order_id":"o-1","total":2}`))
	env := event.Envelope{ID: "e-1", Type: "orders.order_placed", Version: 2, Source: "orders-service", ContentType: "application/json",
		Key: "o-1", CorrelationID: "c-1", CausationID: "e-0", HopCount: 3}
	env.Write(m.Metadata)
	m.Metadata[header.Time] = "2026-01-02T03:04:05.123456789Z"
	m.Metadata[header.Attempt] = "2"
	original := maps.Clone(m.Metadata)

	s, err := event.ToStructured(m)
	if err != nil {
		t.Fatal(err)
	}
	wantBody := `{"specversion":"1.0","id":"e-1","source":"orders-service","type":"orders.order_placed",` +
		`"causationid":"e-0","correlationid":"c-1","datacontenttype":"application/json","eventversion":2,"hopcount":3,` +
		`"partitionkey":"o-1","time":"2026-01-02T03:04:05.123456789Z","data":{"order_id":"o-1","total":2}}`
	if string(s.Payload) != wantBody {
		t.Errorf("structured body\n got %s\nwant %s", s.Payload, wantBody)
	}
	wantMD := message.Metadata{header.ContentType: "application/cloudevents+json; charset=utf-8", header.Key: "o-1", header.Attempt: "2"}
	if !maps.Equal(s.Metadata, wantMD) || s.UUID != "e-1" {
		t.Errorf("structured headers %v (uuid %s), want %v", s.Metadata, s.UUID, wantMD)
	}
	if !maps.Equal(m.Metadata, original) {
		t.Errorf("ToStructured changed its input: %v", m.Metadata)
	}
	if err := event.FromStructured(s); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(s.Metadata, original) || string(s.Payload) != string(m.Payload) {
		t.Errorf("round trip\n got %v %s\nwant %v %s", s.Metadata, s.Payload, original, m.Payload)
	}

	bin := message.NewMessage("e-2", []byte{0, 1, 2})
	(&event.Envelope{ID: "e-2", Type: "t", Source: "s", ContentType: "application/octet-stream"}).Write(bin.Metadata)
	s, err = event.ToStructured(bin)
	if err != nil || !strings.Contains(string(s.Payload), `"data_base64":"AAEC"`) {
		t.Fatalf("binary payload: %v %s", err, s.Payload)
	}
	if _, err := event.ToStructured(message.NewMessage("x", nil)); err == nil || !strings.Contains(err.Error(), header.ID) {
		t.Errorf("ToStructured without attributes: %v", err)
	}
}

// FuzzFromStructured: any body either becomes a message the runtime reads,
// or is rejected with the message unchanged. It never panics.
func FuzzFromStructured(f *testing.F) {
	f.Add(`{"specversion":"1.0","id":"e","source":"s","type":"t","data":{"a":1}}`)
	f.Add(`{"specversion":"1.0","id":"e","source":"s","type":"t","datacontenttype":"text/plain","data":"x"}`)
	f.Add(`{"specversion":"1.0","id":"e","source":"s","type":"t","data_base64":"AA==","hopcount":"x"}`)
	f.Add(`{"specversion":1.0}`)
	f.Add(`null`)
	f.Fuzz(func(t *testing.T, body string) {
		m := structured(body, nil)
		before := maps.Clone(m.Metadata)
		if err := event.FromStructured(m); err != nil {
			if !failure.IsPermanent(err) || !maps.Equal(m.Metadata, before) || string(m.Payload) != body {
				t.Fatalf("rejected with %v, message %v %q", err, m.Metadata, m.Payload)
			}
			return
		}
		if m.Metadata[header.Type] == "" || m.Metadata[header.ID] == "" {
			t.Fatalf("accepted without type or id: %v", m.Metadata)
		}
	})
}
