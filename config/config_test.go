package config

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/service"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestParseDefaultsToMemory(t *testing.T) {
	c, err := Parse(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Broker.Type != BrokerMemory || c.Service.Name != "switchyard" || c.Log.Level != "info" {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestParseBadInput(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // every fragment must appear in the error
	}{
		{"unknown broker type", "broker:\n  type: rabbit\n",
			[]string{`broker.type: "rabbit"`, "memory, amqp, kafka"}},
		{"unknown key", "broker:\n  type: memory\n  memroy: {}\n",
			[]string{"line 3", `unknown key "memroy"`, "allowed here: type, memory, amqp, kafka"}},
		{"unknown nested key", "defaults:\n  retry:\n    attempts: 3\n",
			[]string{"line 3", `unknown key "attempts"`, "max_attempts"}},
		{"negative retry count", "defaults:\n  retry:\n    max_attempts: -1\n",
			[]string{"defaults.retry.max_attempts: -1", "want >= 1"}},
		{"per-handler negative retry count", "handlers:\n  inventory:\n    retry:\n      max_attempts: -2\n",
			[]string{"handlers.inventory.retry.max_attempts: -2"}},
		{"unparsable duration", "defaults:\n  timeout: 5 parsecs\n",
			[]string{"line 2", `"5 parsecs" is not a duration`, "250ms"}},
		{"number where a duration goes", "service:\n  shutdown_timeout: 5\n",
			[]string{"line 2", `"5" is not a duration`}},
		{"wrong scalar type", "defaults:\n  concurrency: many\n",
			[]string{"line 2", `"many" is not a valid whole number`}},
		{"bad log level", "log:\n  level: loud\n",
			[]string{`log.level: "loud"`, "debug, info, warn, error"}},
		{"every problem at once", "log:\n  level: loud\ndefaults:\n  concurrency: -1\n  retry: {max_attempts: -1}\nbroker:\n  type: nats\n",
			[]string{"log.level", "defaults.concurrency: -1", "defaults.retry.max_attempts", `broker.type: "nats"`}},
		{"memory section validated", "broker:\n  memory:\n    buffer_size: -5\n",
			[]string{"broker.memory.buffer_size: -5"}},
		{"unknown key in a topic", "topics:\n  orders:\n    inbund: {}\n",
			[]string{"line 3", `unknown key "inbund"`, "allowed here: inbound"}},
		{"unknown key in an inbound mapping", "topics:\n  orders:\n    inbound:\n      type: {header: eventType}\n      corelation_id: {header: x}\n",
			[]string{"line 5", `unknown key "corelation_id"`, "correlation_id", "data_field"}},
		{"unknown key in an attribute source", "topics:\n  orders:\n    inbound:\n      type: {headr: eventType}\n",
			[]string{"line 4", `unknown key "headr"`, "allowed here: header, field, value, format, optional"}},
		{"content mode validated", "topics:\n  orders:\n    content_mode: json\n",
			[]string{`topics.orders.content_mode: "json", want binary (default) or structured`}},
		{"inbound mapping validated", "topics:\n  orders:\n    inbound:\n      id: {value: x}\n      time: {header: ts, format: iso}\n",
			[]string{"topics.orders.inbound.type: required", "topics.orders.inbound.id.value", `topics.orders.inbound.time.format: "iso"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), nil)
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
		})
	}
}

func TestParseFile(t *testing.T) {
	c, err := Parse([]byte(`
service: {name: orders, shutdown_timeout: 10s}
defaults:
  timeout: 2s
  retry: {max_attempts: 3, initial_interval: 20ms}
handlers:
  inventory.reserve:
    concurrency: 8
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Service.Name != "orders" || c.Service.ShutdownTimeout != 10*time.Second {
		t.Errorf("service: %+v", c.Service)
	}
	if c.Defaults.Timeout != 2*time.Second || c.Defaults.Retry.MaxAttempts != 3 || c.Defaults.Retry.InitialInterval != 20*time.Millisecond {
		t.Errorf("defaults: %+v", c.Defaults)
	}
	if c.Handlers["inventory.reserve"].Concurrency != 8 {
		t.Errorf("handlers: %+v", c.Handlers)
	}
	if got := len(c.ServiceOptions()); got != 8 {
		t.Errorf("ServiceOptions: %d options", got)
	}
}

func TestEnvOverridesFile(t *testing.T) {
	c, err := Parse([]byte("broker: {type: memory}\ndefaults: {retry: {max_attempts: 3}}\n"), env(map[string]string{
		"SWITCHYARD_DEFAULTS_RETRY_MAX_ATTEMPTS": "7",
		"SWITCHYARD_DEFAULTS_TIMEOUT":            "1500ms",
		"SWITCHYARD_SERVICE_NAME":                "from-env",
		"SWITCHYARD_BROKER_MEMORY_BUFFER_SIZE":   "16",
		"SWITCHYARD_DEFAULTS_ORDERED":            "true",
		"SWITCHYARD_DEFAULTS_RETRY_MULTIPLIER":   "1.5",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Defaults.Retry.MaxAttempts != 7 || c.Defaults.Timeout != 1500*time.Millisecond || c.Service.Name != "from-env" ||
		c.Broker.Memory.BufferSize != 16 || !c.Defaults.IsOrdered() || c.Defaults.Retry.Multiplier != 1.5 {
		t.Fatalf("env not applied: %+v", c)
	}
}

func TestEnvBadValuesNameVariable(t *testing.T) {
	_, err := Parse(nil, env(map[string]string{
		"SWITCHYARD_DEFAULTS_TIMEOUT":            "soon",
		"SWITCHYARD_DEFAULTS_RETRY_MAX_ATTEMPTS": "three",
		"SWITCHYARD_BROKER_TYPE":                 "nats",
	}))
	if err == nil {
		t.Fatal("want an error")
	}
	for _, w := range []string{"SWITCHYARD_DEFAULTS_TIMEOUT (defaults.timeout)", `"soon" is not a duration`,
		"SWITCHYARD_DEFAULTS_RETRY_MAX_ATTEMPTS (defaults.retry.max_attempts)", `"three" is not a whole number`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q\nlacks %q", err, w)
		}
	}
}

func TestLoadNamesFile(t *testing.T) {
	_, err := Load("testdata/does-not-exist.yaml")
	if err == nil || !strings.Contains(err.Error(), "does-not-exist.yaml") {
		t.Fatalf("err = %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("broker: {type: memory}\n"))
	f.Add([]byte("defaults:\n  retry:\n    max_attempts: -1\n"))
	f.Add([]byte("handlers:\n  x: {timeout: 5 parsecs}\n"))
	f.Add([]byte(":\n- ["))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, nil)
		if err == nil {
			// Whatever parses must be valid and have defaults applied.
			if verr := c.Validate(); verr != nil {
				t.Fatalf("Parse accepted an invalid config: %v", verr)
			}
			if c.Broker.Type == "" {
				t.Fatal("defaults not applied")
			}
		}
	})
}

func TestBrokerSectionsDefaultWhenEmpty(t *testing.T) {
	for _, typ := range BrokerTypes {
		if _, err := Parse([]byte("broker: {type: "+typ+"}\n"), nil); err != nil {
			t.Errorf("broker.type %s with no section: %v", typ, err)
		}
	}
	_, err := Parse([]byte("broker:\n  type: kafka\n  kafka: {partitions: -1, acks: some}\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "broker.kafka.partitions") || !strings.Contains(err.Error(), "broker.kafka.acks") {
		t.Errorf("kafka section errors: %v", err)
	}
	_, err = Parse([]byte("broker:\n  type: amqp\n  amqp: {queue_type: lazy}\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "broker.amqp.queue_type") {
		t.Errorf("amqp section errors: %v", err)
	}
}

// ordered: false in a file or the environment turns off what defaults or
// code turned on: it is a tri-state, not a bool that can only add.
func TestOrderedFalseOverrides(t *testing.T) {
	c, err := Parse([]byte("defaults: {ordered: true}\nhandlers: {audit: {ordered: false}}\nservice: {failure_path_timeout: 3s}\n"),
		env(map[string]string{"SWITCHYARD_DEFAULTS_ORDER_ON_RETRY": "keep"}))
	if err != nil {
		t.Fatal(err)
	}
	audit := c.Handlers["audit"]
	if audit.Ordered == nil || *audit.Ordered {
		t.Fatalf("handlers.audit.ordered = %v, want an explicit false", audit.Ordered)
	}
	if got := audit.Inherit(c.Defaults); got.IsOrdered() {
		t.Error("ordered: false lost to defaults.ordered: true")
	}
	if c.Defaults.OrderOnRetry != "keep" || c.Service.FailurePathTimeout != 3*time.Second {
		t.Errorf("defaults.order_on_retry = %q, service.failure_path_timeout = %s", c.Defaults.OrderOnRetry, c.Service.FailurePathTimeout)
	}
	_, err = Parse([]byte("defaults: {order_on_retry: later}\nservice: {failure_path_timeout: -1s, request_timeout: -2s}\n"), env(nil))
	for _, w := range []string{`defaults.order_on_retry: "later", want "keep" or "release"`, "service.failure_path_timeout: -1s",
		"service.request_timeout: -2s, want > 0 (0 means 10s)"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v\nlacks %q", err, w)
		}
	}
}

func TestParseInboundMapping(t *testing.T) {
	c, err := Parse([]byte(`
topics:
  orders:
    inbound:
      type: {header: eventType}
      types: {OrderPlaced: orders.order_placed}
      key: {field: aggregateId}
      correlation_id: {header: correlationId, optional: true}
      time: {header: timestamp, format: unix_ms}
      data_field: data
    content_mode: structured
  legacy:
    inbound: {preset: watermill}
    watermill_headers: true
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	m := c.Topics["orders"].Inbound
	if l := c.Topics["legacy"]; l.Inbound == nil || l.Inbound.Preset != "watermill" || !l.WatermillHeaders {
		t.Errorf("legacy topic %+v", l)
	}
	if c.Topics["orders"].ContentMode != "structured" {
		t.Errorf("content mode %q", c.Topics["orders"].ContentMode)
	}
	if m == nil || m.Type.Header != "eventType" || m.Types["OrderPlaced"] != "orders.order_placed" || m.Key.Field != "aggregateId" ||
		!m.CorrelationID.Optional || m.Time.Format != "unix_ms" || m.DataField != "data" {
		t.Fatalf("parsed %+v", m)
	}

	// The options the file gives make a service read the plain style.
	b, err := memory.New(c.Broker.Memory, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	svc := service.New(b, c.ServiceOptions()...)
	got := make(chan string, 1)
	if err := service.Handle(svc, "h", func(ctx context.Context, e placed) error {
		got <- e.ID + " " + middleware.CorrelationID(ctx)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	<-svc.Ready()
	msg := message.NewMessage("m-1", []byte(`{"aggregateId":"o-1","data":{"id":"o-1"}}`))
	msg.Metadata.Set("eventType", "OrderPlaced")
	msg.Metadata.Set("correlationId", "c-1")
	msg.Metadata.Set("timestamp", "1767322800123")
	if err := b.Publisher().Publish("orders", msg); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if s != "o-1 c-1" {
			t.Errorf("handled %q, want order o-1 in chain c-1", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the plain message was not handled")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

type placed struct {
	ID string `json:"id"`
}

func (placed) EventType() string  { return "orders.order_placed" }
func (placed) EventVersion() int  { return 1 }
func (placed) EventTopic() string { return "orders" }
