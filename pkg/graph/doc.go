// Package graph is the event-flow graph of a Switchyard application: which
// handler consumes which event type and which event types it may publish.
//
// Build it from a running service's handlers ([service.Service.Handlers] or
// [service.Service.Graph]):
//
//	g := graph.Build(svc.Handlers())
//	for _, c := range g.Cycles() {
//		log.Printf("event loop: %s", strings.Join(c, " -> "))
//	}
//	fmt.Println(g.Mermaid())
//
// # Nodes and edges
//
// The graph has two kinds of nodes, event types and handlers, and two kinds
// of edges: event type → handler (the handler consumes it) and handler →
// event type (the handler declared with service.Publishes that it may
// publish it). Edges follow event types, not topics: an event published to
// another topic with service.ToTopic is drawn as if it went to its own.
//
// # Cycles
//
// A cycle (A → h1 → B → h2 → A) means an event can cause itself again; the
// runtime's hop limit stops such chains, so a cycle is usually a design
// mistake worth a warning at startup. [Graph.Cycles] lists every elementary
// cycle in a stable order.
//
// # Topology files
//
// The operator CLI cannot see an application's handlers, so an application
// writes its topology with [WriteJSON] and `switchyard graph --from FILE`
// reads it back with [ReadJSON].
//
// # Event descriptions
//
// [Graph.WithEvents] adds what the edges do not need but a contract for
// other services does: each event type's version, topic, whether it is
// keyed and the JSON Schema of its payload. [service.Service.Graph] adds
// them from its event registry; topology files carry them (version 2), so
// that `switchyard graph --format asyncapi` can write an AsyncAPI document
// without the application's Go types.
package graph
