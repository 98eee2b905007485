package asyncapi

import (
	"bytes"
	"net/http"
	"time"
)

// Handler serves doc, a document from [Generate], as application/json to
// GET and HEAD and answers 405 to other methods. Mount it where the
// operator console wants it, e.g. at /asyncapi.json:
//
//	doc, err := asyncapi.Generate(svc.Graph(), cfg)
//	mux.Handle("/asyncapi.json", asyncapi.Handler(doc))
//
// Generate after every handler is registered: the document is a snapshot.
func Handler(doc []byte) http.Handler {
	doc = bytes.Clone(doc)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeContent(w, r, "asyncapi.json", time.Time{}, bytes.NewReader(doc))
	})
}
