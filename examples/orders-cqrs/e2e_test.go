package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/switchyard-go/switchyard/adapters/postgres"
	"github.com/switchyard-go/switchyard/internal/brokertest"
)

func suffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// isolate gives the test its own topics, consumer groups and tables on
// the shared brokers and database.
func isolate(t *testing.T) string {
	s := suffix()
	t.Setenv("SWITCHYARD_SERVICE_NAMESPACE", "cqrs-"+s+".")
	t.Setenv("SWITCHYARD_APP_EVENTS_TABLE", "cqrs_events_"+s)
	t.Setenv("SWITCHYARD_APP_READ_MODEL", "cqrs_summaries_"+s)
	t.Setenv("SWITCHYARD_APP_COMMAND_TIMEOUT", "30s")
	return s
}

// usePostgres keeps the events and the read model in the real PostgreSQL
// and drops the test's tables at the end.
func usePostgres(t *testing.T) {
	url := brokertest.PostgresURL(t)
	t.Setenv("SWITCHYARD_POSTGRES_DSN", url)
}

// startApp opens the example as configured by file and the environment,
// runs it, and serves its API on an httptest server.
func startApp(t *testing.T, file string, before ...func(*app)) (string, *app) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	env, err := open(ctx, file, logger)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	a, err := newApp(env, logger)
	if err != nil {
		cancel()
		env.close()
		t.Fatal(err)
	}
	for _, fn := range before {
		fn(a)
	}
	started, err := a.start(ctx)
	if err != nil {
		cancel()
		env.close()
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.handler())
	t.Cleanup(func() {
		srv.Close()
		cancel()
		if err := started.stop(); err != nil {
			t.Errorf("run: %v", err)
		}
		dropTables(t, env)
		env.close()
	})
	return srv.URL, a
}

