package service

import (
	"log/slog"
	"strings"

	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/eventschema"
	"github.com/switchyard-go/switchyard/pkg/graph"
)

// Graph returns the event-flow graph of the registered handlers: which
// handler consumes which event type and which types it declared it may
// publish, each event type described with its version, topic (namespace
// included), key and payload schema from the registry. Write it with
// [graph.WriteJSON] for `switchyard graph --from`.
func (s *Service) Graph() *graph.Graph {
	var events []graph.Event
	for _, e := range s.registry.Events() {
		d := graph.Event{Name: e.EventType(), Version: e.EventVersion(), Topic: s.namespace + event.TopicOf(e)}
		_, d.Keyed = e.(event.Keyed)
		// A type the reflector cannot describe still belongs in the graph,
		// only without a schema.
		d.Schema, _ = eventschema.Of(e)
		events = append(events, d)
	}
	return graph.Build(s.Handlers()).WithEvents(events...)
}

// warnCycles logs a warning for every cycle of the event-flow graph: an
// event that can cause itself again is stopped only by the hop limit.
func (s *Service) warnCycles() {
	for _, c := range graph.Build(s.Handlers()).Cycles() { // no schemas needed
		s.logger.Warn("service: event flow has a cycle; only the hop limit stops such a chain",
			slog.String("cycle", strings.Join(append(c, c[0]), " -> ")))
	}
}
