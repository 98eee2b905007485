package admin_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/switchyard-go/switchyard/config"
	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/internal/browsertest"
	"github.com/switchyard-go/switchyard/pkg/admin"
	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/ops"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// EnvUpdateScreenshots set to 1 makes the browser tests on the memory
// broker write the dashboard screenshots shown in docs/operations.md.
const EnvUpdateScreenshots = "SWITCHYARD_UPDATE_SCREENSHOTS"

type reserved struct {
	OrderID string `json:"order_id"`
}

func (reserved) EventType() string  { return "orders.inventory_reserved" }
func (reserved) EventVersion() int  { return 1 }
func (reserved) EventTopic() string { return "inventory" }
func (r reserved) EventKey() string { return r.OrderID }

// shop is a running service behind the dashboard: inventory.reserve
// consumes orders and publishes reservations (failing permanently while
// broken), shipping.notify consumes the reservations.
type shop struct {
	svc      *service.Service
	base     string
	broken   atomic.Bool
	reserved atomic.Int32 // orders inventory.reserve handled
	notified atomic.Int32 // reservations shipping.notify handled
}

// dashboardBrokers are the brokers the dashboard is tested on; amqp and
// kafka skip without their broker (and fail under CI).
var dashboardBrokers = []struct {
	name string
	cfg  func(testing.TB) config.Config
}{
	{"memory", func(testing.TB) config.Config {
		c := config.Defaults()
		c.Broker.Memory.NackBackoff = time.Millisecond
		c.Broker.Memory.MaxNackBackoff = 20 * time.Millisecond
		return c
	}},
	{"rabbitmq", func(tb testing.TB) config.Config {
		c := config.Defaults()
		c.Broker.Type = config.BrokerAMQP
		c.Broker.AMQP.URL = brokertest.AMQPURL(tb)
		return c
	}},
	{"kafka", func(tb testing.TB) config.Config {
		c := config.Defaults()
		c.Broker.Type = config.BrokerKafka
		c.Broker.Kafka.Brokers = strings.Split(brokertest.KafkaBrokers(tb), ",")
		return c
	}},
}

func startShop(t *testing.T, cfg config.Config, write bool) *shop {
	t.Helper()
	b, err := config.Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	srv, err := ops.New(ops.Config{Addr: "127.0.0.1:0", Admin: admin.Config{Enabled: true, Token: token, Write: write}})
	if err != nil {
		t.Fatal(err)
	}
	s := &shop{}
	// A namespace of its own: on the shared brokers, earlier runs' and
	// other tests' messages stay out.
	s.svc = service.New(b, srv.Option(), service.WithNamespace("dash-"+strings.ToLower(rand.Text()[:8])+"."))
	if err := service.Handle(s.svc, "inventory.reserve", func(ctx context.Context, e placed) error {
		if s.broken.Load() {
			return fmt.Errorf("reserve %s: %w", e.OrderID, failure.Permanent(errors.New("stock service down")))
		}
		if err := s.svc.Publish(ctx, reserved(e)); err != nil {
			return err
		}
		s.reserved.Add(1)
		return nil
	}, service.Group("inventory"), service.Publishes(reserved{})); err != nil {
		t.Fatal(err)
	}
	if err := service.Handle(s.svc, "shipping.notify", func(ctx context.Context, e reserved) error {
		s.notified.Add(1)
		return nil
	}, service.Group("shipping")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	select {
	case <-s.svc.Ready():
	case err := <-done:
		t.Fatal(err)
	case <-time.After(60 * time.Second):
		t.Fatal("service not ready in 60s")
	}
	s.base = "http://" + srv.Addr()
	return s
}

func (s *shop) order(t *testing.T, id string) {
	t.Helper()
	if err := s.svc.Publish(context.Background(), placed{OrderID: id}); err != nil {
		t.Fatal(err)
	}
}

// do runs browser actions, failing the test with what they were for.
func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("browser: %s: %v", what, err)
	}
}

