package graph

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/switchyard-go/switchyard/pkg/middleware"
)

// Kind is the kind of a node.
type Kind string

// Node kinds.
const (
	KindEvent   Kind = "event"
	KindHandler Kind = "handler"
)

// Node is an event type or a handler.
type Node struct {
	Kind Kind
	// Name is the event type or the handler name.
	Name string
	// Group and Topic are the handler's consumer group and topic; empty for
	// event types.
	Group, Topic string
}

// Edge goes from an event type to a handler that consumes it, or from a
// handler to an event type it may publish.
type Edge struct {
	From, To Node
}

// Graph is the event-flow graph of a set of handlers. It is immutable; build
// it with [Build] or [ReadJSON].
type Graph struct {
	handlers []middleware.Info
	events   map[string]Event // descriptions of event nodes, see WithEvents
	nodes    []Node           // events sorted by name, then handlers sorted by name
	index    map[string]int   // node key -> position in nodes
	adj      [][]int          // successors, sorted
}

func key(k Kind, name string) string { return string(k) + "\x00" + name }

// Build returns the graph of handlers, as [service.Service.Handlers] reports
// them. Handlers with an empty name are skipped; a handler name given twice
// keeps the first.
func Build(handlers []middleware.Info) *Graph {
	g := &Graph{index: map[string]int{}}
	seen := map[string]bool{}
	for _, h := range handlers {
		if h.Name == "" || seen[h.Name] {
			continue
		}
		seen[h.Name] = true
		h.Publishes = slices.Clone(h.Publishes)
		g.handlers = append(g.handlers, h)
	}
	slices.SortFunc(g.handlers, func(a, b middleware.Info) int { return cmp.Compare(a.Name, b.Name) })

	events := map[string]bool{}
	for _, h := range g.handlers {
		if h.EventType != "" {
			events[h.EventType] = true
		}
		for _, p := range h.Publishes {
			if p != "" {
				events[p] = true
			}
		}
	}
	names := make([]string, 0, len(events))
	for e := range events {
		names = append(names, e)
	}
	slices.Sort(names)
	for _, e := range names {
		g.add(Node{Kind: KindEvent, Name: e})
	}
	for _, h := range g.handlers {
		g.add(Node{Kind: KindHandler, Name: h.Name, Group: h.Group, Topic: h.Topic})
	}
	g.adj = make([][]int, len(g.nodes))
	link := func(from, to int) {
		if !slices.Contains(g.adj[from], to) {
			g.adj[from] = append(g.adj[from], to)
		}
	}
	for _, h := range g.handlers {
		hi := g.index[key(KindHandler, h.Name)]
		if h.EventType != "" {
			link(g.index[key(KindEvent, h.EventType)], hi)
		}
		for _, p := range h.Publishes {
			if p != "" {
				link(hi, g.index[key(KindEvent, p)])
			}
		}
	}
	for i := range g.adj {
		slices.Sort(g.adj[i])
	}
	return g
}

func (g *Graph) add(n Node) {
	g.index[key(n.Kind, n.Name)] = len(g.nodes)
	g.nodes = append(g.nodes, n)
}

// Event describes an event type beyond its name, for documents generated
// from the graph (AsyncAPI): the graph's edges need only names, but a
// contract for other services needs the payload's shape and the topic.
type Event struct {
	// Name is the event type.
	Name string
	// Version is the current schema version; 0 means unknown.
	Version int
	// Topic is the topic the event is published to, namespace included;
	// empty means unknown (then the event type name, as the runtime does).
	Topic string
	// Keyed reports whether the event carries a key (the Kafka partition
	// key, ce_partitionkey).
	Keyed bool
	// Schema is the JSON Schema of the payload (see package eventschema);
	// nil means unknown.
	Schema json.RawMessage
}

// WithEvents returns a copy of g that describes its event types with
// events. Descriptions of types that are not nodes of g are dropped; a type
// described twice keeps the first.
func (g *Graph) WithEvents(events ...Event) *Graph {
	c := *g
	c.events = map[string]Event{}
	for name, e := range g.events {
		c.events[name] = e
	}
	for _, e := range events {
		if _, ok := g.index[key(KindEvent, e.Name)]; !ok {
			continue
		}
		if _, ok := c.events[e.Name]; ok {
			continue
		}
		e.Schema = slices.Clone(e.Schema)
		c.events[e.Name] = e
	}
	return &c
}

// Events returns a description of every event type of the graph, sorted by
// name; a type [Graph.WithEvents] did not describe has only its Name.
func (g *Graph) Events() []Event {
	var out []Event
	for _, n := range g.nodes {
		if n.Kind != KindEvent {
			continue
		}
		e, ok := g.events[n.Name]
		if !ok {
			e = Event{Name: n.Name}
		}
		e.Schema = slices.Clone(e.Schema)
		out = append(out, e)
	}
	return out
}

