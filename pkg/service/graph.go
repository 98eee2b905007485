package service

import (
	"log/slog"
	"strings"

	"github.com/switchyard-go/switchyard/pkg/graph"
)

// Graph returns the event-flow graph of the registered handlers: which
// handler consumes which event type and which types it declared it may
// publish. Write it with [graph.WriteJSON] for `switchyard graph --from`.
func (s *Service) Graph() *graph.Graph { return graph.Build(s.Handlers()) }

// warnCycles logs a warning for every cycle of the event-flow graph: an
// event that can cause itself again is stopped only by the hop limit.
func (s *Service) warnCycles() {
	for _, c := range s.Graph().Cycles() {
		s.logger.Warn("service: event flow has a cycle; only the hop limit stops such a chain",
			slog.String("cycle", strings.Join(append(c, c[0]), " -> ")))
	}
}
