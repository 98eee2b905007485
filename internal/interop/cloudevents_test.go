package interop_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/adapters/amqp"
	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/internal/interoptest"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// sdkEvents are the events the Node.js side sends with the CloudEvents
// SDK: an OrderPlaced and an OrderPaid of order-1, in one chain.
func sdkEvents(ns string) []map[string]any {
	return []map[string]any{
		{"id": ns + "ce-1", "type": "orders.order_placed", "aggregateId": "order-1", "correlationId": "corr-C", "time": "2026-03-04T05:06:07.089Z",
			"body": map[string]any{"orderId": "order-1", "userId": "u-1", "total": 3.5}},
		{"id": ns + "ce-2", "type": "orders.order_paid", "aggregateId": "order-1", "correlationId": "corr-C", "time": "2026-03-04T05:06:08Z",
			"body": map[string]any{"orderId": "order-1"}},
	}
}

// checkSDKEvents compares what the typed handlers got with sdkEvents.
func checkSDKEvents(t *testing.T, h map[string]interoptest.Handled, ns, source string) {
	t.Helper()
	placed, paid := h["orders.order_placed"], h["orders.order_paid"]
	if e, ok := placed.Event.(interoptest.OrderPlaced); !ok || e != (interoptest.OrderPlaced{OrderID: "order-1", UserID: "u-1", Total: 3.5}) {
		t.Errorf("OrderPlaced handler got %#v", placed.Event)
	}
	if e, ok := paid.Event.(interoptest.OrderPaid); !ok || e.OrderID != "order-1" {
		t.Errorf("OrderPaid handler got %#v", paid.Event)
	}
	for id, x := range map[string]interoptest.Handled{ns + "ce-1": placed, ns + "ce-2": paid} {
		if x.Envelope.ID != id || x.Envelope.Source != source || x.Envelope.CorrelationID != "corr-C" || x.Envelope.Key != "order-1" ||
			x.Envelope.Version != 1 || x.Envelope.Time.IsZero() {
			t.Errorf("%s: envelope %+v, want id %s, source %s, correlation corr-C, key order-1, a time", x.Envelope.Type, x.Envelope, id, source)
		}
	}
	if want, _ := time.Parse(time.RFC3339Nano, "2026-03-04T05:06:07.089Z"); !placed.Envelope.Time.Equal(want) {
		t.Errorf("OrderPlaced time %v, want %v", placed.Envelope.Time, want)
	}
}

// CloudEvents from the SDK's Kafka binding, sent with kafkajs in binary
// and in structured content mode, reach typed handlers with their
// attributes, with no mapping.
func TestCloudEventsSDKToSwitchyardOnKafka(t *testing.T) {
	n := node(t)
	for _, mode := range []string{"binary", "structured"} {
		t.Run(mode, func(t *testing.T) {
			ns := interoptest.Namespace(t)
			b := interoptest.KafkaBroker(t, ns, nil)
			svc := service.New(b, service.WithNamespace(ns))
			got := billing(t, svc)
			interoptest.Run(t, svc)
			p := n.Start(t, "kafka-produce.mjs", map[string]any{
				"brokers": strings.Split(brokertest.KafkaBrokers(t), ","), "topic": ns + "orders", "mode": mode,
				"source": "/checkout/kafkajs", "events": sdkEvents(ns), "timeoutMs": interoptest.Wait.Milliseconds(),
			})
			var sent struct{ Sent int }
			p.Next(&sent, interoptest.Wait)
			p.Wait(interoptest.Wait)
			checkSDKEvents(t, interoptest.ReceiveHandled(t, got, 2), ns, "/checkout/kafkajs")
		})
	}
}