// request sends a request and decodes the JSON answer into out (if not
// nil), returning the status.
func request(t *testing.T, method, url, body string, header map[string]string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %d %q: %v", method, url, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

type apiError struct {
	Error string `json:"error"`
}

// expectRefusal sends a command that must be refused with status and an
// error that says why.
func expectRefusal(t *testing.T, method, url, body string, status int, why string) {
	t.Helper()
	var e apiError
	if got := request(t, method, url, body, nil, &e); got != status || !strings.Contains(e.Error, why) {
		t.Errorf("%s %s: %d %q, want %d saying %q", method, url, got, e.Error, status, why)
	}
}

const aliceOrder = `{"order_id": "%s", "customer_id": "alice", "items": [{"sku": "book", "qty": 2, "price_cents": 1250}, {"sku": "pen", "qty": 1, "price_cents": 300}]}`

// orderLifecycle walks one order through the API and checks every answer,
// the summary and the stream. It is the same on every broker and store.
func orderLifecycle(t *testing.T, base string) {
	id := "order-" + suffix()
	o := base + "/orders/" + id

	var placed commandReply
	status := request(t, "POST", base+"/orders", strings.Replace(aliceOrder, "%s", id, 1), map[string]string{"X-Correlation-ID": "checkout-" + id}, &placed)
	if status != http.StatusCreated || placed.OrderID != id || placed.Version != 1 || placed.CommandID == "" {
		t.Fatalf("place: %d %+v, want 201 at version 1", status, placed)
	}

	// The rules, each refused with a status and a reason.
	expectRefusal(t, "POST", base+"/orders", `{"customer_id": "bob", "items": []}`, http.StatusUnprocessableEntity, "at least one item")
	expectRefusal(t, "POST", base+"/orders", `{"customer_id": "bob", "items": [{"sku": "x", "qty": 0}]}`, http.StatusUnprocessableEntity, "qty >= 1")
	expectRefusal(t, "POST", base+"/orders", strings.Replace(aliceOrder, "%s", id, 1), http.StatusConflict, "already placed")
	expectRefusal(t, "POST", base+"/orders", `{"customer_id": `, http.StatusBadRequest, "body")
	expectRefusal(t, "POST", o+"/ship", "", http.StatusConflict, "can't ship before payment")
	expectRefusal(t, "POST", base+"/orders/no-such-order/pay", "", http.StatusNotFound, "no such order")

	var paid, shipped commandReply
	if status := request(t, "POST", o+"/pay", "", nil, &paid); status != http.StatusOK || paid.Version != 2 {
		t.Fatalf("pay: %d %+v, want 200 at version 2", status, paid)
	}
	expectRefusal(t, "POST", o+"/pay", "", http.StatusConflict, "can't pay twice")
	if status := request(t, "POST", o+"/ship", "", nil, &shipped); status != http.StatusOK || shipped.Version != 3 {
		t.Fatalf("ship: %d %+v, want 200 at version 3", status, shipped)
	}
	expectRefusal(t, "POST", o+"/ship", "", http.StatusConflict, "already shipped")
	expectRefusal(t, "POST", o+"/pay", "", http.StatusConflict, "can't pay twice")

	// Read your own write: wait for the version the last command returned.
	var sum Summary
	if status := request(t, "GET", o+"?min_version=3", "", nil, &sum); status != http.StatusOK {
		t.Fatalf("summary: %d", status)
	}
	if sum.OrderID != id || sum.CustomerID != "alice" || sum.Status != StatusShipped || sum.TotalCents != 2800 ||
		sum.ItemCount != 3 || sum.Version != 3 || sum.PlacedAt == nil || sum.PaidAt == nil || sum.ShippedAt == nil {
		t.Errorf("summary %+v, want alice's shipped order of 2800 cents, 3 items, at version 3", sum)
	}

	var evs []storedEvent
	if status := request(t, "GET", o+"/events", "", nil, &evs); status != http.StatusOK {
		t.Fatalf("events: %d", status)
	}
	wantTypes := []string{"orders.order_placed", "orders.order_paid", "orders.order_shipped"}
	wantCause := []string{placed.CommandID, paid.CommandID, shipped.CommandID}
	if len(evs) != len(wantTypes) {
		t.Fatalf("stream has %d events, want %d: %+v", len(evs), len(wantTypes), evs)
	}
	for i, e := range evs {
		if e.Type != wantTypes[i] || e.Version != i+1 || e.CausationID != wantCause[i] {
			t.Errorf("event %d: %s v%d caused by %q, want %s v%d caused by command %q", i, e.Type, e.Version, e.CausationID, wantTypes[i], i+1, wantCause[i])
		}
	}
	if evs[0].CorrelationID != "checkout-"+id {
		t.Errorf("OrderPlaced correlation %q, want the request's checkout-%s", evs[0].CorrelationID, id)
	}
	var data OrderPlaced
	if err := json.Unmarshal(evs[0].Data, &data); err != nil || data.TotalCents != 2800 || len(data.Items) != 2 {
		t.Errorf("OrderPlaced data %s: %+v %v", evs[0].Data, data, err)
	}

	// The rebuilt read model says the same.
	var rb RebuildResult
	if status := request(t, "POST", base+"/rebuild", "", nil, &rb); status != http.StatusOK || rb.To == rb.From {
		t.Fatalf("rebuild: %d %+v", status, rb)
	}
	var again Summary
	if status := request(t, "GET", o+"?min_version=3", "", nil, &again); status != http.StatusOK || !reflect.DeepEqual(again, sum) {
		t.Errorf("after the rebuild: %d %+v, want %+v", status, again, sum)
	}

	// Reads that cannot be answered.
	expectRefusal(t, "GET", base+"/orders/no-such-order", "", http.StatusNotFound, "no such order")
	expectRefusal(t, "GET", base+"/orders/no-such-order/events", "", http.StatusNotFound, "no such order")
	expectRefusal(t, "GET", o+"?min_version=x", "", http.StatusBadRequest, "min_version")
	expectRefusal(t, "GET", o+"?min_version=9&wait=50ms", "", http.StatusServiceUnavailable, "want 9")
}

// TestOrderLifecycleInMemory: no configuration at all.
func TestOrderLifecycleInMemory(t *testing.T) {
	isolate(t)
	base, _ := startApp(t, "")
	orderLifecycle(t, base)
}

// TestOrderLifecycleOnEveryBroker: the same flow, unchanged, with the
// shipped configurations of the real brokers and the events and read model
// in the real PostgreSQL.
func TestOrderLifecycleOnEveryBroker(t *testing.T) {
	for _, tc := range []struct {
		name, file, envKey, pkg string
		addr                    func(testing.TB) string
	}{
		{"memory", "memory.yaml", "", "memory", nil},
		{"rabbitmq", "rabbitmq.yaml", "SWITCHYARD_BROKER_AMQP_URL", "amqp", brokertest.AMQPURL},
		{"kafka", "kafka.yaml", "SWITCHYARD_BROKER_KAFKA_BROKERS", "kafka", brokertest.KafkaBrokers},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.addr != nil {
				t.Setenv(tc.envKey, tc.addr(t))
			}
			usePostgres(t)
			isolate(t)
			base, a := startApp(t, tc.file)
			if got := fmt.Sprintf("%T", a.svc.Broker()); !strings.Contains(strings.ToLower(got), strings.TrimSuffix(tc.pkg, "/")) {
				t.Fatalf("broker %s, want one of package %s", got, tc.pkg)
			}
			if _, ok := a.store.(wakingStore).store.(*postgres.EventStore); !ok {
				t.Fatalf("event store %T, want the PostgreSQL one", a.store.(wakingStore).store)
			}
			orderLifecycle(t, base)
		})
	}
}
