package graph_test

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/switchyard-go/switchyard/pkg/graph"
	"github.com/switchyard-go/switchyard/pkg/middleware"
)

// ordersFlow is the handler wiring of examples/orders (pkg may not import it).
func ordersFlow() []middleware.Info {
	const placed, reserved, rejected, sent = "orders.order_placed", "orders.inventory_reserved", "orders.inventory_rejected", "orders.notification_sent"
	return []middleware.Info{
		{Name: "inventory.reserve", Group: "inventory", Topic: placed, EventType: placed, Publishes: []string{reserved, rejected}},
		{Name: "notifications.order_confirmation", Group: "notifications", Topic: reserved, EventType: reserved, Publishes: []string{sent}},
		{Name: "analytics.order_placed", Group: "analytics", Topic: placed, EventType: placed},
		{Name: "analytics.inventory_reserved", Group: "analytics", Topic: reserved, EventType: reserved},
		{Name: "analytics.inventory_rejected", Group: "analytics", Topic: rejected, EventType: rejected},
		{Name: "order_status.placed", Group: "order-status", Topic: placed, EventType: placed},
		{Name: "order_status.reserved", Group: "order-status", Topic: reserved, EventType: reserved},
		{Name: "order_status.rejected", Group: "order-status", Topic: rejected, EventType: rejected},
		{Name: "order_status.notified", Group: "order-status", Topic: sent, EventType: sent},
	}
}

func TestCycles(t *testing.T) {
	tests := []struct {
		name     string
		handlers []middleware.Info
		want     [][]string
	}{
		{"orders flow is acyclic", ordersFlow(), nil},
		{"empty", nil, nil},
		{"two-step cycle", []middleware.Info{
			{Name: "h2", Group: "g2", EventType: "B", Publishes: []string{"A"}},
			{Name: "h1", Group: "g1", EventType: "A", Publishes: []string{"B"}},
		}, [][]string{{"A", "h1", "B", "h2"}}},
		{"self loop", []middleware.Info{
			{Name: "echo", EventType: "ping", Publishes: []string{"ping"}},
		}, [][]string{{"ping", "echo"}}},
		{"two cycles sharing an event, stable order", []middleware.Info{
			{Name: "c", EventType: "C", Publishes: []string{"A"}},
			{Name: "b", EventType: "B", Publishes: []string{"A"}},
			{Name: "a", EventType: "A", Publishes: []string{"B", "C", "D"}},
		}, [][]string{{"A", "a", "B", "b"}, {"A", "a", "C", "c"}}},
		{"a handler named like an event type", []middleware.Info{
			{Name: "A", EventType: "A", Publishes: []string{"B"}},
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := graph.Build(tt.handlers).Cycles()
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Cycles() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestBuildNodesAndEdges(t *testing.T) {
	g := graph.Build([]middleware.Info{
		{Name: "h1", Group: "g1", Topic: "A", EventType: "A", Publishes: []string{"B", "B"}},
	})
	var got []string
	for _, e := range g.Edges() {
		got = append(got, fmt.Sprintf("%s:%s->%s:%s", e.From.Kind, e.From.Name, e.To.Kind, e.To.Name))
	}
	want := []string{"event:A->handler:h1", "handler:h1->event:B"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("edges = %q, want %q", got, want)
	}
	if n := len(g.Nodes()); n != 3 {
		t.Fatalf("%d nodes, want 3 (A, B, h1)", n)
	}
}

const cyclicMermaid = `flowchart LR
    e0(["A"])
    e1(["B"])
    e2(["C"])
    h3["h1<br/>group: g1"]
    h4["h2"]
    e0 --> h3
    e1 --> h4
    h3 --> e1
    h3 --> e2
    h4 --> e0
    classDef cycle stroke:#d33,stroke-width:2px
    class e0,e1,h3,h4 cycle
`

const cyclicDOT = `digraph switchyard {
    rankdir=LR;
    e0 [label="A", shape=box, style=rounded, color="#dd3333"];
    e1 [label="B", shape=box, style=rounded, color="#dd3333"];
    e2 [label="C", shape=box, style=rounded];
    h3 [label="h1\ngroup: g1", shape=ellipse, color="#dd3333"];
    h4 [label="h2", shape=ellipse, color="#dd3333"];
    e0 -> h3;
    e1 -> h4;
    h3 -> e1;
    h3 -> e2;
    h4 -> e0;
}
`

func cyclic() *graph.Graph {
	return graph.Build([]middleware.Info{
		{Name: "h1", Group: "g1", EventType: "A", Publishes: []string{"B", "C"}},
		{Name: "h2", Group: "h2", EventType: "B", Publishes: []string{"A"}},
	})
}

func TestMermaidGolden(t *testing.T) {
	if got := cyclic().Mermaid(); got != cyclicMermaid {
		t.Fatalf("Mermaid() =\n%s\nwant\n%s", got, cyclicMermaid)
	}
}

func TestDOTGolden(t *testing.T) {
	if got := cyclic().DOT(); got != cyclicDOT {
		t.Fatalf("DOT() =\n%s\nwant\n%s", got, cyclicDOT)
	}
}

func TestOrdersMermaidHasNoCycleClass(t *testing.T) {
	m := graph.Build(ordersFlow()).Mermaid()
	if strings.Contains(m, "cycle") {
		t.Fatalf("acyclic flow marked as cyclic:\n%s", m)
	}
	if !strings.Contains(m, `(["orders.order_placed"])`) || !strings.Contains(m, `["inventory.reserve<br/>group: inventory"]`) {
		t.Fatalf("Mermaid misses nodes:\n%s", m)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	g := graph.Build(ordersFlow())
	var buf bytes.Buffer
	if err := graph.WriteJSON(&buf, g); err != nil {
		t.Fatal(err)
	}
	back, err := graph.ReadJSON(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Handlers(), g.Handlers()) {
		t.Fatalf("round trip changed handlers:\n%+v\n%+v", back.Handlers(), g.Handlers())
	}
	if back.Mermaid() != g.Mermaid() {
		t.Fatal("round trip changed the Mermaid output")
	}
}

func TestReadJSONErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"not json", "nope", "invalid"},
		{"unknown field", `{"version":1,"handlers":[],"extra":1}`, "extra"},
		{"every problem", `{"version":3,"handlers":[{"name":"","consumes":""}]}`, "version: 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := graph.ReadJSON(strings.NewReader(tt.in))
			if !errors.Is(err, graph.ErrFormat) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrFormat mentioning %q", err, tt.want)
			}
		})
	}
	_, err := graph.ReadJSON(strings.NewReader(`{"version":3,"handlers":[{"name":"","consumes":""}]}`))
	for _, w := range []string{"handlers[0].name", "handlers[0].consumes"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("err %v does not name %s", err, w)
		}
	}
}

