package amqp

import (
	"maps"
	"math"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-go/switchyard/pkg/header"
)

func TestHeaderString(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600))
	for _, tc := range []struct {
		in   any
		want string
	}{
		{nil, ""}, {"s", "s"}, {[]byte("b"), "b"}, {true, "true"},
		{int8(-1), "-1"}, {int16(2), "2"}, {int32(3), "3"}, {int64(4), "4"}, {uint8(5), "5"},
		{float32(1.25), "1.25"}, {2.5, "2.5"}, {math.NaN(), "NaN"},
		{ts, "2026-01-02T02:04:05.000000006Z"},
		{amqp091.Decimal{Scale: 3, Value: -1500}, "-1.500"},
		{amqp091.Table{"b": int32(1), "a": "x"}, `{"a":"x","b":1}`},
		{[]any{int64(1), "two", amqp091.Table{"t": ts}}, `[1,"two",{"t":"2026-01-02T02:04:05.000000006Z"}]`},
		{[]any{math.Inf(1)}, `["+Inf"]`},
	} {
		if got := headerString(tc.in); got != tc.want {
			t.Errorf("headerString(%#v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRoundTripMetadata(t *testing.T) {
	msg := message.NewMessage("id-1", []byte("p"))
	msg.Metadata.Set(header.ContentType, "application/json")
	msg.Metadata.Set(header.Key, "order-7")
	p := toPublishing(msg)
	if p.MessageId != "id-1" || p.ContentType != "application/json" || p.DeliveryMode != amqp091.Persistent {
		t.Errorf("publishing properties: %+v", p)
	}
	got := toMessage(&amqp091.Delivery{Headers: p.Headers, MessageId: p.MessageId, ContentType: p.ContentType, Body: p.Body})
	if got.UUID != "id-1" || !maps.Equal(got.Metadata, msg.Metadata) || string(got.Payload) != "p" {
		t.Errorf("round trip: %s %v %q", got.UUID, got.Metadata, got.Payload)
	}
}

func TestBrokerOwnedHeadersAreNotPublished(t *testing.T) {
	msg := message.NewMessage("id", nil)
	for _, k := range []string{"x-death", "x-first-death-queue", "x-last-death-reason", "x-delivery-count"} {
		msg.Metadata.Set(k, "v")
	}
	msg.Metadata.Set("x-custom", "kept")
	p := toPublishing(msg)
	if len(p.Headers) != 1 || p.Headers["x-custom"] != "kept" {
		t.Errorf("headers %v, want only x-custom", p.Headers)
	}
}

func TestToMessageCanonicalNamesAndIDs(t *testing.T) {
	m := toMessage(&amqp091.Delivery{Headers: amqp091.Table{"cloudEvents:id": "ce-9", "Content-Type": "text/plain"}})
	if m.UUID != "ce-9" || m.Metadata.Get(header.ID) != "ce-9" || m.Metadata.Get(header.ContentType) != "text/plain" {
		t.Errorf("got %s %v", m.UUID, m.Metadata)
	}
	if m := toMessage(&amqp091.Delivery{}); m.UUID == "" {
		t.Error("no UUID generated for a message without MessageId or ce_id")
	}
}

func FuzzHeaderString(f *testing.F) {
	f.Add("x", int64(1), 1.5, true)
	f.Fuzz(func(t *testing.T, s string, i int64, fl float64, b bool) {
		v := amqp091.Table{"s": s, "i": i, "f": fl, "b": b, "a": []any{s, i, fl, amqp091.Table{"n": b}}}
		if headerString(v) != headerString(v) {
			t.Fatal("not stable")
		}
		_ = toMessage(&amqp091.Delivery{Headers: v})
	})
}

// With Config.CloudEventsPrefix "cloudEvents_" the attribute headers are
// written with the AMQP binding's prefix, other headers unchanged, and read
// back under the header contract's names.
func TestCloudEventsPrefixOnWrite(t *testing.T) {
	msg := message.NewMessage("id-1", []byte("p"))
	msg.Metadata.Set(header.ID, "id-1")
	msg.Metadata.Set(header.Type, "orders.order_placed")
	msg.Metadata.Set(header.ContentType, "application/json")
	msg.Metadata.Set(header.Attempt, "2")
	for _, prefix := range []string{PrefixCloudEvents, PrefixCloudEventsAMQP1} {
		pc := &pubChan{cePrefix: prefix}
		for round := range 2 { // the second round reads the cached names
			p := pc.publishing(msg)
			want := amqp091.Table{
				prefix + "id":      "id-1",
				prefix + "type":    "orders.order_placed",
				header.ContentType: "application/json",
				header.Attempt:     "2",
			}
			if !maps.Equal(p.Headers, want) {
				t.Errorf("prefix %q round %d: headers %v, want %v", prefix, round, p.Headers, want)
			}
			got := toMessage(&amqp091.Delivery{Headers: p.Headers, MessageId: p.MessageId, ContentType: p.ContentType, Body: p.Body})
			if !maps.Equal(got.Metadata, msg.Metadata) {
				t.Errorf("prefix %q: read back %v, want %v", prefix, got.Metadata, msg.Metadata)
			}
		}
	}
	pc := &pubChan{}
	if p := pc.publishing(msg); p.Headers[header.Type] != "orders.order_placed" {
		t.Errorf("default prefix: headers %v, want %s", p.Headers, header.Type)
	}
}
