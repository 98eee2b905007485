package event_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/header"
)

// orderPlaced is at version 3: v1 had "id", v2 renamed it "order_id", v3
// added "currency" (default "EUR").
type orderPlaced struct {
	OrderID  string `json:"order_id"`
	Currency string `json:"currency"`
}

func (orderPlaced) EventType() string  { return "orders.order_placed" }
func (orderPlaced) EventVersion() int  { return 3 }
func (e orderPlaced) EventKey() string { return e.OrderID }
func (orderPlaced) EventTopic() string { return "orders" }

type plain struct {
	N int `json:"n"`
}

func (plain) EventType() string { return "test.plain" }
func (plain) EventVersion() int { return 1 }

func assertReason(t *testing.T, err error, want failure.Reason) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want a permanent error with reason %s", want)
	}
	if !failure.IsPermanent(err) {
		t.Errorf("err %v is not permanent", err)
	}
	if got := failure.ReasonOf(err); got != want {
		t.Errorf("reason = %s, want %s (err: %v)", got, want, err)
	}
}

func TestTopicAndKey(t *testing.T) {
	if got := event.TopicOf(orderPlaced{}); got != "orders" {
		t.Errorf("TopicOf(topical) = %q, want orders", got)
	}
	if got := event.TopicOf(plain{}); got != "test.plain" {
		t.Errorf("TopicOf(plain) = %q, want its type", got)
	}
	if got := event.KeyOf(orderPlaced{OrderID: "o-1"}); got != "o-1" {
		t.Errorf("KeyOf = %q, want o-1", got)
	}
	if got := event.KeyOf(plain{}); got != "" {
		t.Errorf("KeyOf(unkeyed) = %q, want empty", got)
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	in := event.Envelope{
		ID:            "id-1",
		Type:          "orders.order_placed",
		Version:       3,
		Source:        "orders-service",
		Time:          time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC),
		ContentType:   header.ContentTypeJSON,
		Key:           "o-1",
		CorrelationID: "corr-1",
		CausationID:   "cause-1",
		HopCount:      4,
		TraceParent:   "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		TraceState:    "k=v",
	}
	msg := message.NewMessage("uuid-ignored", nil)
	in.Write(msg.Metadata)
	if got := msg.Metadata.Get(header.SpecVersion); got != header.SpecVersionValue {
		t.Errorf("specversion = %q, want %q", got, header.SpecVersionValue)
	}
	out, err := event.ReadEnvelope(msg)
	if err != nil {
		t.Fatalf("ReadEnvelope: %v", err)
	}
	if !out.Time.Equal(in.Time) {
		t.Errorf("time = %v, want %v", out.Time, in.Time)
	}
	out.Time = in.Time
	if out != in {
		t.Errorf("round trip:\n got %+v\nwant %+v", out, in)
	}
}

func TestEnvelopeWriteOmitsEmpty(t *testing.T) {
	md := message.Metadata{}
	(&event.Envelope{Type: "t"}).Write(md)
	for _, k := range []string{header.ID, header.Version, header.Source, header.Time, header.Key, header.CorrelationID, header.CausationID, header.TraceParent} {
		if _, ok := md[k]; ok {
			t.Errorf("empty field written as %s=%q", k, md[k])
		}
	}
	if _, ok := md[header.HopCount]; ok {
		t.Errorf("hop count 0 written as %q: absent means 0", md[header.HopCount])
	}
	// Version 1 and hop count 0 are left out; reading restores them.
	md = message.Metadata{}
	(&event.Envelope{ID: "e-1", Type: "t", Version: 1, CorrelationID: "e-1"}).Write(md)
	if _, ok := md[header.Version]; ok {
		t.Errorf("version 1 written: %v", md)
	}
	if md[header.CorrelationID] != "e-1" {
		t.Errorf("correlation id missing: %v", md)
	}
	msg := message.NewMessage("e-1", nil)
	msg.Metadata = md
	env, err := event.ReadEnvelope(msg)
	if err != nil || env.Version != 1 || env.HopCount != 0 {
		t.Errorf("read back: %+v, %v; want version 1, hop 0", env, err)
	}
	md = message.Metadata{}
	(&event.Envelope{ID: "e-2", Type: "t", Version: 2, CorrelationID: "e-1", HopCount: 3}).Write(md)
	if md[header.Version] != "2" || md[header.HopCount] != "3" {
		t.Errorf("version 2 or hop count 3 lost: %v", md)
	}
}

