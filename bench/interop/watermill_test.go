package interop_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	wmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/internal/interoptest"
	"github.com/switchyard-go/switchyard/pkg/inbound"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// A Watermill service and a Switchyard service exchange events both ways
// on the same topics: the Watermill side publishes and consumes with the
// pinned watermill-kafka and watermill-amqp and their default marshalers,
// its messages named as Watermill's CQRS JSON marshaler names them (a
// "name" header with the Go type's name; the cqrs package itself is not
// imported, it would add protobuf modules to go.mod for one header) and
// correlated by Watermill's correlation middleware; the Switchyard side
// reads Watermill's topic through the watermill preset and publishes with
// Watermill headers.

// watermillService is the Watermill side.
type watermillService struct {
	pub message.Publisher
	sub message.Subscriber
	ns  string
}

func newWatermillService(t *testing.T, pub message.Publisher, sub message.Subscriber, ns string) *watermillService {
	t.Helper()
	t.Cleanup(func() { _ = pub.Close(); _ = sub.Close() })
	return &watermillService{pub: pub, sub: sub, ns: ns}
}

// cqrsName is the name Watermill's cqrs.JSONMarshaler gives an event by
// default (cqrs.FullyQualifiedStructName).
func cqrsName(v any) string { return strings.TrimPrefix(fmt.Sprintf("%T", v), "*") }

// exchange runs the scenario once the services are up: Watermill publishes
// an OrderPlaced, Switchyard's typed handler gets it with Watermill's UUID
// and correlation id, and the invoice it publishes reaches Watermill's
// subscriber with our id as its UUID and the correlation id kept.
func (w *watermillService) exchange(t *testing.T, got <-chan interoptest.Handled, invoices <-chan *message.Message) {
	t.Helper()
	payload, _ := json.Marshal(interoptest.OrderPlaced{OrderID: "order-1", UserID: "u-1", Total: 5})
	msg := message.NewMessage(watermill.NewUUID(), payload)
	msg.Metadata.Set("name", cqrsName(interoptest.OrderPlaced{}))
	wmiddleware.SetCorrelationID("corr-W", msg)
	if err := w.pub.Publish(w.ns+"orders", msg); err != nil {
		t.Fatalf("Watermill publish: %v", err)
	}
	h := interoptest.ReceiveHandled(t, got, 1)["orders.order_placed"]
	if e, ok := h.Event.(interoptest.OrderPlaced); !ok || e.OrderID != "order-1" || e.Total != 5 {
		t.Errorf("Switchyard handler got %#v", h.Event)
	}
	if h.Envelope.CorrelationID != "corr-W" || h.Envelope.ID != msg.UUID {
		t.Errorf("envelope %+v, want Watermill's UUID %s as id and correlation corr-W", h.Envelope, msg.UUID)
	}
	select {
	case m := <-invoices:
		if m.UUID == "" || m.UUID != m.Metadata.Get("ce_id") {
			t.Errorf("Watermill message UUID %q, want the event id %q", m.UUID, m.Metadata.Get("ce_id"))
		}
		if c := wmiddleware.MessageCorrelationID(m); c != "corr-W" {
			t.Errorf("Watermill correlation id %q, want corr-W", c)
		}
		if m.Metadata.Get("ce_causationid") != h.Envelope.ID {
			t.Errorf("causation %q, want %q", m.Metadata.Get("ce_causationid"), h.Envelope.ID)
		}
		var inv interoptest.InvoiceRequested
		if err := json.Unmarshal(m.Payload, &inv); err != nil || inv.OrderID != "order-1" {
			t.Errorf("Watermill payload %s: %v", m.Payload, err)
		}
		m.Ack()
	case <-time.After(interoptest.Wait):
		t.Fatal("the Watermill subscriber got no invoice")
	}
}

// watermillMapping reads the Watermill side's events: the CQRS marshaler
// names them after their Go type.
var watermillMapping = inbound.Mapping{
	Preset: inbound.PresetWatermill,
	Types:  map[string]string{cqrsName(interoptest.OrderPlaced{}): "orders.order_placed"},
}

func TestWatermillKafkaAndSwitchyardExchangeEvents(t *testing.T) {
	ns := interoptest.Namespace(t)
	brokers := strings.Split(brokertest.KafkaBrokers(t), ",")
	b := interoptest.KafkaBroker(t, ns, nil)
	ctx, cancel := context.WithTimeout(context.Background(), interoptest.Wait)
	defer cancel()
	for _, topic := range []string{"orders", "invoices"} {
		if err := b.Provision(ctx, ns+topic, ns+"billing"); err != nil {
			t.Fatal(err)
		}
	}

	pc := wkafka.DefaultSaramaSyncPublisherConfig()
	pc.Version = sarama.V3_6_0_0
	pub, err := wkafka.NewPublisher(wkafka.PublisherConfig{Brokers: brokers, Marshaler: wkafka.DefaultMarshaler{}, OverwriteSaramaConfig: pc}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	sc := wkafka.DefaultSaramaSubscriberConfig()
	sc.Version = sarama.V3_6_0_0
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	sub, err := wkafka.NewSubscriber(wkafka.SubscriberConfig{
		Brokers: brokers, Unmarshaler: wkafka.DefaultMarshaler{}, ConsumerGroup: ns + "watermill", OverwriteSaramaConfig: sc,
	}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	wm := newWatermillService(t, pub, sub, ns)
	invoices, err := sub.Subscribe(ctx, ns+"invoices")
	if err != nil {
		t.Fatal(err)
	}

	svc := service.New(b, service.WithNamespace(ns), service.WithSource("billing-service"),
		service.WithInbound("orders", watermillMapping), service.WithWatermillHeaders("invoices"))
	got := billing(t, svc)
	interoptest.Run(t, svc)
	wm.exchange(t, got, invoices)
}

func TestWatermillAMQPAndSwitchyardExchangeEvents(t *testing.T) {
	ns := interoptest.Namespace(t)
	env := interoptest.NewAMQPEnv(t, ns)
	env.Topic("orders", "billing")
	invoices := env.Topic("invoices")
	env.Queue(invoices + "_watermill")
	b := env.Broker(nil)

	cfg := wamqp.NewDurablePubSubConfig(env.URL(), wamqp.GenerateQueueNameTopicNameWithSuffix("watermill"))
	pub, err := wamqp.NewPublisher(cfg, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := wamqp.NewSubscriber(cfg, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	wm := newWatermillService(t, pub, sub, ns)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wmInvoices, err := sub.Subscribe(ctx, invoices) // binds its queue before anything is published
	if err != nil {
		t.Fatal(err)
	}

	svc := service.New(b, service.WithNamespace(ns), service.WithSource("billing-service"),
		service.WithInbound("orders", watermillMapping), service.WithWatermillHeaders("invoices"))
	got := billing(t, svc)
	interoptest.Run(t, svc)
	wm.exchange(t, got, wmInvoices)
}
