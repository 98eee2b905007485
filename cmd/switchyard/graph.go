package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/switchyard-go/switchyard/pkg/graph"
)

func (a *app) graphCmd() *cobra.Command {
	var from, format string
	cmd := &cobra.Command{
		Use:   "graph",
		Short: "Draw a service's event flow (Mermaid or Graphviz DOT)",
		Long: `Draw the event-flow graph of a service: event types, the handlers that consume
them and the event types each handler may publish. The CLI cannot see a
service's handlers, so the service writes its topology as JSON
(graph.WriteJSON(w, svc.Graph())) and this command reads it from --from FILE
or stdin.

Cycles (an event that can cause itself again, stopped only by the hop limit)
are drawn in red and listed on stderr.`,
		Example: `  switchyard graph --from topology.json
  switchyard graph --from topology.json --format dot | dot -Tsvg > flow.svg
  orders --write-topology - | switchyard graph`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "mermaid" && format != "dot" {
				return usageErr("--format: %q, want mermaid or dot", format)
			}
			var in io.Reader
			switch {
			case from != "" && from != "-":
				f, err := os.Open(from)
				if err != nil {
					return usageErr("--from: %w", err)
				}
				defer f.Close()
				in = f
			case from == "-" || !isTerminal(a.stdin):
				in = a.stdin
			default:
				return usageErr("give the topology file written by the service with --from FILE, or pipe it on stdin")
			}
			g, err := graph.ReadJSON(in)
			if err != nil {
				return err
			}
			out := g.Mermaid()
			if format == "dot" {
				out = g.DOT()
			}
			cycles := g.Cycles()
			if a.json {
				if cycles == nil {
					cycles = [][]string{}
				}
				return a.printJSON(map[string]any{"format": format, "graph": out, "cycles": cycles})
			}
			for _, c := range cycles {
				fmt.Fprintf(a.stderr, "warning: event-flow cycle: %s -> %s\n", strings.Join(c, " -> "), c[0])
			}
			_, err = io.WriteString(a.stdout, out)
			return err
		},
	}
	cmd.Flags().StringVarP(&from, "from", "f", "", "topology `file` written by the service (graph.WriteJSON); - or none for stdin")
	cmd.Flags().StringVar(&format, "format", "mermaid", "output `format`: mermaid or dot")
	return cmd
}