// Handlers returns the handlers the graph was built from, sorted by name.
func (g *Graph) Handlers() []middleware.Info {
	out := make([]middleware.Info, len(g.handlers))
	for i, h := range g.handlers {
		h.Publishes = slices.Clone(h.Publishes)
		out[i] = h
	}
	return out
}

// Nodes returns every node: event types sorted by name, then handlers sorted
// by name.
func (g *Graph) Nodes() []Node { return slices.Clone(g.nodes) }

// Edges returns every edge, sorted by source then target in node order.
func (g *Graph) Edges() []Edge {
	var out []Edge
	for from, tos := range g.adj {
		for _, to := range tos {
			out = append(out, Edge{From: g.nodes[from], To: g.nodes[to]})
		}
	}
	return out
}

// maxCycles bounds what [Graph.Cycles] reports: a dense graph can have
// exponentially many elementary cycles.
const maxCycles = 1000

// Cycles returns every elementary cycle of the graph (up to 1000), each as
// the alternating list of event types and handler names along it, starting
// with the smallest event type in it: [A h1 B h2] is A → h1 → B → h2 → A.
// Cycles are sorted by their first node, then by length, then by the nodes
// along them. An acyclic graph returns nil.
func (g *Graph) Cycles() [][]string {
	var out [][]string
	// Every cycle alternates events and handlers, and events come first in
	// node order, so the smallest node of a cycle is an event: enumerate the
	// cycles through each start node s that use only nodes after s.
	onPath := make([]bool, len(g.nodes))
	var path []int
	var walk func(start, v int)
	walk = func(start, v int) {
		if len(out) >= maxCycles {
			return
		}
		for _, w := range g.adj[v] {
			switch {
			case w == start:
				c := make([]string, len(path))
				for i, n := range path {
					c[i] = g.nodes[n].Name
				}
				out = append(out, c)
			case w > start && !onPath[w]:
				onPath[w] = true
				path = append(path, w)
				walk(start, w)
				path = path[:len(path)-1]
				onPath[w] = false
			}
		}
	}
	for s := range g.nodes {
		if g.nodes[s].Kind != KindEvent {
			break
		}
		onPath[s] = true
		path = append(path[:0], s)
		walk(s, s)
		onPath[s] = false
	}
	slices.SortStableFunc(out, func(a, b []string) int {
		if c := cmp.Compare(a[0], b[0]); c != 0 {
			return c
		}
		if c := cmp.Compare(len(a), len(b)); c != 0 {
			return c
		}
		return slices.Compare(a, b)
	})
	return out
}

// onCycle marks the nodes that are on some cycle.
func (g *Graph) onCycle() []bool {
	marked := make([]bool, len(g.nodes))
	for _, c := range g.Cycles() {
		for i, name := range c {
			k := KindEvent
			if i%2 == 1 {
				k = KindHandler
			}
			marked[g.index[key(k, name)]] = true
		}
	}
	return marked
}

func (g *Graph) id(i int) string {
	if g.nodes[i].Kind == KindEvent {
		return fmt.Sprintf("e%d", i)
	}
	return fmt.Sprintf("h%d", i)
}

func (g *Graph) handlerLabel(n Node, sep string) string {
	if n.Group == "" || n.Group == n.Name {
		return n.Name
	}
	return n.Name + sep + "group: " + n.Group
}

// Mermaid returns the graph as a Mermaid flowchart, left to right: event
// types as rounded boxes, handlers as rectangles labelled with their group,
// nodes on a cycle in red.
func (g *Graph) Mermaid() string {
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	esc := func(s string) string { return strings.ReplaceAll(s, `"`, "#quot;") }
	for i, n := range g.nodes {
		if n.Kind == KindEvent {
			fmt.Fprintf(&b, "    %s([\"%s\"])\n", g.id(i), esc(n.Name))
		} else {
			fmt.Fprintf(&b, "    %s[\"%s\"]\n", g.id(i), esc(g.handlerLabel(n, "<br/>")))
		}
	}
	for from, tos := range g.adj {
		for _, to := range tos {
			fmt.Fprintf(&b, "    %s --> %s\n", g.id(from), g.id(to))
		}
	}
	var cyc []string
	for i, on := range g.onCycle() {
		if on {
			cyc = append(cyc, g.id(i))
		}
	}
	if len(cyc) > 0 {
		b.WriteString("    classDef cycle stroke:#d33,stroke-width:2px\n")
		fmt.Fprintf(&b, "    class %s cycle\n", strings.Join(cyc, ","))
	}
	return b.String()
}

// DOT returns the graph in Graphviz DOT, left to right: event types as
// rounded boxes, handlers as ellipses labelled with their group, nodes on a
// cycle in red.
func (g *Graph) DOT() string {
	var b strings.Builder
	b.WriteString("digraph switchyard {\n    rankdir=LR;\n")
	q := func(s string) string {
		return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
	}
	marked := g.onCycle()
	for i, n := range g.nodes {
		attrs := ""
		if marked[i] {
			attrs = `, color="#dd3333"`
		}
		if n.Kind == KindEvent {
			fmt.Fprintf(&b, "    %s [label=%s, shape=box, style=rounded%s];\n", g.id(i), q(n.Name), attrs)
		} else {
			fmt.Fprintf(&b, "    %s [label=%s, shape=ellipse%s];\n", g.id(i), q(g.handlerLabel(n, "\n")), attrs)
		}
	}
	for from, tos := range g.adj {
		for _, to := range tos {
			fmt.Fprintf(&b, "    %s -> %s;\n", g.id(from), g.id(to))
		}
	}
	b.WriteString("}\n")
	return b.String()
}

