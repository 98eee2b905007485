package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/switchyard-go/switchyard/pkg/asyncapi"
	"github.com/switchyard-go/switchyard/pkg/graph"
)

func (a *app) graphCmd() *cobra.Command {
	var from, format, apiVersion string
	cmd := &cobra.Command{
		Use:   "graph",
		Short: "Draw a service's event flow (Mermaid or Graphviz DOT) or write its AsyncAPI document",
		Long: `Draw the event-flow graph of a service: event types, the handlers that consume
them and the event types each handler may publish. The CLI cannot see a
service's handlers, so the service writes its topology as JSON
(graph.WriteJSON(w, svc.Graph())) and this command reads it from --from FILE
or stdin.

Cycles (an event that can cause itself again, stopped only by the hop limit)
are drawn in red and listed on stderr.

--format asyncapi writes the service's AsyncAPI 3.0 document instead (JSON):
channels for its topics, its handlers' receive and declared send operations,
messages with the payload schemas of its event types and the header
contract. The servers and the Kafka or AMQP bindings come from the
configuration (--config), as the services lay out their topics, exchanges
and queues; the in-memory broker has none.`,
		Example: `  switchyard graph --from topology.json
  switchyard graph --from topology.json --format dot | dot -Tsvg > flow.svg
  orders --write-topology - | switchyard graph
  orders --write-topology - | switchyard graph --format asyncapi --config kafka.yaml > asyncapi.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "mermaid" && format != "dot" && format != "asyncapi" {
				return usageErr("--format: %q, want mermaid, dot or asyncapi", format)
			}
			var apiCfg asyncapi.Config
			if format == "asyncapi" {
				cfg, err := a.loadConfig()
				if err != nil {
					return err
				}
				apiCfg = cfg.AsyncAPI(apiVersion)
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
			var out string
			switch format {
			case "mermaid":
				out = g.Mermaid()
			case "dot":
				out = g.DOT()
			case "asyncapi":
				doc, err := asyncapi.Generate(g, apiCfg)
				if err != nil {
					return err
				}
				out = string(doc)
			}
			cycles := g.Cycles()
			if a.json {
				if cycles == nil {
					cycles = [][]string{}
				}
				res := map[string]any{"format": format, "graph": out, "cycles": cycles}
				if format == "asyncapi" { // a document, not text: embed it as JSON
					res["graph"] = json.RawMessage(out)
				}
				return a.printJSON(res)
			}
			for _, c := range cycles {
				fmt.Fprintf(a.stderr, "warning: event-flow cycle: %s -> %s\n", strings.Join(c, " -> "), c[0])
			}
			_, err = io.WriteString(a.stdout, out)
			return err
		},
	}
	cmd.Flags().StringVarP(&from, "from", "f", "", "topology `file` written by the service (graph.WriteJSON); - or none for stdin")
	cmd.Flags().StringVar(&format, "format", "mermaid", "output `format`: mermaid, dot or asyncapi")
	cmd.Flags().StringVar(&apiVersion, "api-version", "", "with --format asyncapi: the document's info.version, the service's release (default 0.0.0)")
	return cmd
}
