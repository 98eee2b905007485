package asyncapi_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard-go/switchyard/pkg/asyncapi"
	"github.com/switchyard-go/switchyard/pkg/graph"
	"github.com/switchyard-go/switchyard/pkg/middleware"
)

var (
	kafkaConfig = asyncapi.Config{
		Title: "orders", Version: "1.2.3",
		Servers: []asyncapi.Server{{Host: "k1:9092", Protocol: "kafka"}, {Host: "k2:9092", Protocol: "kafka"}},
		Kafka:   &asyncapi.Kafka{Partitions: 3, Replicas: 1},
	}
	amqpConfig = asyncapi.Config{
		Title: "orders", Version: "1.2.3",
		Servers: []asyncapi.Server{{Host: "rabbit:5672", Protocol: "amqp", Pathname: "/prod"}},
		AMQP:    &asyncapi.AMQP{ExchangePrefix: "x.", QueuePrefix: "q.", VHost: "prod"},
	}
)

func generate(t *testing.T, g *graph.Graph, c asyncapi.Config) map[string]any {
	t.Helper()
	raw, err := asyncapi.Generate(g, c)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	return doc
}

// at walks doc along a "/"-separated path, failing the test if it is not there.
func at(t *testing.T, doc any, path string) any {
	t.Helper()
	v := doc
	for _, k := range strings.Split(path, "/") {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s: %q is not an object", path, k)
		}
		if v, ok = m[k]; !ok {
			t.Fatalf("%s: no %q; have %q", path, k, keys(m))
		}
	}
	return v
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestGenerateChannelsAndOperations(t *testing.T) {
	doc := generate(t, flow(t), asyncapi.Config{})
	if got := at(t, doc, "asyncapi"); got != "3.0.0" {
		t.Errorf("asyncapi = %v", got)
	}
	if got := at(t, doc, "info/title"); got != "Switchyard service" {
		t.Errorf("default title = %v", got)
	}
	if _, ok := doc["servers"]; ok {
		t.Error("servers without a configured broker")
	}
	if got, want := keys(at(t, doc, "channels").(map[string]any)), []string{"audit.noted", "inventory", "orders.order_placed"}; !reflect.DeepEqual(got, want) {
		t.Errorf("channels = %q, want %q (topics, not event types)", got, want)
	}
	if got := at(t, doc, "channels/inventory/address"); got != "inventory" {
		t.Errorf("address = %v", got)
	}
	if got := keys(at(t, doc, "channels/inventory/messages").(map[string]any)); !reflect.DeepEqual(got, []string{"orders.inventory_reserved"}) {
		t.Errorf("inventory carries %q", got)
	}
	wantOps := []string{
		"analytics.placed", "analytics.reserved", "audit_log_writer",
		"inventory.reserve", "inventory.reserve.send.audit.noted", "inventory.reserve.send.orders.inventory_reserved",
	}
	if got := keys(at(t, doc, "operations").(map[string]any)); !reflect.DeepEqual(got, wantOps) {
		t.Errorf("operations = %q, want %q", got, wantOps)
	}
	recv := at(t, doc, "operations/inventory.reserve").(map[string]any)
	if recv["action"] != "receive" || at(t, recv, "channel/$ref") != "#/channels/orders.order_placed" {
		t.Errorf("receive operation = %v", recv)
	}
	send := at(t, doc, "operations/inventory.reserve.send.orders.inventory_reserved").(map[string]any)
	if send["action"] != "send" || at(t, send, "channel/$ref") != "#/channels/inventory" ||
		send["messages"].([]any)[0].(map[string]any)["$ref"] != "#/channels/inventory/messages/orders.inventory_reserved" {
		t.Errorf("send operation = %v", send)
	}
	if _, ok := recv["bindings"]; ok {
		t.Error("bindings without a broker")
	}
}