// waitPage waits until the JavaScript expression is true in the page.
func waitPage(t *testing.T, ctx context.Context, what, expr string, timeout time.Duration) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(timeout))); err != nil {
		text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("main").innerText`))
		t.Fatalf("browser: %s: not seen in %s (%v); the page shows:\n%s", what, timeout, err, text)
	}
}

func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached in %s", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if os.Getenv(EnvUpdateScreenshots) != "1" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join("..", "..", "docs", "img", name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", path)
}

// rowsOf is a page expression: the dead-letter rows of the list.
const rowsOf = `document.querySelectorAll("#letters tbody tr[data-id]")`

// TestDashboard drives the dashboard in headless Chromium against a
// running service on each broker: it signs in with the token, sees the
// handlers and the event flow, sees a dead letter appear after a handler
// failed, inspects it, replays it behind the confirmation (Escape first
// cancels) and sees it handled and gone; then purges another.
func TestDashboard(t *testing.T) {
	browsertest.Chromium(t) // skip or fail before starting anything
	for _, bk := range dashboardBrokers {
		t.Run(bk.name, func(t *testing.T) {
			s := startShop(t, bk.cfg(t), true)
			ctx := browsertest.New(t, 4*time.Minute)
			long := 90 * time.Second // Kafka: consumer groups join, browses read topics

			for i := range 5 {
				s.order(t, fmt.Sprintf("ok-%d", i))
			}
			waitUntil(t, "5 orders handled", long, func() bool { return s.notified.Load() == 5 })

			do(t, ctx, "open and sign in",
				chromedp.Navigate(s.base+"/admin/ui/"),
				chromedp.WaitVisible(chromedp.ID("token")),
				chromedp.SendKeys(chromedp.ID("token"), token+kb.Enter))
			waitPage(t, ctx, "the handlers",
				`[...document.querySelectorAll("#handlers tbody td strong")].map(e => e.textContent).join() === "inventory.reserve,shipping.notify"`, long)
			waitPage(t, ctx, "the consumer groups",
				`document.querySelectorAll("#groups tbody tr").length === 2 && document.querySelector("#c-handled").textContent === "10"`, long)
			if bk.name != "memory" { // memory cannot say its backlog
				waitPage(t, ctx, "each group's backlog",
					`[...document.querySelectorAll("#groups tbody tr")].every(r => /^\d/.test(r.cells[4].textContent))`, long)
			}
			waitPage(t, ctx, "the rates from two refreshes", `document.querySelector("#r-handled").textContent.endsWith(" /s")`, long)
			screenshot(t, ctx, "dashboard-overview.png")

			do(t, ctx, "open the event flow", chromedp.Click(chromedp.ID("tab-graph")))
			waitPage(t, ctx, "the graph's nodes",
				`["orders.order_placed", "inventory.reserve", "orders.inventory_reserved", "shipping.notify"].every(n => document.querySelector('#graph svg g[data-name="' + n + '"]')) && document.querySelectorAll("#graph svg path.edge").length === 3`, long)
			if os.Getenv(EnvUpdateScreenshots) == "1" {
				screenshot(t, ctx, "dashboard-graph.png")
			}

			// A handler fails: the dead letter shows up in the browser.
			s.broken.Store(true)
			s.order(t, "bad-1")
			do(t, ctx, "open the dead letters", chromedp.Click(chromedp.ID("tab-deadletters")))
			waitPage(t, ctx, "the inventory group selected", `document.querySelector("#dl-group").value.endsWith("inventory")`, long)
			waitPage(t, ctx, "a dead letter in the list",
				rowsOf+`.length === 1 && `+rowsOf+`[0].cells[2].textContent === "inventory.reserve" && `+rowsOf+`[0].cells[3].textContent === "permanent"`, long)
			waitPage(t, ctx, "the badge", `document.querySelector("#dl-badge").textContent === "1"`, long)

			do(t, ctx, "show the dead letter", chromedp.Click(chromedp.CSS("#letters tbody tr[data-id] button")))
			waitPage(t, ctx, "its detail with the error chain",
				`!document.querySelector("#letter").hidden && [...document.querySelectorAll("#letter-chain li")].map(e => e.textContent).join("|") === "reserve bad-1|permanent|stock service down" && document.querySelector("#letter-payload").textContent.includes('"order_id": "bad-1"')`, long)
			screenshot(t, ctx, "dashboard-deadletters.png")
			do(t, ctx, "close the detail with Escape", chromedp.KeyEvent(kb.Escape))
			waitPage(t, ctx, "the detail closed", `document.querySelector("#letter").hidden`, long)

			// Replay: the dialog shows the dry run's count; Escape cancels.
			s.broken.Store(false)
			waitPage(t, ctx, "Replay enabled", `!document.querySelector("#dl-replay").disabled`, long)
			do(t, ctx, "press Replay", chromedp.Click(chromedp.ID("dl-replay")))
			waitPage(t, ctx, "the confirmation with the dry-run count",
				`document.querySelector("#confirm").open && document.querySelector("#confirm-title").textContent === "Replay 1 dead letter?" && document.activeElement.id === "confirm-ok"`, long)
			do(t, ctx, "cancel with Escape", chromedp.KeyEvent(kb.Escape))
			waitPage(t, ctx, "the dialog closed, nothing replayed",
				`!document.querySelector("#confirm").open && document.querySelector("#dl-result").textContent === "Replay cancelled."`, long)
			if n := s.reserved.Load(); n != 5 {
				t.Fatalf("after a cancelled replay inventory.reserve handled %d orders, want 5", n)
			}
			waitPage(t, ctx, "the dead letter still listed", rowsOf+`.length === 1`, long)

			waitPage(t, ctx, "Replay enabled again", `!document.querySelector("#dl-replay").disabled`, long)
			do(t, ctx, "press Replay again", chromedp.Click(chromedp.ID("dl-replay")))
			waitPage(t, ctx, "the confirmation", `document.querySelector("#confirm").open && document.activeElement.id === "confirm-ok"`, long)
			do(t, ctx, "confirm with Enter", chromedp.KeyEvent(kb.Enter))
			waitUntil(t, "the replayed order handled", long, func() bool { return s.reserved.Load() == 6 && s.notified.Load() == 6 })
			waitPage(t, ctx, "the list empty",
				rowsOf+`.length === 0 && document.querySelector("#letters tbody td.empty") !== null && document.querySelector("#dl-result").textContent.startsWith("Replayed 1 dead letter")`, long)

			// Purge: gone without being handled.
			s.broken.Store(true)
			s.order(t, "bad-2")
			waitPage(t, ctx, "a second dead letter", rowsOf+`.length === 1`, long)
			waitPage(t, ctx, "Purge enabled", `!document.querySelector("#dl-purge").disabled`, long)
			do(t, ctx, "press Purge", chromedp.Click(chromedp.ID("dl-purge")))
			waitPage(t, ctx, "the purge confirmation", `document.querySelector("#confirm").open && document.querySelector("#confirm-text").textContent.startsWith("Purge 1 dead letter of ")`, long)
			do(t, ctx, "confirm by clicking", chromedp.Click(chromedp.ID("confirm-ok")))
			waitPage(t, ctx, "the list empty after the purge",
				rowsOf+`.length === 0 && document.querySelector("#dl-result").textContent === "Purged 1 dead letter."`, long)
			s.broken.Store(false)
			if n := s.reserved.Load(); n != 6 {
				t.Errorf("after the purge inventory.reserve handled %d orders, want 6 (a purged dead letter is not handled)", n)
			}
		})
	}
}

// TestDashboardReadOnly: without http.admin.write the page says so and
// offers no replay or purge; a wrong token is refused with a message.
func TestDashboardReadOnly(t *testing.T) {
	browsertest.Chromium(t)
	s := startShop(t, dashboardBrokers[0].cfg(t), false)
	ctx := browsertest.New(t, time.Minute)
	do(t, ctx, "sign in with a wrong token",
		chromedp.Navigate(s.base+"/admin/ui/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), "not-the-token-at-all"+kb.Enter))
	waitPage(t, ctx, "the refusal", `!document.querySelector("#login").hidden && document.querySelector("#login-error").textContent === "That token is wrong."`, 10*time.Second)

	s.broken.Store(true)
	s.order(t, "bad-1")
	do(t, ctx, "sign in", chromedp.SendKeys(chromedp.ID("token"), token+kb.Enter), chromedp.Click(chromedp.ID("tab-deadletters")))
	waitPage(t, ctx, "the dead letter", rowsOf+`.length === 1`, 20*time.Second)
	waitPage(t, ctx, "replay and purge disabled with a note",
		`document.querySelector("#dl-replay").disabled && document.querySelector("#dl-purge").disabled && !document.querySelector("#dl-readonly").hidden`, 10*time.Second)
}

// TestDashboardFiles: the static files are served without a token, hold
// no data, and keep to their own origin.
func TestDashboardFiles(t *testing.T) {
	s := startShop(t, dashboardBrokers[0].cfg(t), false)
	for _, p := range []string{"/admin/ui/", "/admin/ui/app.js", "/admin/ui/app.css"} {
		resp, err := http.Get(s.base + p)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s without a token: %d, want 200", p, resp.StatusCode)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "connect-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q, want only its own origin", p, csp)
		}
	}
	code, body := call(t, "GET", s.base+"/admin/ui/", "", "")
	if code != http.StatusOK || strings.Contains(body, "inventory.reserve") || strings.Contains(body, token) {
		t.Errorf("GET /admin/ui/: %d, and it names the service's handlers or token: %s", code, body)
	}
	for _, p := range []string{"/admin/graph", "/admin/info"} {
		if code, _ := call(t, "GET", s.base+p, "", ""); code != http.StatusUnauthorized {
			t.Errorf("GET %s without a token: %d, want 401", p, code)
		}
	}
	code, body = call(t, "GET", s.base+"/admin/info", "Bearer "+token, "")
	if code != http.StatusOK || body != `{"broker":"memory","write":false}`+"\n" {
		t.Errorf("GET /admin/info: %d %s", code, body)
	}
	code, body = call(t, "GET", s.base+"/admin/graph", "Bearer "+token, "")
	if code != http.StatusOK || !strings.Contains(body, `"publishes": [`) || !strings.Contains(body, `"name": "shipping.notify"`) {
		t.Errorf("GET /admin/graph: %d %s", code, body)
	}
}