func TestReadEnvelopeCloudEventsOnly(t *testing.T) {
	msg := message.NewMessage("watermill-uuid", []byte(`{"order_id":"o-1"}`))
	msg.Metadata = message.Metadata{
		"ce_id":          "ce-42",
		"ce_type":        "orders.order_placed",
		"ce_source":      "kafkajs-producer",
		"ce_specversion": "1.0",
		"content-type":   "application/json",
	}
	env, err := event.ReadEnvelope(msg)
	if err != nil {
		t.Fatalf("ReadEnvelope: %v", err)
	}
	if env.Version != 1 {
		t.Errorf("version = %d, want 1", env.Version)
	}
	if env.ID != "ce-42" || env.CorrelationID != "ce-42" {
		t.Errorf("id = %q, correlation = %q, want both ce-42", env.ID, env.CorrelationID)
	}
	if env.HopCount != 0 || env.CausationID != "" {
		t.Errorf("hop = %d, causation = %q, want 0 and empty", env.HopCount, env.CausationID)
	}
	if env.Source != "kafkajs-producer" || env.ContentType != "application/json" || env.Type != "orders.order_placed" {
		t.Errorf("envelope = %+v", env)
	}
}

func TestReadEnvelopeFallsBackToMessageUUID(t *testing.T) {
	msg := message.NewMessage("watermill-uuid", nil)
	msg.Metadata.Set(header.Type, "x")
	env, err := event.ReadEnvelope(msg)
	if err != nil {
		t.Fatal(err)
	}
	if env.ID != "watermill-uuid" || env.CorrelationID != "watermill-uuid" {
		t.Errorf("id = %q correlation = %q, want the message UUID", env.ID, env.CorrelationID)
	}
}

func TestReadEnvelopeAMQPNames(t *testing.T) {
	raw := map[string]string{ // as amqplib with the CloudEvents AMQP binding writes them
		"cloudEvents_id":            "a-1",
		"cloudEvents_type":          "orders.order_placed",
		"cloudEvents:source":        "amqplib",
		"cloudEvents_specversion":   "1.0",
		"cloudEvents_eventversion":  "2",
		"cloudEvents_correlationid": "corr-9",
		"ce-hopcount":               "3",
		"Content-Type":              "application/json",
	}
	msg := message.NewMessage("u", nil)
	for k, v := range raw {
		msg.Metadata.Set(header.Canonical(k), v)
	}
	env, err := event.ReadEnvelope(msg)
	if err != nil {
		t.Fatalf("ReadEnvelope: %v", err)
	}
	want := event.Envelope{ID: "a-1", Type: "orders.order_placed", Source: "amqplib", Version: 2,
		CorrelationID: "corr-9", HopCount: 3, ContentType: "application/json"}
	if env != want {
		t.Errorf("got %+v\nwant %+v", env, want)
	}
}

func TestReadEnvelopeInvalid(t *testing.T) {
	cases := []struct {
		name string
		md   message.Metadata
		want string // a substring every problem must be reported with
	}{
		{"missing type", message.Metadata{}, header.Type},
		{"version not a number", message.Metadata{header.Type: "t", header.Version: "two"}, header.Version},
		{"version zero", message.Metadata{header.Type: "t", header.Version: "0"}, header.Version},
		{"negative hop count", message.Metadata{header.Type: "t", header.HopCount: "-1"}, header.HopCount},
		{"bad hop count", message.Metadata{header.Type: "t", header.HopCount: "x"}, header.HopCount},
		{"bad time", message.Metadata{header.Type: "t", header.Time: "yesterday"}, header.Time},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			msg := message.NewMessage("u", nil)
			msg.Metadata = tc.md
			_, err := event.ReadEnvelope(msg)
			assertReason(t, err, failure.ReasonInvalidEnvelope)
			if !errors.Is(err, event.ErrInvalidEnvelope) {
				t.Errorf("err does not wrap ErrInvalidEnvelope: %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %q does not name %s", err, tc.want)
			}
		})
	}
	t.Run("every problem at once", func(t *testing.T) {
		msg := message.NewMessage("u", nil)
		msg.Metadata = message.Metadata{header.Version: "x", header.HopCount: "y", header.Time: "z"}
		_, err := event.ReadEnvelope(msg)
		for _, k := range []string{header.Type, header.Version, header.HopCount, header.Time} {
			if err == nil || !strings.Contains(err.Error(), k) {
				t.Errorf("err %v does not name %s", err, k)
			}
		}
	})
}

func TestAccepts(t *testing.T) {
	for ct, want := range map[string]bool{
		"":                                true,
		"application/json":                true,
		"Application/JSON; charset=utf-8": true,
		"application/cloudevents+json":    true,
		"text/json":                       true,
		"application/avro":                false,
		"text/plain":                      false,
		"application/jsonx":               false,
	} {
		if got := event.Accepts(event.JSON{}, ct); got != want {
			t.Errorf("Accepts(JSON, %q) = %v, want %v", ct, got, want)
		}
	}
}