func TestWithEvents(t *testing.T) {
	g := graph.Build([]middleware.Info{{Name: "h1", Topic: "A", EventType: "A", Publishes: []string{"B"}}})
	d := g.WithEvents(
		graph.Event{Name: "B", Version: 2, Topic: "ns.B", Keyed: true, Schema: []byte(`{"type":"object"}`)},
		graph.Event{Name: "B", Version: 9}, // the first description wins
		graph.Event{Name: "Z", Version: 1}, // not in the graph
	)
	want := []graph.Event{{Name: "A"}, {Name: "B", Version: 2, Topic: "ns.B", Keyed: true, Schema: []byte(`{"type":"object"}`)}}
	if got := d.Events(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Events() = %+v, want %+v", got, want)
	}
	if got := g.Events(); !reflect.DeepEqual(got, []graph.Event{{Name: "A"}, {Name: "B"}}) {
		t.Fatalf("WithEvents changed its receiver: %+v", got)
	}
}

func TestJSONRoundTripWithEvents(t *testing.T) {
	g := graph.Build(ordersFlow()).WithEvents(
		graph.Event{Name: "orders.order_placed", Version: 1, Topic: "orders.order_placed", Keyed: true, Schema: []byte(`{"type":"object"}`)},
	)
	var buf bytes.Buffer
	if err := graph.WriteJSON(&buf, g); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"version": 2`) {
		t.Fatalf("a file with events must be version 2:\n%s", buf.String())
	}
	back, err := graph.ReadJSON(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Events(), g.Events()) {
		t.Fatalf("round trip changed events:\n%+v\n%+v", back.Events(), g.Events())
	}

	buf.Reset()
	if err := graph.WriteJSON(&buf, graph.Build(ordersFlow())); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"version": 1`) || strings.Contains(buf.String(), `"events"`) {
		t.Fatalf("a file without events must stay version 1 for older readers:\n%s", buf.String())
	}
}

func TestReadJSONEventErrors(t *testing.T) {
	in := `{"version":2,"handlers":[{"name":"h","consumes":"A"}],"events":[{"name":""},{"name":"A"},{"name":"A","version":-1}]}`
	_, err := graph.ReadJSON(strings.NewReader(in))
	if !errors.Is(err, graph.ErrFormat) {
		t.Fatalf("err = %v, want ErrFormat", err)
	}
	for _, w := range []string{"events[0].name: required", `events[2].name: "A" described twice`, "events[2].version: -1"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("err %v does not say %s", err, w)
		}
	}
}
