package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/pkg/admin"
	"github.com/switchyard-go/switchyard/pkg/dlq"
	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/ops"
	"github.com/switchyard-go/switchyard/pkg/service"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const token = "test-token-0123456789"

type placed struct {
	OrderID string `json:"order_id"`
}

func (placed) EventType() string  { return "orders.order_placed" }
func (placed) EventVersion() int  { return 1 }
func (placed) EventTopic() string { return "orders" }
func (p placed) EventKey() string { return p.OrderID }

// running is a service on the memory broker whose handler fails while
// broken, with the admin API on its operations server.
type running struct {
	svc     *service.Service
	base    string
	broken  atomic.Bool
	handled atomic.Int32
}

func start(t *testing.T, write bool) *running {
	t.Helper()
	b, err := memory.New(memory.Config{NackBackoff: time.Millisecond, MaxNackBackoff: 20 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	srv, err := ops.New(ops.Config{Addr: "127.0.0.1:0", Admin: admin.Config{Enabled: true, Token: token, Write: write}})
	if err != nil {
		t.Fatal(err)
	}
	r := &running{}
	r.svc = service.New(b, srv.Option())
	if err := service.Handle(r.svc, "inventory.reserve", func(ctx context.Context, e placed) error {
		if r.broken.Load() {
			return failure.Permanent(errors.New("stock service down"))
		}
		r.handled.Add(1)
		return nil
	}, service.Group("inventory"), service.WithPolicy(service.Policy{DeadLetterOrder: service.DeadLetterOrderKey})); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	select {
	case <-r.svc.Ready():
	case err := <-done:
		t.Fatal(err)
	}
	r.base = "http://" + srv.Addr()
	return r
}

func call(t *testing.T, method, url, auth, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached in 10s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAuth(t *testing.T) {
	r := start(t, false)
	for _, ep := range []struct{ method, path, body string }{
		{"GET", "/admin/handlers", ""},
		{"GET", "/admin/dlq?group=inventory", ""},
		{"GET", "/admin/asyncapi.json", ""},
		{"POST", "/admin/dlq/purge", `{"group":"inventory"}`},
		{"GET", "/admin/nothing", ""},
	} {
		code, body := call(t, ep.method, r.base+ep.path, "", ep.body)
		if code != http.StatusUnauthorized || !strings.Contains(body, "bearer token required") {
			t.Errorf("%s %s without a token: %d %s, want 401", ep.method, ep.path, code, body)
		}
		for _, auth := range []string{"Bearer wrong-token-0123456789", "Basic " + token, token} {
			code, _ := call(t, ep.method, r.base+ep.path, auth, ep.body)
			if want := map[bool]int{true: http.StatusForbidden, false: http.StatusUnauthorized}[strings.HasPrefix(auth, "Bearer ")]; code != want {
				t.Errorf("%s %s with %q: %d, want %d", ep.method, ep.path, auth, code, want)
			}
		}
	}
	// Read-only: reads pass, every write is refused and changes nothing.
	if code, body := call(t, "GET", r.base+"/admin/handlers", "Bearer "+token, ""); code != http.StatusOK {
		t.Fatalf("read with the token: %d %s", code, body)
	}
	for _, path := range []string{"/admin/dlq/replay", "/admin/dlq/purge", "/admin/dlq/release"} {
		code, body := call(t, "POST", r.base+path, "Bearer "+token, `{"group":"inventory","key":"k"}`)
		if code != http.StatusForbidden || !strings.Contains(body, "http.admin.write") {
			t.Errorf("POST %s read-only: %d %s, want 403 naming http.admin.write", path, code, body)
		}
	}
	c, err := admin.NewClient(r.base, token, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Purge(context.Background(), "inventory.dead_letter", dlq.DrainOptions{}); !errors.Is(err, admin.ErrUnauthorized) {
		t.Errorf("client purge on a read-only API: %v, want ErrUnauthorized", err)
	}
}

func TestReadEndpoints(t *testing.T) {
	r := start(t, false)
	c, err := admin.NewClient(r.base, token, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	hs, err := c.Handlers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if hs.Broker != "memory" || len(hs.Handlers) != 1 || hs.Handlers[0].Handler != "inventory.reserve" ||
		hs.Handlers[0].Group != "inventory" || !strings.Contains(hs.Handlers[0].DeadLetter, "key order") {
		t.Fatalf("handlers: %+v", hs)
	}
	subs, err := c.Subscriptions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(subs.Subscriptions) != 1 || !subs.Subscriptions[0].Healthy || subs.Subscriptions[0].Topic != "orders" {
		t.Fatalf("subscriptions: %+v", subs)
	}
	code, body := call(t, "GET", r.base+"/admin/asyncapi.json", "Bearer "+token, "")
	var doc struct {
		AsyncAPI string         `json:"asyncapi"`
		Channels map[string]any `json:"channels"`
	}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &doc) != nil || doc.AsyncAPI != "3.0.0" || len(doc.Channels) == 0 {
		t.Fatalf("asyncapi.json: %d %.300s", code, body)
	}
	if code, body := call(t, "GET", r.base+"/admin/stats", "Bearer "+token, ""); code != http.StatusOK || !strings.Contains(body, `"dead_lettered"`) {
		t.Fatalf("stats: %d %s", code, body)
	}
	// Bad input: a clear 400 naming the parameter.
	if code, body := call(t, "GET", r.base+"/admin/dlq?group=inventory&since=yesterday", "Bearer "+token, ""); code != http.StatusBadRequest || !strings.Contains(body, "since") {
		t.Fatalf("bad since: %d %s", code, body)
	}
	if code, body := call(t, "GET", r.base+"/admin/dlq", "Bearer "+token, ""); code != http.StatusBadRequest || !strings.Contains(body, "topic=") {
		t.Fatalf("no topic: %d %s", code, body)
	}
}

// TestDeadLetterOperations: through the API, an operator sees a dead
// letter of the running service's memory broker, replays it to the
// handler, which handles it, and releases a parked key.
func TestDeadLetterOperations(t *testing.T) {
	r := start(t, true)
	c, err := admin.NewClient(r.base, token, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dl := service.DeadLetterTopicFor("inventory")
	r.broken.Store(true)
	for _, id := range []string{"k1", "k1", "k2"} {
		if err := r.svc.Publish(ctx, placed{OrderID: id}); err != nil {
			t.Fatal(err)
		}
	}
	var s dlq.Summary
	waitFor(t, "three dead letters", func() bool {
		s, err = c.List(ctx, dl, dlq.Filter{}, true)
		return err == nil && s.Count == 3
	})
	keys, err := c.Parked(ctx, "")
	if err != nil || len(keys) != 2 {
		t.Fatalf("parked: %v %+v, want k1 and k2", err, keys)
	}
	l, err := c.Show(ctx, dl, s.Letters[0].ID)
	if err != nil || l.Reason != "permanent" || !strings.Contains(l.Error, "stock service down") {
		t.Fatalf("show: %v %+v", err, l)
	}
	if _, err := c.Show(ctx, dl, "nope"); !errors.Is(err, dlq.ErrNotFound) {
		t.Fatalf("show unknown: %v, want ErrNotFound", err)
	}

	// Release k2: its next message is handled, not parked.
	r.broken.Store(false)
	if err := c.Release(ctx, "inventory", "k2"); err != nil {
		t.Fatal(err)
	}
	if err := r.svc.Publish(ctx, placed{OrderID: "k2"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "k2 handled after its release", func() bool { return r.handled.Load() == 1 })

	// The body docs/operations.md shows, as curl sends it.
	code, body := call(t, "POST", r.base+"/admin/dlq/replay", "Bearer "+token,
		`{"group":"inventory","filter":{"reasons":["permanent"]},"rate":50,"dry_run":true}`)
	if code != http.StatusOK || !strings.Contains(body, `"count":2`) || !strings.Contains(body, `"dry_run":true`) {
		t.Fatalf("raw dry run: %d %s", code, body)
	}
	for _, bad := range []string{`{"group":"inventory","limt":3}`, `{"group":"inventory","idle":"soon"}`, `{}`, `not json`} {
		if code, body := call(t, "POST", r.base+"/admin/dlq/purge", "Bearer "+token, bad); code != http.StatusBadRequest {
			t.Errorf("purge %s: %d %s, want 400", bad, code, body)
		}
	}
	if n, _ := c.List(ctx, dl, dlq.Filter{}, false); n.Count != 3 {
		t.Fatalf("bad requests changed the dead letters: %d left", n.Count)
	}
	dry, err := c.Replay(ctx, dl, dlq.DrainOptions{Filter: dlq.Filter{Reasons: []string{"permanent"}}, DryRun: true})
	if err != nil || dry.Count != 2 {
		t.Fatalf("dry run: %v %+v, want the two permanent failures", err, dry)
	}
	res, err := c.Replay(ctx, dl, dlq.DrainOptions{Filter: dlq.Filter{Reasons: []string{"permanent"}}, Idle: time.Second})
	if err != nil || res.Count != 2 {
		t.Fatalf("replay: %v %+v", err, res)
	}
	waitFor(t, "the replays handled", func() bool { return r.handled.Load() == 3 })
	res, err = c.Purge(ctx, dl, dlq.DrainOptions{Idle: time.Second})
	if err != nil || res.Count != 1 {
		t.Fatalf("purge the key_parked one: %v %+v", err, res)
	}
	if _, err := c.Replay(ctx, dl, dlq.DrainOptions{Limit: -1}); !errors.Is(err, dlq.ErrInvalidOption) || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("bad limit: %v", err)
	}
}

// TestPauseAndResume: with write enabled, POST .../pause stops the handler
// taking messages (what is published meanwhile waits on the broker) and
// .../resume lets it go on; an unknown handler is 404; read-only refuses.
func TestPauseAndResume(t *testing.T) {
	r := start(t, true)
	c, err := admin.NewClient(r.base, token, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	f, err := c.Pause(ctx, "inventory.reserve")
	if err != nil || !f.Paused || f.Handler != "inventory.reserve" {
		t.Fatalf("Pause: %+v, %v", f, err)
	}
	if fs, err := c.Flow(ctx); err != nil || len(fs) != 1 || !fs[0].Paused {
		t.Fatalf("Flow while paused: %+v, %v", fs, err)
	}
	if err := r.svc.Publish(ctx, placed{OrderID: "o-paused"}); err != nil {
		t.Fatal(err)
	}
	// Nothing to wait on for "not handled": give the dispatcher a moment
	// in which a handler that ignored the pause would have run.
	time.Sleep(200 * time.Millisecond)
	if n := r.handled.Load(); n != 0 {
		t.Fatalf("handled %d while paused", n)
	}
	if f, err := c.Resume(ctx, "inventory.reserve"); err != nil || f.Paused {
		t.Fatalf("Resume: %+v, %v", f, err)
	}
	waitFor(t, "the message published while paused handled after resume", func() bool { return r.handled.Load() == 1 })

	if code, body := call(t, "POST", r.base+"/admin/handlers/inventory.reserv/pause", "Bearer "+token, ""); code != http.StatusNotFound || !strings.Contains(body, "inventory.reserve") {
		t.Errorf("pause of an unknown handler: %d %s, want 404 listing the handlers", code, body)
	}
	ro := start(t, false)
	if code, body := call(t, "POST", ro.base+"/admin/handlers/inventory.reserve/pause", "Bearer "+token, ""); code != http.StatusForbidden || !strings.Contains(body, "http.admin.write") {
		t.Errorf("pause on a read-only API: %d %s, want 403", code, body)
	}
	if fs := ro.svc.Flow(); len(fs) != 1 || fs[0].Paused {
		t.Errorf("read-only pause changed the flow: %+v", fs)
	}
}
