package service_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// A topic set to structured mode gets application/cloudevents+json
// documents with every attribute; a handler of the topic reads them as
// any event. Other topics stay in binary mode.
func TestStructuredContentMode(t *testing.T) {
	b := newBroker(t)
	svc := service.New(b, service.WithNamespace("ns."), service.WithContentMode("orders", event.ContentModeStructured))
	got := make(chan event.Envelope, 1)
	if err := service.Handle(svc, "reader", func(ctx context.Context, e orderPlaced) error {
		if e.OrderID != "o-1" {
			t.Errorf("handled %+v", e)
		}
		got <- middleware.DeliveryFrom(ctx).Envelope
		return svc.Publish(ctx, stockReserved{OrderID: e.OrderID})
	}, service.Publishes(stockReserved{})); err != nil {
		t.Fatal(err)
	}
	raw := probe(t, b, "probe", "ns.orders")
	other := probe(t, b, "probe", "ns.inventory.stock_reserved")
	start(t, svc)

	ctx := middleware.WithCorrelationID(context.Background(), "c-1")
	if err := svc.Publish(ctx, orderPlaced{OrderID: "o-1"}, service.WithID("e-1")); err != nil {
		t.Fatal(err)
	}
	m := recv(t, raw, "the structured message")
	if ct := m.Metadata[header.ContentType]; ct != "application/cloudevents+json; charset=utf-8" {
		t.Errorf("content type %q", ct)
	}
	if m.Metadata[header.Type] != "" || m.Metadata[header.Key] != "o-1" {
		t.Errorf("headers %v: want attributes in the body, only the key as a header", m.Metadata)
	}
	var doc map[string]any
	if err := json.Unmarshal(m.Payload, &doc); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"id": "e-1", "type": "orders.order_placed", "specversion": "1.0", "source": "switchyard",
		"correlationid": "c-1", "datacontenttype": "application/json"} {
		if doc[k] != want {
			t.Errorf("%s = %#v, want %#v", k, doc[k], want)
		}
	}
	for _, k := range []string{"hopcount", "eventversion"} {
		if _, ok := doc[k]; ok {
			t.Errorf("%s written: the contract leaves out hop count 0 and version 1", k)
		}
	}
	if data, _ := doc["data"].(map[string]any); data["order_id"] != "o-1" {
		t.Errorf("data = %#v", doc["data"])
	}

	env := recv(t, got, "the handled event")
	if env.ID != "e-1" || env.CorrelationID != "c-1" || env.Type != "orders.order_placed" {
		t.Errorf("handled envelope %+v", env)
	}
	follow := recv(t, other, "the binary follow-up")
	if follow.Metadata[header.Type] != "inventory.stock_reserved" || follow.Metadata[header.CorrelationID] != "c-1" || follow.Metadata[header.CausationID] != "e-1" {
		t.Errorf("follow-up %v, want binary mode in chain c-1 caused by e-1", follow.Metadata)
	}
}

// A structured message that is not a valid CloudEvent is dead-lettered as
// it arrived, with reason invalid_envelope.
func TestStructuredInvalidIsDeadLettered(t *testing.T) {
	b := newBroker(t)
	svc := service.New(b)
	if err := service.Handle(svc, "reader", func(context.Context, orderPlaced) error { return nil }); err != nil {
		t.Fatal(err)
	}
	dl := probe(t, b, "probe", service.DeadLetterTopicFor("reader"))
	start(t, svc)
	m := message.NewMessage("m-1", []byte(`{"specversion":"1.0","type":"orders.order_placed","data":{}}`))
	m.Metadata.Set(header.ContentType, header.ContentTypeCloudEvents)
	if err := b.Publisher().Publish("orders", m); err != nil {
		t.Fatal(err)
	}
	d := recv(t, dl, "the dead letter")
	if d.Metadata[header.DeadLetterReason] != "invalid_envelope" || string(d.Payload) != string(m.Payload) {
		t.Errorf("dead letter %v %s", d.Metadata, d.Payload)
	}
	if e := d.Metadata[header.DeadLetterError]; !strings.Contains(e, "structured CloudEvent") || !strings.Contains(e, `"id" is missing`) || !strings.Contains(e, `"source" is missing`) {
		t.Errorf("dead letter error %q does not say what the structured event lacks", e)
	}
}

// A topic with Watermill headers carries the Watermill UUID and
// correlation headers next to ours; other topics do not.
func TestWatermillHeaders(t *testing.T) {
	b := newBroker(t)
	svc := service.New(b, service.WithNamespace("ns."), service.WithWatermillHeaders("orders"))
	raw := probe(t, b, "probe", "ns.orders")
	other := probe(t, b, "probe", "ns.inventory.stock_reserved")
	ctx := middleware.WithCorrelationID(context.Background(), "c-1")
	if err := svc.Publish(ctx, orderPlaced{OrderID: "o-1"}, service.WithID("e-1")); err != nil {
		t.Fatal(err)
	}
	if err := svc.Publish(ctx, stockReserved{OrderID: "o-1"}); err != nil {
		t.Fatal(err)
	}
	m := recv(t, raw, "the order")
	if m.Metadata[header.WatermillUUID] != "e-1" || m.Metadata[header.WatermillCorrelationID] != "c-1" ||
		m.Metadata[header.ID] != "e-1" || m.Metadata[header.Type] != "orders.order_placed" {
		t.Errorf("headers %v, want Watermill's UUID and correlation headers next to ours", m.Metadata)
	}
	o := recv(t, other, "the other event")
	if _, ok := o.Metadata[header.WatermillUUID]; ok {
		t.Errorf("Watermill headers on a topic without them: %v", o.Metadata)
	}
}
