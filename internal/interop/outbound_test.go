package interop_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/adapters/amqp"
	"github.com/switchyard-go/switchyard/adapters/kafka"
	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/internal/interoptest"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// published is what the Go side published, to compare with what the
// Node.js side read.
type published struct {
	id, typ, key, correlation string
	data                      map[string]any
}

// publishOrders publishes two OrderPlaced and one OrderPaid from svc, the
// first two in one correlation chain.
func publishOrders(t *testing.T, svc *service.Service, ns string) []published {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), interoptest.Wait)
	defer cancel()
	var out []published
	for i, e := range []interface {
		EventType() string
		EventVersion() int
	}{
		interoptest.OrderPlaced{OrderID: "order-1", UserID: "u-1", Total: 12.5},
		interoptest.OrderPlaced{OrderID: "order-2", UserID: "u-2", Total: 99},
		interoptest.OrderPaid{OrderID: "order-1"},
	} {
		id := fmt.Sprintf("%sevt-%d", ns, i)
		corr := "chain-" + ns
		if i == 2 {
			corr = id // a chain of its own: the correlation id is the event's id
		}
		pctx := ctx
		if i < 2 {
			pctx = middleware.WithCorrelationID(ctx, corr)
		}
		if err := svc.Publish(pctx, e, service.WithID(id)); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		raw, _ := json.Marshal(e)
		var data map[string]any
		_ = json.Unmarshal(raw, &data)
		out = append(out, published{id: id, typ: e.EventType(), key: data["orderId"].(string), correlation: corr, data: data})
	}
	return out
}

// readEvent is what a Node.js consumer printed for one message.
type readEvent struct {
	Key             *string           `json:"key"`
	Value           string            `json:"value"`
	Body            string            `json:"body"`
	Headers         map[string]string `json:"headers"`
	Properties      map[string]any    `json:"properties"`
	CloudEvent      map[string]any    `json:"cloudevent"`
	CloudEventError string            `json:"cloudeventError"`
}

// checkCloudEvent compares the event the CloudEvents SDK read with what
// was published.
func checkCloudEvent(t *testing.T, got readEvent, want published, source string) {
	t.Helper()
	if got.CloudEventError != "" {
		t.Fatalf("%s: the CloudEvents SDK could not read it: %s\nheaders %v", want.id, got.CloudEventError, got.Headers)
	}
	ce := got.CloudEvent
	for attr, w := range map[string]any{
		"specversion":     "1.0",
		"id":              want.id,
		"type":            want.typ,
		"source":          source,
		"datacontenttype": "application/json",
		"partitionkey":    want.key,
		"correlationid":   want.correlation,
	} {
		if fmt.Sprint(ce[attr]) != fmt.Sprint(w) {
			t.Errorf("%s: attribute %s = %v, want %v", want.id, attr, ce[attr], w)
		}
	}
	// Version 1 and hop count 0 are left out: absent means those (docs/headers.md).
	for _, attr := range []string{"eventversion", "hopcount"} {
		if v, ok := ce[attr]; ok {
			t.Errorf("%s: attribute %s = %v, want it left out (version 1, hop count 0)", want.id, attr, v)
		}
	}
	if tm, err := time.Parse(time.RFC3339Nano, fmt.Sprint(ce["time"])); err != nil || time.Since(tm) > time.Hour || time.Since(tm) < -time.Minute {
		t.Errorf("%s: attribute time = %v, want about now", want.id, ce["time"])
	}
	if fmt.Sprint(ce["data"]) != fmt.Sprint(want.data) {
		t.Errorf("%s: data = %v, want %v", want.id, ce["data"], want.data)
	}
}