func TestGenerateMessages(t *testing.T) {
	doc := generate(t, flow(t), kafkaConfig)
	m := at(t, doc, "components/messages/orders.inventory_reserved").(map[string]any)
	if m["contentType"] != "application/json" || at(t, m, "correlationId/location") != "$message.header#/ce_correlationid" {
		t.Errorf("message = %v", m)
	}
	if at(t, m, "headers/allOf").([]any)[0].(map[string]any)["$ref"] != "#/components/schemas/SwitchyardHeaders" ||
		at(t, m, "headers/properties/ce_type/const") != "orders.inventory_reserved" ||
		at(t, m, "headers/properties/ce_eventversion/const") != "2" {
		t.Errorf("headers = %v", m["headers"])
	}
	// The payload's nested type moved to components/schemas.
	if got := at(t, m, "payload/properties/items/items/$ref"); got != "#/components/schemas/asyncapi_test.item" {
		t.Errorf("items ref = %v", got)
	}
	if _, ok := at(t, m, "payload").(map[string]any)["$defs"]; ok {
		t.Error("payload still has $defs")
	}
	if got := at(t, doc, "components/schemas/asyncapi_test.item/required"); !reflect.DeepEqual(got, []any{"sku", "qty"}) {
		t.Errorf("item required = %v", got)
	}
	h := at(t, doc, "components/schemas/SwitchyardHeaders").(map[string]any)
	for _, name := range []string{"ce_id", "ce_specversion", "ce_type", "ce_source", "ce_time", "content-type", "ce_eventversion",
		"ce_partitionkey", "ce_correlationid", "ce_causationid", "ce_hopcount", "ce_traceparent", "ce_tracestate",
		"sy_attempt", "sy_first_failure", "sy_retry_group", "sy_replaycount"} {
		if _, ok := h["properties"].(map[string]any)[name]; !ok {
			t.Errorf("header contract lacks %s", name)
		}
	}
	if got := at(t, m, "bindings/kafka/key/type"); got != "string" {
		t.Errorf("kafka key = %v", got)
	}
	if _, ok := at(t, doc, "components/messages/audit.noted").(map[string]any)["bindings"]; ok {
		t.Error("an unkeyed event has a Kafka key binding")
	}
}

func TestGenerateKafka(t *testing.T) {
	doc := generate(t, flow(t), kafkaConfig)
	if got := keys(at(t, doc, "servers").(map[string]any)); !reflect.DeepEqual(got, []string{"kafka-1", "kafka-2"}) {
		t.Errorf("servers = %q", got)
	}
	if at(t, doc, "servers/kafka-2/host") != "k2:9092" || at(t, doc, "servers/kafka-2/protocol") != "kafka" {
		t.Errorf("server = %v", at(t, doc, "servers/kafka-2"))
	}
	ch := at(t, doc, "channels/orders.order_placed/bindings/kafka").(map[string]any)
	if ch["topic"] != "orders.order_placed" || ch["partitions"] != 3.0 || ch["replicas"] != 1.0 {
		t.Errorf("channel binding = %v", ch)
	}
	if got := at(t, doc, "operations/analytics.placed/bindings/kafka/groupId/enum"); !reflect.DeepEqual(got, []any{"analytics"}) {
		t.Errorf("groupId = %v", got)
	}
}