// The same over RabbitMQ with amqplib: binary mode with the AMQP binding's
// cloudEvents_ headers, and structured mode.
func TestCloudEventsSDKToSwitchyardOnRabbitMQ(t *testing.T) {
	n := node(t)
	for _, mode := range []string{"binary", "structured"} {
		t.Run(mode, func(t *testing.T) {
			ns := interoptest.Namespace(t)
			env := interoptest.NewAMQPEnv(t, ns)
			orders := env.Topic("orders", "billing")
			env.Topic("invoices") // the invoices published have no consumer: allowed below
			b := env.Broker(func(c *amqp.Config) { c.AllowUnroutable = true })
			svc := service.New(b, service.WithNamespace(ns))
			got := billing(t, svc)
			interoptest.Run(t, svc)
			p := n.Start(t, "amqp-produce.mjs", map[string]any{
				"url": env.URL(), "exchange": orders, "mode": mode, "prefix": "cloudEvents_",
				"source": "/checkout/amqplib", "events": sdkEvents(ns), "timeoutMs": interoptest.Wait.Milliseconds(),
			})
			var sent struct{ Sent int }
			p.Next(&sent, interoptest.Wait)
			p.Wait(interoptest.Wait)
			checkSDKEvents(t, interoptest.ReceiveHandled(t, got, 2), ns, "/checkout/amqplib")
		})
	}
}

// A topic set to structured mode: kafkajs and amqplib consumers get one
// application/cloudevents+json document per event, which the SDK reads as
// the event Switchyard published.
func TestSwitchyardStructuredToCloudEventsSDK(t *testing.T) {
	n := node(t)
	structuredCT := "application/cloudevents+json; charset=utf-8"
	t.Run("kafka", func(t *testing.T) {
		ns := interoptest.Namespace(t)
		b := interoptest.KafkaBroker(t, ns, nil)
		svc := service.New(b, service.WithNamespace(ns), service.WithSource("orders-service"),
			service.WithContentMode("orders", event.ContentModeStructured))
		want := publishOrders(t, svc, ns)
		p := n.Start(t, "kafka-consume.mjs", map[string]any{
			"brokers": strings.Split(brokertest.KafkaBrokers(t), ","), "topic": ns + "orders", "groupId": ns + "kafkajs",
			"count": len(want), "timeoutMs": interoptest.Wait.Milliseconds(),
		})
		got := map[string]readEvent{}
		for range want {
			var e readEvent
			p.Next(&e, interoptest.Wait)
			got[fmt.Sprint(e.CloudEvent["id"])] = e
		}
		p.Wait(interoptest.Wait)
		for _, w := range want {
			e, ok := got[w.id]
			if !ok {
				t.Fatalf("kafkajs did not read %s: %v", w.id, got)
			}
			if ct := e.Headers["content-type"]; ct != structuredCT {
				t.Errorf("%s: content-type %q, want %q", w.id, ct, structuredCT)
			}
			if _, ok := e.Headers["ce_type"]; ok {
				t.Errorf("%s: ce_type header in structured mode: %v", w.id, e.Headers)
			}
			if e.Key == nil || *e.Key != w.key {
				t.Errorf("%s: record key %v, want %s", w.id, e.Key, w.key)
			}
			checkCloudEvent(t, e, w, "orders-service")
		}
	})
	t.Run("rabbitmq", func(t *testing.T) {
		ns := interoptest.Namespace(t)
		env := interoptest.NewAMQPEnv(t, ns)
		exchange := env.Topic("orders")
		b := env.Broker(nil)
		p := n.Start(t, "amqp-consume.mjs", map[string]any{
			"url": env.URL(), "exchange": exchange, "count": 3, "prefix": "ce_", "timeoutMs": interoptest.Wait.Milliseconds(),
		})
		var ready struct{ Ready bool }
		p.Next(&ready, interoptest.Wait)
		svc := service.New(b, service.WithNamespace(ns), service.WithSource("orders-service"),
			service.WithContentMode("orders", event.ContentModeStructured))
		want := publishOrders(t, svc, ns)
		got := map[string]readEvent{}
		for range want {
			var e readEvent
			p.Next(&e, interoptest.Wait)
			got[fmt.Sprint(e.Properties["messageId"])] = e
		}
		p.Wait(interoptest.Wait)
		for _, w := range want {
			e, ok := got[w.id]
			if !ok {
				t.Fatalf("amqplib did not read %s: %v", w.id, got)
			}
			if ct := e.Properties["contentType"]; ct != structuredCT {
				t.Errorf("%s: content type property %v, want %q", w.id, ct, structuredCT)
			}
			checkCloudEvent(t, e, w, "orders-service")
		}
	})
}