// Switchyard publishes on Kafka with the adapter's defaults; a kafkajs
// consumer with default settings reads every record (no compression it
// cannot decode), keyed by the aggregate id, and the CloudEvents SDK's
// Kafka binding reads each as a valid CloudEvent with our attributes.
func TestKafkaJSReadsWhatSwitchyardPublishes(t *testing.T) {
	n := node(t)
	ns := interoptest.Namespace(t)
	b := interoptest.KafkaBroker(t, ns, nil)
	svc := service.New(b, service.WithNamespace(ns), service.WithSource("orders-service"))
	want := publishOrders(t, svc, ns)

	p := n.Start(t, "kafka-consume.mjs", map[string]any{
		"brokers": strings.Split(brokertest.KafkaBrokers(t), ","),
		"topic":   ns + "orders", "groupId": ns + "kafkajs", "count": len(want),
		"timeoutMs": interoptest.Wait.Milliseconds(),
	})
	got := map[string]readEvent{}
	for range want {
		var e readEvent
		p.Next(&e, interoptest.Wait)
		got[e.Headers["ce_id"]] = e
	}
	p.Wait(interoptest.Wait)
	for _, w := range want {
		e, ok := got[w.id]
		if !ok {
			t.Fatalf("kafkajs did not read %s; it read %v", w.id, got)
		}
		if e.Key == nil || *e.Key != w.key {
			t.Errorf("%s: record key %v, want %q", w.id, e.Key, w.key)
		}
		checkCloudEvent(t, e, w, "orders-service")
	}
}

// Compression settings every client reads without plugins are readable by
// kafkajs; snappy, franz-go's own default, is not. The snappy case shows
// that the test above would catch a regression of the default.
func TestKafkaJSAndCompression(t *testing.T) {
	n := node(t)
	for _, tc := range []struct {
		compression string
		readable    bool
	}{
		{kafka.CompressionGzip, true},
		{kafka.CompressionSnappy, false},
	} {
		t.Run(tc.compression, func(t *testing.T) {
			ns := interoptest.Namespace(t)
			b := interoptest.KafkaBroker(t, ns, func(c *kafka.Config) { c.Compression = tc.compression })
			svc := service.New(b, service.WithNamespace(ns))
			want := publishOrders(t, svc, ns)
			p := n.Start(t, "kafka-consume.mjs", map[string]any{
				"brokers": strings.Split(brokertest.KafkaBrokers(t), ","),
				"topic":   ns + "orders", "groupId": ns + "kafkajs", "count": len(want),
				"timeoutMs": (20 * time.Second).Milliseconds(),
			})
			if tc.readable {
				for range want {
					var e readEvent
					p.Next(&e, interoptest.Wait)
				}
				p.Wait(interoptest.Wait)
				return
			}
			var e readEvent
			if err := p.NextOrExit(&e, interoptest.Wait); err == nil {
				t.Fatalf("kafkajs read a snappy batch without a codec plugin: %+v", e)
			}
			if !strings.Contains(p.Stderr(), "Snappy compression not implemented") {
				t.Errorf("kafkajs failed, but not on snappy:\n%s", p.Stderr())
			}
		})
	}
}

// Switchyard publishes on RabbitMQ; an amqplib consumer bound to the
// topic's exchange reads each message with its properties and headers, and
// the CloudEvents SDK validates the event built from the attribute headers,
// with the default "ce_" prefix and with the AMQP binding's "cloudEvents_".
func TestAmqplibReadsWhatSwitchyardPublishes(t *testing.T) {
	n := node(t)
	for _, prefix := range []string{amqp.PrefixCE, amqp.PrefixCloudEvents} {
		t.Run(prefix, func(t *testing.T) {
			ns := interoptest.Namespace(t)
			env := interoptest.NewAMQPEnv(t, ns)
			exchange := env.Topic("orders")
			b := env.Broker(func(c *amqp.Config) { c.CloudEventsPrefix = prefix })
			p := n.Start(t, "amqp-consume.mjs", map[string]any{
				"url": env.URL(), "exchange": exchange, "count": 3, "prefix": prefix,
				"timeoutMs": interoptest.Wait.Milliseconds(),
			})
			var ready struct{ Ready bool }
			p.Next(&ready, interoptest.Wait)

			svc := service.New(b, service.WithNamespace(ns), service.WithSource("orders-service"))
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
					t.Fatalf("amqplib did not read %s (by message-id); it read %v", w.id, got)
				}
				if ct := e.Properties["contentType"]; ct != "application/json" {
					t.Errorf("%s: content type property %v, want application/json", w.id, ct)
				}
				if e.Properties["deliveryMode"] != float64(2) {
					t.Errorf("%s: delivery mode %v, want 2 (persistent)", w.id, e.Properties["deliveryMode"])
				}
				if _, ok := e.Headers[prefix+"type"]; !ok {
					t.Errorf("%s: no %stype header in %v", w.id, prefix, e.Headers)
				}
				checkCloudEvent(t, e, w, "orders-service")
			}
		})
	}
}