func TestGenerateAMQP(t *testing.T) {
	doc := generate(t, flow(t), amqpConfig)
	ex := at(t, doc, "channels/orders.order_placed").(map[string]any)
	if ex["address"] != "x.orders.order_placed" ||
		!reflect.DeepEqual(at(t, ex, "bindings/amqp/exchange"), map[string]any{"name": "x.orders.order_placed", "type": "fanout", "durable": true, "autoDelete": false, "vhost": "prod"}) ||
		at(t, ex, "bindings/amqp/is") != "routingKey" {
		t.Errorf("exchange channel = %v", ex)
	}
	// Each group consumes from its own queue, queue_prefix + topic + "." + group.
	for _, q := range []string{"q.orders.order_placed.inventory", "q.orders.order_placed.analytics", "q.inventory.analytics", "q.audit.noted.audit"} {
		ch := at(t, doc, "channels/"+q).(map[string]any)
		if ch["address"] != q || at(t, ch, "bindings/amqp/is") != "queue" || at(t, ch, "bindings/amqp/queue/name") != q {
			t.Errorf("queue channel %s = %v", q, ch)
		}
	}
	if got := at(t, doc, "operations/inventory.reserve/channel/$ref"); got != "#/channels/q.orders.order_placed.inventory" {
		t.Errorf("receive reads from %v, want its group's queue", got)
	}
	if got := at(t, doc, "operations/inventory.reserve.send.orders.inventory_reserved/channel/$ref"); got != "#/channels/inventory" {
		t.Errorf("send goes to %v, want the topic's exchange", got)
	}
	if at(t, doc, "servers/amqp/pathname") != "/prod" {
		t.Errorf("server = %v", at(t, doc, "servers/amqp"))
	}
}

func TestGenerateIsDeterministic(t *testing.T) {
	g := flow(t)
	first, err := asyncapi.Generate(g, amqpConfig)
	if err != nil {
		t.Fatal(err)
	}
	// The same handlers in another order, events described in another order.
	hs := g.Handlers()
	slices.Reverse(hs)
	ev := g.Events()
	slices.Reverse(ev)
	for range 10 {
		again, err := asyncapi.Generate(graph.Build(hs).WithEvents(ev...), amqpConfig)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first, again) {
			t.Fatalf("two runs differ:\n%s\n---\n%s", first, again)
		}
	}
}

func TestGenerateIDs(t *testing.T) {
	// Two handlers whose names sanitize to the same key keep both operations.
	g := graph.Build([]middleware.Info{
		{Name: "a b", Group: "g", Topic: "t", EventType: "E"},
		{Name: "a/b", Group: "g2", Topic: "t", EventType: "E"},
	})
	doc := generate(t, g, asyncapi.Config{})
	if got := keys(at(t, doc, "operations").(map[string]any)); !reflect.DeepEqual(got, []string{"a_b", "a_b_2"}) {
		t.Errorf("operations = %q", got)
	}
	// An event without a description: a message without payload, on the topic named after it.
	m := at(t, doc, "components/messages/E").(map[string]any)
	if _, ok := m["payload"]; ok {
		t.Errorf("undescribed event has a payload: %v", m)
	}
	if got := keys(at(t, doc, "channels").(map[string]any)); !reflect.DeepEqual(got, []string{"E", "t"}) {
		t.Errorf("channels = %q", got)
	}
}

func TestGenerateBadSchema(t *testing.T) {
	g := graph.Build([]middleware.Info{{Name: "h", EventType: "E"}}).WithEvents(graph.Event{Name: "E", Schema: []byte(`[1]`)})
	if _, err := asyncapi.Generate(g, asyncapi.Config{}); err == nil || !strings.Contains(err.Error(), "event E") {
		t.Fatalf("err = %v, want one naming event E", err)
	}
}

func TestGenerateRejectsBadConfig(t *testing.T) {
	_, err := asyncapi.Generate(flow(t), asyncapi.Config{Servers: []asyncapi.Server{{}}, Kafka: &asyncapi.Kafka{Partitions: -1}})
	for _, w := range []string{"servers[0].host: required", "servers[0].protocol: required", "partitions -1"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("err = %v, want it to say %s", err, w)
		}
	}
}

func TestGenerateDeclaredTwice(t *testing.T) {
	g := graph.Build([]middleware.Info{{Name: "h", Group: "g", Topic: "A", EventType: "A", Publishes: []string{"B", "", "B"}}})
	doc := generate(t, g, asyncapi.Config{})
	if got := keys(at(t, doc, "operations").(map[string]any)); !reflect.DeepEqual(got, []string{"h", "h.send.B"}) {
		t.Errorf("operations = %q, want one send for B", got)
	}
}
