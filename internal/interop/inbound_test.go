package interop_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/internal/interoptest"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/inbound"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// billing registers typed handlers for OrderPlaced (which requests an
// invoice) and OrderPaid in group "billing", reporting what they handle.
func billing(t *testing.T, svc *service.Service) <-chan interoptest.Handled {
	t.Helper()
	got := make(chan interoptest.Handled, 16)
	report := func(ctx context.Context, e any) {
		got <- interoptest.Handled{Event: e, Envelope: middleware.DeliveryFrom(ctx).Envelope}
	}
	if err := service.Handle(svc, "billing.placed", func(ctx context.Context, e interoptest.OrderPlaced) error {
		report(ctx, e)
		return svc.Publish(ctx, interoptest.InvoiceRequested{OrderID: e.OrderID})
	}, service.Group("billing"), service.Publishes(interoptest.InvoiceRequested{})); err != nil {
		t.Fatal(err)
	}
	if err := service.Handle(svc, "billing.paid", func(ctx context.Context, e interoptest.OrderPaid) error {
		report(ctx, e)
		return nil
	}, service.Group("billing")); err != nil {
		t.Fatal(err)
	}
	return got
}

// findDeadLetter browses topic as the dead-letter group until a dead
// letter matching match shows up.
func findDeadLetter(t *testing.T, b broker.Broker, topic string, match func(*message.Message) bool) *message.Message {
	t.Helper()
	br, ok := b.(broker.Browser)
	if !ok {
		t.Fatalf("%s cannot browse", b.Name())
	}
	deadline := time.Now().Add(interoptest.Wait)
	for {
		var found *message.Message
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := br.Browse(ctx, topic, broker.DeadLetterGroup, func(m *message.Message) bool {
			if match(m) {
				found = m
				return false
			}
			return true
		})
		cancel()
		if found != nil {
			return found
		}
		if time.Now().After(deadline) {
			t.Fatalf("no matching dead letter on %s (last browse: %v)", topic, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// The article's kafkajs producer (key = order id, JSON value, headers
// eventType, correlationId and timestamp) feeds typed Switchyard handlers
// through a mapping; the invoice the handler publishes carries the foreign
// correlation id, caused by the mapped id, and kafkajs reads it. A plain
// message without eventType is dead-lettered naming the mapping.
func TestKafkaJSPlainEventsReachTypedHandlers(t *testing.T) {
	n := node(t)
	ns := interoptest.Namespace(t)
	b := interoptest.KafkaBroker(t, ns, nil)
	svc := service.New(b, service.WithNamespace(ns), service.WithSource("billing-service"),
		service.WithInbound("orders", inbound.Mapping{
			Type:          inbound.From{Header: "eventType"},
			Types:         map[string]string{"OrderPlaced": "orders.order_placed", "OrderPaid": "orders.order_paid"},
			CorrelationID: inbound.From{Header: "correlationId"},
			Time:          inbound.From{Header: "timestamp", Format: inbound.TimeUnixMS},
			Key:           inbound.From{Field: "orderId"},
		}))
	got := billing(t, svc)
	ctx, cancel := context.WithTimeout(context.Background(), interoptest.Wait)
	defer cancel()
	if err := b.Provision(ctx, ns+"orders", ns+"billing"); err != nil {
		t.Fatal(err)
	}
	interoptest.Run(t, svc)

	placedAt := "2026-03-04T05:06:07.089Z"
	brokers := strings.Split(brokertest.KafkaBrokers(t), ",")
	p := n.Start(t, "kafka-produce.mjs", map[string]any{
		"brokers": brokers, "topic": ns + "orders", "mode": "plain", "timeoutMs": interoptest.Wait.Milliseconds(),
		"events": []map[string]any{
			{"type": "OrderPlaced", "aggregateId": "order-1", "correlationId": "corr-A", "time": placedAt,
				"body": map[string]any{"orderId": "order-1", "userId": "u-1", "total": 12.5}},
			{"type": "OrderPaid", "aggregateId": "order-1", "correlationId": "corr-A", "body": map[string]any{"orderId": "order-1"}},
			{"aggregateId": "order-x", "correlationId": "corr-X", "body": map[string]any{"orderId": "order-x"}},
		},
	})
	var sent struct{ Sent int }
	p.Next(&sent, interoptest.Wait)
	p.Wait(interoptest.Wait)

	h := interoptest.ReceiveHandled(t, got, 2)
	placed, paid := h["orders.order_placed"], h["orders.order_paid"]
	if e, ok := placed.Event.(interoptest.OrderPlaced); !ok || e != (interoptest.OrderPlaced{OrderID: "order-1", UserID: "u-1", Total: 12.5}) {
		t.Errorf("OrderPlaced handler got %#v", placed.Event)
	}
	if _, ok := paid.Event.(interoptest.OrderPaid); !ok {
		t.Errorf("OrderPaid handler got %#v", paid.Event)
	}
	for _, x := range []interoptest.Handled{placed, paid} {
		if x.Envelope.CorrelationID != "corr-A" || x.Envelope.Key != "order-1" || !strings.HasPrefix(x.Envelope.ID, ns+"orders/") {
			t.Errorf("%s: envelope %+v, want correlation corr-A, key order-1, id <topic>/<partition>/<offset>", x.Envelope.Type, x.Envelope)
		}
	}
	if want, _ := time.Parse(time.RFC3339Nano, placedAt); !placed.Envelope.Time.Equal(want) {
		t.Errorf("OrderPlaced time %v, want %v (the timestamp header)", placed.Envelope.Time, want)
	}

	c := n.Start(t, "kafka-consume.mjs", map[string]any{
		"brokers": brokers, "topic": ns + "invoices", "groupId": ns + "kafkajs", "count": 1, "timeoutMs": interoptest.Wait.Milliseconds(),
	})
	var inv readEvent
	c.Next(&inv, interoptest.Wait)
	c.Wait(interoptest.Wait)
	if inv.Headers[header.CorrelationID] != "corr-A" || inv.Headers[header.CausationID] != placed.Envelope.ID || inv.Headers[header.HopCount] != "1" {
		t.Errorf("invoice headers %v, want correlation corr-A, causation %s, hop count 1", inv.Headers, placed.Envelope.ID)
	}

	dl := findDeadLetter(t, b, service.DeadLetterTopicFor(ns+"billing"), func(m *message.Message) bool {
		return m.Metadata["correlationId"] == "corr-X"
	})
	if r := dl.Metadata[header.DeadLetterReason]; r != "inbound_mapping" {
		t.Errorf("dead letter reason %q, want inbound_mapping", r)
	}
	if e := dl.Metadata[header.DeadLetterError]; !strings.Contains(e, fmt.Sprintf("inbound mapping of topic %q", ns+"orders")) ||
		!strings.Contains(e, `type from header "eventType": missing`) {
		t.Errorf("dead letter error %q does not name the mapping and the missing header", e)
	}
}

// The article's amqplib pub/sub publisher sends DomainEvent-shaped JSON
// ({type, aggregateId, data, timestamp}) to the topic's fanout exchange,
// with a messageId and a correlationId header; a mapping reading JSON
// fields feeds typed handlers, and amqplib reads the invoice the handler
// publishes with the foreign correlation id.
func TestAmqplibPlainEventsReachTypedHandlers(t *testing.T) {
	n := node(t)
	ns := interoptest.Namespace(t)
	env := interoptest.NewAMQPEnv(t, ns)
	orders := env.Topic("orders", "billing")
	invoices := env.Topic("invoices")
	b := env.Broker(nil)
	svc := service.New(b, service.WithNamespace(ns), service.WithSource("billing-service"),
		service.WithInbound("orders", inbound.Mapping{
			Type:          inbound.From{Field: "type"},
			Types:         map[string]string{"OrderPlaced": "orders.order_placed", "OrderPaid": "orders.order_paid"},
			Key:           inbound.From{Field: "aggregateId"},
			CorrelationID: inbound.From{Header: "correlationId"},
			Time:          inbound.From{Field: "timestamp"},
			DataField:     "data",
		}))
	got := billing(t, svc)
	interoptest.Run(t, svc)

	c := n.Start(t, "amqp-consume.mjs", map[string]any{
		"url": env.URL(), "exchange": invoices, "count": 1, "prefix": "ce_", "timeoutMs": interoptest.Wait.Milliseconds(),
	})
	var ready struct{ Ready bool }
	c.Next(&ready, interoptest.Wait)

	placedAt := "2026-03-04T05:06:07.089Z"
	domainEvent := func(typ string, data map[string]any) map[string]any {
		return map[string]any{"type": typ, "aggregateId": "order-1", "timestamp": placedAt, "data": data}
	}
	p := n.Start(t, "amqp-produce.mjs", map[string]any{
		"url": env.URL(), "exchange": orders, "mode": "plain", "timeoutMs": interoptest.Wait.Milliseconds(),
		"events": []map[string]any{
			{"id": ns + "m-1", "correlationId": "corr-B", "body": domainEvent("OrderPlaced", map[string]any{"orderId": "order-1", "userId": "u-1", "total": 7})},
			{"id": ns + "m-2", "correlationId": "corr-B", "body": domainEvent("OrderPaid", map[string]any{"orderId": "order-1"})},
			{"id": ns + "m-3", "correlationId": "corr-Y", "body": map[string]any{"aggregateId": "order-y", "data": map[string]any{}}},
		},
	})
	var sent struct{ Sent int }
	p.Next(&sent, interoptest.Wait)
	p.Wait(interoptest.Wait)

	h := interoptest.ReceiveHandled(t, got, 2)
	placed, paid := h["orders.order_placed"], h["orders.order_paid"]
	if e, ok := placed.Event.(interoptest.OrderPlaced); !ok || e != (interoptest.OrderPlaced{OrderID: "order-1", UserID: "u-1", Total: 7}) {
		t.Errorf("OrderPlaced handler got %#v", placed.Event)
	}
	if _, ok := paid.Event.(interoptest.OrderPaid); !ok {
		t.Errorf("OrderPaid handler got %#v", paid.Event)
	}
	for id, x := range map[string]interoptest.Handled{ns + "m-1": placed, ns + "m-2": paid} {
		if x.Envelope.ID != id || x.Envelope.CorrelationID != "corr-B" || x.Envelope.Key != "order-1" || x.Envelope.Time.Format(time.RFC3339Nano) != placedAt {
			t.Errorf("%s: envelope %+v, want id %s (message-id), correlation corr-B, key order-1, time %s", x.Envelope.Type, x.Envelope, id, placedAt)
		}
	}

	var inv readEvent
	c.Next(&inv, interoptest.Wait)
	c.Wait(interoptest.Wait)
	if inv.Headers[header.CorrelationID] != "corr-B" || inv.Headers[header.CausationID] != ns+"m-1" {
		t.Errorf("invoice headers %v, want correlation corr-B, causation %s", inv.Headers, ns+"m-1")
	}

	dl := findDeadLetter(t, b, service.DeadLetterTopicFor(ns+"billing"), func(m *message.Message) bool {
		return m.Metadata["correlationId"] == "corr-Y"
	})
	if r := dl.Metadata[header.DeadLetterReason]; r != "inbound_mapping" {
		t.Errorf("dead letter reason %q, want inbound_mapping", r)
	}
	if e := dl.Metadata[header.DeadLetterError]; !strings.Contains(e, `type from JSON field "type": missing`) {
		t.Errorf("dead letter error %q does not name the missing field", e)
	}
}