// newRegistry registers orderPlaced v3 with upcasters v1→v2 (rename id to
// order_id) and v2→v3 (add currency).
func newRegistry(t *testing.T) *event.Registry {
	t.Helper()
	r := event.NewRegistry()
	if err := r.Register(orderPlaced{}); err != nil {
		t.Fatal(err)
	}
	v1to2 := func(p []byte) ([]byte, error) {
		var m map[string]any
		if err := json.Unmarshal(p, &m); err != nil {
			return nil, err
		}
		if m == nil {
			return nil, errors.New("payload is not an object")
		}
		m["order_id"] = m["id"]
		delete(m, "id")
		return json.Marshal(m)
	}
	v2to3 := func(p []byte) ([]byte, error) {
		var m map[string]any
		if err := json.Unmarshal(p, &m); err != nil {
			return nil, err
		}
		if m == nil {
			return nil, errors.New("payload is not an object")
		}
		if _, ok := m["currency"]; !ok {
			m["currency"] = "EUR"
		}
		return json.Marshal(m)
	}
	if err := r.Upcast("orders.order_placed", 1, v1to2); err != nil {
		t.Fatal(err)
	}
	if err := r.Upcast("orders.order_placed", 2, v2to3); err != nil {
		t.Fatal(err)
	}
	return r
}

func envFor(version int, contentType string) *event.Envelope {
	return &event.Envelope{ID: "i", Type: "orders.order_placed", Version: version, ContentType: contentType}
}