// FormatVersion is the newest version of the topology file format:
// version 2 adds "events". [WriteJSON] writes version 1 when the graph
// describes no events, so that older readers still read such files.
const FormatVersion = 2

// ErrFormat is wrapped by [ReadJSON] errors about the file's content.
var ErrFormat = errors.New("graph: invalid topology file")

type fileHandler struct {
	Name      string   `json:"name"`
	Group     string   `json:"group,omitempty"`
	Topic     string   `json:"topic,omitempty"`
	Consumes  string   `json:"consumes"`
	Publishes []string `json:"publishes,omitempty"`
}

type fileEvent struct {
	Name    string          `json:"name"`
	Version int             `json:"version,omitempty"`
	Topic   string          `json:"topic,omitempty"`
	Keyed   bool            `json:"keyed,omitempty"`
	Schema  json.RawMessage `json:"schema,omitempty"`
}

type file struct {
	Version  int           `json:"version"`
	Handlers []fileHandler `json:"handlers"`
	Events   []fileEvent   `json:"events,omitempty"`
}

// WriteJSON writes the handlers of g as a topology file, the input of
// `switchyard graph --from FILE`:
//
//	{"version": 1, "handlers": [{"name": "inventory.reserve", "group": "inventory",
//	  "topic": "orders.order_placed", "consumes": "orders.order_placed",
//	  "publishes": ["orders.inventory_reserved"]}]}
//
// A graph with [Graph.WithEvents] descriptions adds them (version 2):
//
//	"events": [{"name": "orders.order_placed", "version": 1, "topic": "orders.order_placed",
//	  "keyed": true, "schema": {"type": "object", ...}}]
func WriteJSON(w io.Writer, g *Graph) error {
	f := file{Version: 1, Handlers: []fileHandler{}}
	for _, h := range g.handlers {
		f.Handlers = append(f.Handlers, fileHandler{Name: h.Name, Group: h.Group, Topic: h.Topic, Consumes: h.EventType, Publishes: h.Publishes})
	}
	for _, e := range g.Events() {
		if _, ok := g.events[e.Name]; ok {
			f.Version = 2
			f.Events = append(f.Events, fileEvent{Name: e.Name, Version: e.Version, Topic: e.Topic, Keyed: e.Keyed, Schema: e.Schema})
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(f); err != nil {
		return fmt.Errorf("graph: write topology: %w", err)
	}
	return nil
}

// ReadJSON reads a topology file written by [WriteJSON] and builds its
// graph. Unknown fields, a missing or newer version and handlers without a
// name or consumed type are errors wrapping [ErrFormat], all reported at once.
func ReadJSON(r io.Reader) (*Graph, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var f file
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	var errs error
	if f.Version < 1 || f.Version > FormatVersion {
		errs = errors.Join(errs, fmt.Errorf("version: %d, want 1..%d", f.Version, FormatVersion))
	}
	infos := make([]middleware.Info, 0, len(f.Handlers))
	for i, h := range f.Handlers {
		if h.Name == "" {
			errs = errors.Join(errs, fmt.Errorf("handlers[%d].name: required", i))
		}
		if h.Consumes == "" {
			errs = errors.Join(errs, fmt.Errorf("handlers[%d].consumes: required", i))
		}
		infos = append(infos, middleware.Info{Name: h.Name, Group: h.Group, Topic: h.Topic, EventType: h.Consumes, Publishes: h.Publishes})
	}
	events := make([]Event, 0, len(f.Events))
	described := map[string]bool{}
	for i, e := range f.Events {
		switch {
		case e.Name == "":
			errs = errors.Join(errs, fmt.Errorf("events[%d].name: required", i))
		case described[e.Name]:
			errs = errors.Join(errs, fmt.Errorf("events[%d].name: %q described twice", i, e.Name))
		}
		if e.Version < 0 {
			errs = errors.Join(errs, fmt.Errorf("events[%d].version: %d, want >= 1", i, e.Version))
		}
		described[e.Name] = true
		var schema bytes.Buffer // WriteJSON indented it: give back what was described
		if len(e.Schema) > 0 {
			_ = json.Compact(&schema, e.Schema) // valid: the decoder checked it
		}
		events = append(events, Event{Name: e.Name, Version: e.Version, Topic: e.Topic, Keyed: e.Keyed, Schema: schema.Bytes()})
	}
	if errs != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, errs)
	}
	g := Build(infos)
	if len(events) > 0 {
		g = g.WithEvents(events...)
	}
	return g, nil
}
