package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
)

// demo runs the service and the HTTP API on a loopback port and walks one
// order through it, rules broken on the way, printing each answer.
func demo(ctx context.Context, a *app, stdout io.Writer) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: a.handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	app, err := a.start(ctx)
	if err != nil {
		return err
	}
	flowErr := walkOrder(ctx, "http://"+ln.Addr().String(), stdout)
	if err := app.stop(); err != nil && flowErr == nil {
		flowErr = err
	}
	if ctx.Err() != nil {
		return errInterrupted
	}
	return flowErr
}

// step is one request of the demo and the status it must get.
type step struct {
	what, method, path, body string
	want                     int
}

// walkOrder sends the demo's requests to the API at base.
func walkOrder(ctx context.Context, base string, out io.Writer) error {
	id := "order-" + uuid.NewString()[:8] // new on every run: a PostgreSQL store keeps old ones
	o := "/orders/" + id
	steps := []step{
		{"place an order", "POST", "/orders", `{"order_id": "` + id + `", "customer_id": "alice", "items": [{"sku": "book", "qty": 2, "price_cents": 1250}, {"sku": "pen", "qty": 1, "price_cents": 300}]}`, http.StatusCreated},
		{"place an empty order", "POST", "/orders", `{"customer_id": "bob", "items": []}`, http.StatusUnprocessableEntity},
		{"ship before payment", "POST", o + "/ship", "", http.StatusConflict},
		{"pay", "POST", o + "/pay", "", http.StatusOK},
		{"pay twice", "POST", o + "/pay", "", http.StatusConflict},
		{"ship", "POST", o + "/ship", "", http.StatusOK},
		{"read the summary at version 3", "GET", o + "?min_version=3", "", http.StatusOK},
		{"read the stream", "GET", o + "/events", "", http.StatusOK},
		{"rebuild the read model", "POST", "/rebuild", "", http.StatusOK},
		{"read the rebuilt summary", "GET", o + "?min_version=3", "", http.StatusOK},
	}
	for i, s := range steps {
		status, body, err := call(ctx, s.method, base+s.path, s.body)
		if err != nil {
			return fmt.Errorf("step %d, %s: %w", i+1, s.what, err)
		}
		fmt.Fprintf(out, "%2d. %-30s %s %s -> %d %s\n", i+1, s.what, s.method, s.path, status, brief(body))
		if status != s.want {
			return fmt.Errorf("step %d, %s: status %d, want %d", i+1, s.what, status, s.want)
		}
	}
	fmt.Fprintf(out, "demo: %d steps answered as expected: order %s placed, paid and shipped; 3 rules refused; read model rebuilt\n", len(steps), id)
	return nil
}

func call(ctx context.Context, method, url, body string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// brief shortens a JSON answer to one line: a stream to its event types.
func brief(body []byte) string {
	var evs []storedEvent
	if json.Unmarshal(body, &evs) == nil && len(evs) > 0 {
		types := make([]string, len(evs))
		for i, e := range evs {
			types[i] = fmt.Sprintf("v%d %s", e.Version, e.Type)
		}
		return "[" + strings.Join(types, ", ") + "]"
	}
	return string(bytes.TrimSpace(body))
}