func TestDecodeUpcastChain(t *testing.T) {
	r := newRegistry(t)
	cases := []struct {
		version int
		payload string
	}{
		{1, `{"id":"o-1"}`},
		{2, `{"order_id":"o-1"}`},
		{3, `{"order_id":"o-1","currency":"EUR"}`},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("v%d", tc.version), func(t *testing.T) {
			got, err := event.Decode[orderPlaced](r, event.JSON{}, envFor(tc.version, "application/json"), []byte(tc.payload))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if want := (orderPlaced{OrderID: "o-1", Currency: "EUR"}); got != want {
				t.Errorf("got %+v, want %+v", got, want)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	r := newRegistry(t)
	failing := event.NewRegistry()
	if err := failing.Register(orderPlaced{}); err != nil {
		t.Fatal(err)
	}
	_ = failing.Upcast("orders.order_placed", 1, func([]byte) ([]byte, error) { return nil, errors.New("boom") })
	_ = failing.Upcast("orders.order_placed", 2, func(p []byte) ([]byte, error) { return p, nil })
	gap := event.NewRegistry()
	_ = gap.Register(orderPlaced{})
	_ = gap.Upcast("orders.order_placed", 2, func(p []byte) ([]byte, error) { return p, nil })

	cases := []struct {
		name    string
		r       *event.Registry
		env     *event.Envelope
		payload string
		want    failure.Reason
	}{
		{"newer version", r, envFor(4, ""), `{}`, failure.ReasonUnsupportedVersion},
		{"missing upcaster", gap, envFor(1, ""), `{}`, failure.ReasonUnsupportedVersion},
		{"unknown type at old version", event.NewRegistry(), envFor(1, ""), `{}`, failure.ReasonUnknownType},
		{"wrong content type", r, envFor(3, "application/avro"), `{}`, failure.ReasonUnsupportedContentType},
		{"invalid json", r, envFor(3, "application/json"), `{"order_id":`, failure.ReasonDecode},
		{"wrong json type", r, envFor(3, ""), `{"order_id":42}`, failure.ReasonDecode},
		{"upcaster fails", failing, envFor(1, ""), `{}`, failure.ReasonDecode},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := event.Decode[orderPlaced](tc.r, event.JSON{}, tc.env, []byte(tc.payload))
			assertReason(t, err, tc.want)
		})
	}
}

func TestRegistry(t *testing.T) {
	r := event.NewRegistry()
	if err := r.Register(orderPlaced{}); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(orderPlaced{}); err != nil {
		t.Errorf("registering the same type twice: %v, want nil", err)
	}
	if err := r.Register(otherVersion{}); err == nil {
		t.Error("registering orders.order_placed with a second version: nil error")
	}
	if err := r.Register(badEvent{name: ""}); err == nil {
		t.Error("empty type name: nil error")
	}
	if err := r.Register(badEvent{name: "x", version: 0}); err == nil {
		t.Error("version 0: nil error")
	}
	if !r.Known("orders.order_placed") || r.Known("x") {
		t.Error("Known is wrong")
	}
	if got := r.Types(); len(got) != 1 || got[0] != "orders.order_placed" {
		t.Errorf("Types = %v", got)
	}
	noop := func(p []byte) ([]byte, error) { return p, nil }
	if err := r.Upcast("nope", 1, noop); err == nil {
		t.Error("upcaster for an unregistered type: nil error")
	}
	for _, from := range []int{0, 3, 4} {
		if err := r.Upcast("orders.order_placed", from, noop); err == nil {
			t.Errorf("upcaster from version %d of a v3 event: nil error", from)
		}
	}
}

type otherVersion struct{}

func (otherVersion) EventType() string { return "orders.order_placed" }
func (otherVersion) EventVersion() int { return 1 }

type badEvent struct {
	name    string
	version int
}

func (b badEvent) EventType() string { return b.name }
func (b badEvent) EventVersion() int { return b.version }

func FuzzReadEnvelope(f *testing.F) {
	f.Add("id", "orders.order_placed", "1", "0", "2026-01-02T03:04:05Z", "application/json", "u", "x-custom", "v")
	f.Add("", "", "", "", "", "", "", "cloudEvents_type", "t")
	f.Add("x", "t", "-1", "99999999999999999999", "not a time", "text/plain", "", "ce-eventversion", "0")
	f.Add("x", "t", "0x10", "+3", "2026-13-40T99:99:99Z", "", "u", "cloudEvents:hopcount", "-7")
	f.Add("", "", "", "", "", "", "", "CONTENT-TYPE", "application/avro")
	f.Fuzz(func(t *testing.T, id, typ, version, hops, tm, ct, uuid, extraKey, extraValue string) {
		msg := message.NewMessage(uuid, nil)
		msg.Metadata.Set(header.Canonical(extraKey), extraValue) // any header, as a broker hands it over
		for k, v := range map[string]string{header.ID: id, header.Type: typ, header.Version: version,
			header.HopCount: hops, header.Time: tm, header.ContentType: ct} {
			if v != "" {
				msg.Metadata.Set(k, v)
			}
		}
		env, err := event.ReadEnvelope(msg)
		if err != nil {
			if !failure.IsPermanent(err) || failure.ReasonOf(err) != failure.ReasonInvalidEnvelope {
				t.Fatalf("error %v is not permanent with reason invalid_envelope", err)
			}
			if !errors.Is(err, event.ErrInvalidEnvelope) {
				t.Fatalf("error %v does not wrap ErrInvalidEnvelope", err)
			}
			return
		}
		if env.Type == "" || env.Version < 1 || env.HopCount < 0 {
			t.Fatalf("accepted an invalid envelope: %+v", env)
		}
		if env.ID == "" && uuid != "" {
			t.Fatalf("id is empty though the message has UUID %q", uuid)
		}
		// What was read can be written and read back the same.
		again := message.NewMessage(uuid, nil)
		env.Write(again.Metadata)
		env2, err := event.ReadEnvelope(again)
		if err != nil {
			t.Fatalf("re-reading a written envelope: %v", err)
		}
		if !env2.Time.Equal(env.Time) {
			t.Fatalf("time changed in round trip: %v != %v", env2.Time, env.Time)
		}
		env2.Time = env.Time
		if env2 != env {
			t.Fatalf("round trip changed the envelope:\n%+v\n%+v", env, env2)
		}
	})
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"id":"o-1"}`), 1, "application/json")
	f.Add([]byte(`{"order_id":"o-1"}`), 3, "")
	f.Add([]byte(`null`), 2, "application/cloudevents+json; charset=utf-8")
	f.Add([]byte(`{`), 0, "text/plain")
	f.Add([]byte{0xff, 0xfe}, -5, "application/json")
	f.Add([]byte(`[]`), 1<<40, "application/json")
	f.Fuzz(func(t *testing.T, payload []byte, version int, ct string) {
		r := newRegistry(t)
		env := envFor(version, ct)
		_, err := event.Decode[orderPlaced](r, event.JSON{}, env, payload)
		if err != nil && !failure.IsPermanent(err) {
			t.Fatalf("Decode error is not permanent: %v", err)
		}
		if err != nil && failure.ReasonOf(err) == failure.ReasonRetriesExhausted {
			t.Fatalf("Decode error has no reason: %v", err)
		}
	})
}

func TestRegistryEvents(t *testing.T) {
	r := event.NewRegistry()
	if err := r.RegisterAll(plain{}, orderPlaced{OrderID: "first"}, orderPlaced{OrderID: "second"}); err != nil {
		t.Fatal(err)
	}
	got := r.Events()
	if len(got) != 2 || got[0].EventType() != "orders.order_placed" || got[1].EventType() != "test.plain" {
		t.Fatalf("Events() = %#v, want orders.order_placed then test.plain", got)
	}
	if o, ok := got[0].(orderPlaced); !ok || o.OrderID != "first" {
		t.Fatalf("Events()[0] = %#v, want the first value registered", got[0])
	}
}
