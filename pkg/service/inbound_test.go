package service_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/inbound"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/retry"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// The article's plain style: JSON body, eventType and correlationId headers.
var plainOrders = inbound.Mapping{
	Type:          inbound.From{Header: "eventType"},
	Types:         map[string]string{"OrderPlaced": "orders.order_placed"},
	CorrelationID: inbound.From{Header: "correlationId"},
	Key:           inbound.From{Field: "order_id"},
}

func plainMessage(id, eventType, corr, body string) *message.Message {
	m := message.NewMessage(id, []byte(body))
	if eventType != "" {
		m.Metadata.Set("eventType", eventType)
	}
	if corr != "" {
		m.Metadata.Set("correlationId", corr)
	}
	return m
}

// A plain message on a mapped topic reaches the typed handler through the
// whole stack (here: a failed first attempt is retried), with the mapped
// envelope; what the handler publishes continues the foreign correlation
// chain, caused by the mapped id. A Switchyard event on the same topic is
// read as usual.
func TestInboundMappingReachesTypedHandler(t *testing.T) {
	b := newBroker(t)
	svc := service.New(b, service.WithNamespace("ns."), service.WithClock(immediateClock{}),
		service.WithInbound("orders", plainOrders))
	type seen struct {
		e   orderPlaced
		env event.Envelope
	}
	got := make(chan seen, 10)
	var attempts atomic.Int32
	err := service.Handle(svc, "inventory", func(ctx context.Context, e orderPlaced) error {
		if e.OrderID == "o-1" && attempts.Add(1) == 1 {
			return errors.New("transient")
		}
		got <- seen{e, middleware.DeliveryFrom(ctx).Envelope}
		return svc.Publish(ctx, stockReserved{OrderID: e.OrderID})
	}, service.Publishes(stockReserved{}), service.Retry(retry.Policy{MaxAttempts: 3}))
	if err != nil {
		t.Fatal(err)
	}
	out := probe(t, b, "probe", "ns.inventory.stock_reserved")
	start(t, svc)

	if err := b.Publisher().Publish("ns.orders", plainMessage("m-1", "OrderPlaced", "corr-1", `{"order_id":"o-1"}`)); err != nil {
		t.Fatal(err)
	}
	s := recv(t, got, "the plain event")
	if s.e.OrderID != "o-1" || s.env.Type != "orders.order_placed" || s.env.ID != "m-1" ||
		s.env.CorrelationID != "corr-1" || s.env.Key != "o-1" || s.env.Version != 1 {
		t.Fatalf("handled %+v with envelope %+v", s.e, s.env)
	}
	if attempts.Load() != 2 {
		t.Errorf("attempts %d, want 2 (the retry middleware applies to mapped messages)", attempts.Load())
	}
	follow := recv(t, out, "the follow-up event")
	if follow.Metadata[header.CorrelationID] != "corr-1" || follow.Metadata[header.CausationID] != "m-1" || follow.Metadata[header.HopCount] != "1" {
		t.Errorf("follow-up metadata %v, want correlation corr-1, causation m-1, hop 1", follow.Metadata)
	}

	if err := svc.Publish(middleware.WithCorrelationID(context.Background(), "corr-2"), orderPlaced{OrderID: "o-2"}); err != nil {
		t.Fatal(err)
	}
	s = recv(t, got, "the Switchyard event")
	if s.e.OrderID != "o-2" || s.env.CorrelationID != "corr-2" || s.env.Source != "switchyard" {
		t.Fatalf("handled %+v with envelope %+v", s.e, s.env)
	}
}

// A message the mapping cannot be applied to is dead-lettered at once with
// reason inbound_mapping, an error naming the topic and what was missing,
// and the original headers and payload.
func TestInboundMappingFailureIsDeadLettered(t *testing.T) {
	b := newBroker(t)
	svc := service.New(b, service.WithInbound("orders", plainOrders))
	handled := make(chan orderPlaced, 1)
	if err := service.Handle(svc, "inventory", func(_ context.Context, e orderPlaced) error {
		handled <- e
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	dl := probe(t, b, "probe", service.DeadLetterTopicFor("inventory"))
	start(t, svc)

	if err := b.Publisher().Publish("orders", plainMessage("m-9", "", "corr-9", `{"order_id":"o-9"}`)); err != nil {
		t.Fatal(err)
	}
	d := recv(t, dl, "the dead letter")
	md := d.Metadata
	if md[header.DeadLetterReason] != "inbound_mapping" || md[header.DeadLetterAttempts] != "1" {
		t.Errorf("dead letter reason %q attempts %q, want inbound_mapping after 1", md[header.DeadLetterReason], md[header.DeadLetterAttempts])
	}
	if e := md[header.DeadLetterError]; !strings.Contains(e, `inbound mapping of topic "orders"`) || !strings.Contains(e, `type from header "eventType": missing`) {
		t.Errorf("dead letter error %q does not name the mapping and the missing header", e)
	}
	if md["correlationId"] != "corr-9" || md[header.SpecVersion] != "" || string(d.Payload) != `{"order_id":"o-9"}` {
		t.Errorf("dead letter is not the original: %v %s", md, d.Payload)
	}
	select {
	case e := <-handled:
		t.Fatalf("handler got %+v", e)
	default:
	}
}

func TestWithInboundPanicsOnInvalidMapping(t *testing.T) {
	defer func() {
		r := recover()
		if r == nil || !strings.Contains(r.(string), `inbound[orders].type: required`) {
			t.Fatalf("recovered %v, want a panic naming inbound[orders].type", r)
		}
	}()
	service.WithInbound("orders", inbound.Mapping{})
}

// Messages whose key comes from the mapping are never handled at the same
// time: the dispatcher must apply the mapping before it picks a worker by
// key, not only the worker before it reads the envelope.
func TestInboundMappedKeyOrdersHandling(t *testing.T) {
	b := newBroker(t)
	svc := service.New(b, service.WithInbound("orders", plainOrders))
	var inFlight, overlaps atomic.Int32
	done := make(chan struct{}, 100)
	if err := service.Handle(svc, "h", func(context.Context, orderPlaced) error {
		if inFlight.Add(1) > 1 {
			overlaps.Add(1)
		}
		time.Sleep(time.Millisecond)
		inFlight.Add(-1)
		done <- struct{}{}
		return nil
	}, service.Concurrency(4)); err != nil {
		t.Fatal(err)
	}
	start(t, svc)
	const n = 40
	for i := range n {
		m := plainMessage(fmt.Sprintf("m-%d", i), "OrderPlaced", "c", `{"order_id":"same"}`)
		if err := b.Publisher().Publish("orders", m); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		recv(t, done, "a handled message")
	}
	if o := overlaps.Load(); o > 0 {
		t.Errorf("%d messages of one mapped key were handled while another was in flight", o)
	}
}
