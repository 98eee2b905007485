package admin

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"

	"github.com/switchyard-go/switchyard/pkg/graph"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// UIPrefix is the path the web dashboard is served under.
const UIPrefix = Prefix + "ui/"

// The dashboard is plain HTML, CSS and JavaScript: no framework, no build
// step, nothing fetched from another origin.
//
//go:embed ui
var uiFiles embed.FS

// dashboard serves the dashboard's static files. They hold no data, so
// they are served without the token; the page asks for it and sends it to
// the JSON API, which checks it.
func dashboard() http.Handler {
	sub, err := fs.Sub(uiFiles, "ui")
	if err != nil {
		panic(err) // the embedded directory is fixed at build time
	}
	files := http.StripPrefix(UIPrefix, http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// Only our own scripts, styles and API; no framing by other sites.
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}

// Info is the answer of GET /admin/info: what the dashboard needs to know
// about the API itself.
type Info struct {
	// Broker is the broker's name: memory, amqp, kafka.
	Broker string `json:"broker"`
	// Write is http.admin.write: whether replay, purge and release are
	// allowed.
	Write bool `json:"write"`
}

func (h *handler) info(_ *http.Request, svc *service.Service) (any, error) {
	return Info{Broker: svc.Broker().Name(), Write: h.cfg.Write}, nil
}

// graphJSON answers GET /admin/graph with the event-flow graph as a
// topology file (graph.WriteJSON), the dashboard's input for drawing it.
func (h *handler) graphJSON(_ *http.Request, svc *service.Service) (any, error) {
	var buf bytes.Buffer
	if err := graph.WriteJSON(&buf, svc.Graph()); err != nil {
		return nil, fmt.Errorf("admin: graph: %w", err)
	}
	return json.RawMessage(buf.Bytes()), nil
}
