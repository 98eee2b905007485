package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.uber.org/goleak"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/config"
	"github.com/switchyard-go/switchyard/pkg/admin"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/graph"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/service"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// shared hands the test's memory broker to the CLI; the CLI's Close must
// not close it. Embedding keeps Browse, Provision and Delay visible.
type shared struct{ *memory.Broker }

func (shared) Close() error { return nil }

// noBrowse is a broker without the optional capabilities.
type noBrowse struct{ broker.Broker }

func (noBrowse) Close() error { return nil }

func useBroker(t *testing.T, wrap func(*memory.Broker) broker.Broker) *memory.Broker {
	t.Helper()
	t.Setenv(envConfig, "")
	b, err := memory.New(memory.Config{NackBackoff: time.Millisecond, MaxNackBackoff: 20 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	old := openBroker
	openBroker = func(context.Context, config.Config, *slog.Logger) (broker.Broker, error) { return wrap(b), nil }
	// The dlq commands reach the memory broker as an operator does: through
	// the admin API of a service on it.
	svc := service.New(wrap(b))
	srv := httptest.NewServer(admin.New(admin.Config{Enabled: true, Token: testToken, Write: true}, func() *service.Service { return svc }))
	oldURL := serviceURL
	serviceURL = srv.URL
	t.Cleanup(func() {
		serviceURL = oldURL
		srv.Close()
		openBroker = old
		_ = b.Close()
	})
	return b
}

// testToken is the admin API token of the tests' services.
const testToken = "cli-test-token-0123456789"

// serviceURL, when set, is the admin API cli hands the dlq commands.
var serviceURL string

func newBroker(t *testing.T) *memory.Broker {
	return useBroker(t, func(b *memory.Broker) broker.Broker { return shared{b} })
}

type result struct {
	stdout, stderr string
	code           int
}

func cli(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	if serviceURL != "" && slices.Contains(args, "dlq") && !slices.Contains(args, "--service") {
		args = append([]string{"--service", serviceURL, "--token", testToken}, args...)
	}
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return result{out.String(), errOut.String(), code}
}

func mustOK(t *testing.T, r result) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
}

const dlTopic = "inventory.dead_letter"

var failedAt0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// seed dead-letters one message per spec the way the runtime does.
func seed(t *testing.T, b *memory.Broker, specs ...[3]string) []string {
	t.Helper()
	ctx := context.Background()
	if err := b.Provision(ctx, dlTopic, broker.DeadLetterGroup); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i, s := range specs { // type, reason, handler
		id := fmt.Sprintf("msg-%d", i)
		m := message.NewMessage(id, []byte(fmt.Sprintf(`{"order_id":"%d"}`, i)))
		env := event.Envelope{ID: id, Type: s[0], Version: 1, Source: "orders", Time: failedAt0, ContentType: header.ContentTypeJSON,
			Key: fmt.Sprintf("order-%d", i), CorrelationID: "corr-" + id}
		env.Write(m.Metadata)
		d := &middleware.Delivery{Msg: m, Envelope: env, Attempt: 3,
			Handler: &middleware.Info{Name: s[2], Group: "inventory", Topic: "orders"}}
		dl := middleware.DeadLetterMessage(d, failure.Reason(s[1]), fmt.Errorf("boom %d", i), failedAt0.Add(time.Duration(i)*time.Minute))
		if err := b.Publisher().Publish(dlTopic, dl); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

func browseAll(t *testing.T, b *memory.Broker, topic, group string) []*message.Message {
	t.Helper()
	var out []*message.Message
	if err := b.Browse(context.Background(), topic, group, func(m *message.Message) bool { out = append(out, m); return true }); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(out, func(a, b *message.Message) int { return strings.Compare(a.UUID, b.UUID) })
	return out
}

func ids(ms []*message.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.UUID)
	}
	return out
}

var threeFailures = [][3]string{
	{"orders.order_placed", "timeout", "inventory.reserve"},
	{"orders.order_placed", "invalid_payload", "inventory.reserve"},
	{"orders.order_cancelled", "timeout", "inventory.release"},
	{"orders.order_placed", "timeout", "inventory.reserve"},
}

func TestDLQListCounts(t *testing.T) {
	b := newBroker(t)
	seed(t, b, threeFailures...)

	r := cli(t, "", "dlq", "list", "--group", "inventory")
	mustOK(t, r)
	for _, want := range []string{"inventory.reserve", "timeout", "invalid_payload", "4 dead letter(s) in 1 topic(s)"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("list output misses %q:\n%s", want, r.stdout)
		}
	}

	r = cli(t, "", "dlq", "list", "--topic", dlTopic, "--json", "--messages")
	mustOK(t, r)
	var got struct{ Topics []listTopic }
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("--json output does not parse: %v\n%s", err, r.stdout)
	}
	if len(got.Topics) != 1 || got.Topics[0].Count != 4 || len(got.Topics[0].Messages) != 4 {
		t.Fatalf("topics = %+v", got.Topics)
	}
	counts := map[string]int{}
	for _, g := range got.Topics[0].Groups {
		counts[g.Handler+"/"+g.Reason] = g.Count
	}
	want := map[string]int{"inventory.reserve/timeout": 2, "inventory.reserve/invalid_payload": 1, "inventory.release/timeout": 1}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Fatalf("counts = %v, want %v", counts, want)
	}
	if d := b.Depth(dlTopic, broker.DeadLetterGroup); d != 4 {
		t.Fatalf("list consumed messages: depth %d, want 4", d)
	}

	// Filters apply to list too.
	r = cli(t, "", "dlq", "list", "--topic", dlTopic, "--reason", "timeout", "--json")
	mustOK(t, r)
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.Topics[0].Count != 3 {
		t.Fatalf("filtered count: %v %+v", err, got.Topics)
	}
}

func TestDLQShow(t *testing.T) {
	b := newBroker(t)
	seed(t, b, threeFailures...)

	r := cli(t, "", "dlq", "show", "--topic", dlTopic, "--id", "msg-1")
	mustOK(t, r)
	for _, want := range []string{"invalid_payload", "inventory.reserve", "boom 1", "original topic:", "orders", `"order_id": "1"`, "ce_correlationid"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("show output misses %q:\n%s", want, r.stdout)
		}
	}

	r = cli(t, "", "--json", "dlq", "show", "--group", "inventory", "--id", "msg-2")
	mustOK(t, r)
	var sm shownMessage
	if err := json.Unmarshal([]byte(r.stdout), &sm); err != nil {
		t.Fatalf("--json output does not parse: %v\n%s", err, r.stdout)
	}
	if sm.ID != "msg-2" || sm.Failure["reason"] != "timeout" || sm.Failure["handler"] != "inventory.release" || string(sm.Payload) != `{"order_id":"2"}` {
		t.Fatalf("shown = %+v", sm)
	}

	if r := cli(t, "", "dlq", "show", "--topic", dlTopic, "--id", "nope"); r.code != exitFailure || !strings.Contains(r.stderr, "nope") {
		t.Fatalf("unknown id: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestDLQReplayWithFilters(t *testing.T) {
	b := newBroker(t)
	seed(t, b, threeFailures...)
	// The original topic is kept for the failing group and for another.
	for _, g := range []string{"inventory", "analytics"} {
		if err := b.Provision(context.Background(), "orders", g); err != nil {
			t.Fatal(err)
		}
	}

	r := cli(t, "", "--json", "dlq", "replay", "--topic", dlTopic, "--reason", "timeout", "--handler", "inventory.reserve", "--yes", "--idle", "500ms")
	mustOK(t, r)
	var res drainResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("--json output does not parse: %v\n%s", err, r.stdout)
	}
	if res.Count != 2 || res.NotMatching != 2 || res.NotReached != 0 {
		t.Fatalf("result = %+v, want 2 replayed, 2 left", res)
	}

	replayed := browseAll(t, b, "orders", "inventory")
	if got := ids(replayed); !slices.Equal(got, []string{"msg-0", "msg-3"}) {
		t.Fatalf("replayed to orders: %q, want msg-0 and msg-3", got)
	}
	for _, m := range replayed {
		md := m.Metadata
		if md.Get(header.ReplayCount) != "1" || md.Get(header.RetryTarget) != "inventory" {
			t.Errorf("%s: replaycount %q retry group %q, want 1 and inventory", m.UUID, md.Get(header.ReplayCount), md.Get(header.RetryTarget))
		}
		if md.Get(header.CorrelationID) != "corr-"+m.UUID || md.Get(header.ID) != m.UUID || md.Get(header.Type) != "orders.order_placed" {
			t.Errorf("%s: envelope not kept: %v", m.UUID, md)
		}
		for k := range md {
			if strings.HasPrefix(k, "sy_dlq_") || k == header.Attempt {
				t.Errorf("%s: header %s left on the replay", m.UUID, k)
			}
		}
	}
	if got := ids(browseAll(t, b, dlTopic, broker.DeadLetterGroup)); !slices.Equal(got, []string{"msg-1", "msg-2"}) {
		t.Fatalf("left in the DLQ: %q, want msg-1 and msg-2", got)
	}

	// A second replay of everything counts the replay again.
	r = cli(t, "", "dlq", "replay", "--topic", dlTopic, "--yes", "--idle", "500ms")
	mustOK(t, r)
	if !strings.Contains(r.stdout, "replayed 2 dead letter(s)") {
		t.Fatalf("second replay: %s", r.stdout)
	}
	if n := len(browseAll(t, b, dlTopic, broker.DeadLetterGroup)); n != 0 {
		t.Fatalf("%d left in the DLQ after replaying everything", n)
	}
}

func TestDLQReplayDryRunChangesNothing(t *testing.T) {
	b := newBroker(t)
	seed(t, b, threeFailures...)
	if err := b.Provision(context.Background(), "orders", "inventory"); err != nil {
		t.Fatal(err)
	}
	r := cli(t, "", "dlq", "replay", "--topic", dlTopic, "--type", "orders.order_cancelled", "--dry-run")
	mustOK(t, r)
	if !strings.Contains(r.stdout, "msg-2") || strings.Contains(r.stdout, "msg-0") || !strings.Contains(r.stdout, "would have replayed 1 of 4") {
		t.Fatalf("dry run output:\n%s", r.stdout)
	}
	if n := len(browseAll(t, b, dlTopic, broker.DeadLetterGroup)); n != 4 {
		t.Fatalf("dry run changed the DLQ: %d left", n)
	}
	if n := b.Depth("orders", "inventory"); n != 0 {
		t.Fatalf("dry run published %d messages", n)
	}
}

func TestDLQReplayFilterSinceUntil(t *testing.T) {
	b := newBroker(t)
	seed(t, b, threeFailures...) // failed at +0m, +1m, +2m, +3m
	since := failedAt0.Add(time.Minute).Format(time.RFC3339)
	until := failedAt0.Add(3 * time.Minute).Format(time.RFC3339)
	r := cli(t, "", "--json", "dlq", "replay", "--topic", dlTopic, "--since", since, "--until", until, "--dry-run")
	mustOK(t, r)
	var res drainResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.IDs, []string{"msg-1", "msg-2"}) {
		t.Fatalf("since/until selected %q, want msg-1, msg-2", res.IDs)
	}
	if r := cli(t, "", "dlq", "replay", "--topic", dlTopic, "--since", "yesterday", "--dry-run"); r.code != exitUsage || !strings.Contains(r.stderr, "--since") {
		t.Fatalf("bad --since: exit %d %q", r.code, r.stderr)
	}
}

func TestDLQPurge(t *testing.T) {
	b := newBroker(t)
	seed(t, b, threeFailures...)

	// Not a terminal and no --yes: refuse, change nothing.
	if r := cli(t, "", "dlq", "purge", "--topic", dlTopic); r.code != exitUsage || !strings.Contains(r.stderr, "--yes") {
		t.Fatalf("purge without --yes: exit %d %q", r.code, r.stderr)
	}
	if n := b.Depth(dlTopic, broker.DeadLetterGroup); n != 4 {
		t.Fatalf("refused purge changed the DLQ: %d left", n)
	}

	r := cli(t, "", "dlq", "purge", "--topic", dlTopic, "--reason", "invalid_payload", "--yes", "--idle", "500ms")
	mustOK(t, r)
	if got := ids(browseAll(t, b, dlTopic, broker.DeadLetterGroup)); !slices.Equal(got, []string{"msg-0", "msg-2", "msg-3"}) {
		t.Fatalf("after filtered purge: %q", got)
	}
	r = cli(t, "", "dlq", "purge", "--group", "inventory", "--yes", "--idle", "500ms")
	mustOK(t, r)
	if !strings.Contains(r.stdout, "purged 3") {
		t.Fatalf("purge output: %s", r.stdout)
	}
	if n := b.Depth(dlTopic, broker.DeadLetterGroup); n != 0 {
		t.Fatalf("purge --yes left %d messages", n)
	}
}

func TestDLQWithoutBrowser(t *testing.T) {
	useBroker(t, func(b *memory.Broker) broker.Broker { return noBrowse{b} })
	r := cli(t, "", "dlq", "list", "--topic", dlTopic)
	if r.code != exitFailure || !strings.Contains(r.stderr, "browse") {
		t.Fatalf("list on a broker without Browser: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestDLQUsage(t *testing.T) {
	newBroker(t)
	for _, args := range [][]string{
		{"dlq", "list"},
		{"dlq", "show", "--topic", dlTopic},
		{"dlq", "replay", "--topic", "a", "--topic", "b", "--yes"},
		{"dlq", "replay", "--topic", "a", "--rate", "fast", "--yes"},
		{"dlq", "list", "--nope"},
	} {
		if r := cli(t, "", args...); r.code != exitUsage {
			t.Errorf("%q: exit %d, want %d (stderr %q)", args, r.code, exitUsage, r.stderr)
		}
	}
}

func TestPublishThenTail(t *testing.T) {
	b := newBroker(t)
	tailed := make(chan result, 1)
	go func() {
		var out, errOut bytes.Buffer
		code := run(context.Background(), []string{"--json", "tail", "--topic", "orders", "--group", "tail-test", "--count", "1"}, strings.NewReader(""), &out, &errOut)
		tailed <- result{out.String(), errOut.String(), code}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !slices.ContainsFunc(b.Stats(), func(s memory.QueueStats) bool { return s.Group == "tail-test" }) {
		if time.Now().After(deadline) {
			t.Fatal("tail did not subscribe")
		}
		time.Sleep(5 * time.Millisecond)
	}

	r := cli(t, `{"order_id":"42"}`, "--json", "publish", "--topic", "orders", "--type", "orders.order_placed", "--key", "42")
	mustOK(t, r)
	var pub map[string]string
	if err := json.Unmarshal([]byte(r.stdout), &pub); err != nil {
		t.Fatalf("publish --json: %v\n%s", err, r.stdout)
	}

	var tr result
	select {
	case tr = <-tailed:
	case <-time.After(10 * time.Second):
		t.Fatal("tail did not receive the message")
	}
	mustOK(t, tr)
	var line tailLine
	if err := json.Unmarshal([]byte(tr.stdout), &line); err != nil {
		t.Fatalf("tail --json line: %v\n%s", err, tr.stdout)
	}
	if line.ID != pub["id"] || line.Type != "orders.order_placed" || line.Key != "42" || line.CorrelationID != pub["id"] ||
		line.Headers[header.Source] != cliSource || string(line.Payload) != `{"order_id":"42"}` {
		t.Fatalf("tailed %+v, published %v", line, pub)
	}
	// The envelope is one services can read.
	m := message.NewMessage(line.ID, message.Payload(line.Payload))
	for k, v := range line.Headers {
		m.Metadata[k] = v
	}
	if _, err := event.ReadEnvelope(m); err != nil {
		t.Fatalf("published envelope is invalid: %v", err)
	}
}

func TestPublishRejectsBadPayload(t *testing.T) {
	newBroker(t)
	if r := cli(t, "not json", "publish", "--type", "x"); r.code != exitUsage || !strings.Contains(r.stderr, "JSON") {
		t.Fatalf("exit %d %q", r.code, r.stderr)
	}
	if r := cli(t, "{}", "publish"); r.code != exitUsage || !strings.Contains(r.stderr, "--type") {
		t.Fatalf("exit %d %q", r.code, r.stderr)
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigCheck(t *testing.T) {
	t.Setenv(envConfig, "")
	r := cli(t, "", "config", "check")
	mustOK(t, r)
	if !strings.HasPrefix(r.stdout, "config ok: broker=memory") {
		t.Fatalf("stdout %q", r.stdout)
	}

	bad := writeFile(t, "bad.yaml", "broker:\n  type: carrier-pigeon\nlog:\n  level: loud\n")
	r = cli(t, "", "config", "check", "--config", bad)
	if r.code != exitUsage {
		t.Fatalf("invalid config: exit %d, want 2", r.code)
	}
	for _, want := range []string{"broker.type", "carrier-pigeon", "log.level", "2 problem(s)"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("check output misses %q:\n%s", want, r.stdout)
		}
	}

	t.Setenv(envConfig, bad) // the default of --config
	r = cli(t, "", "--json", "config", "check")
	var got struct {
		OK       bool
		Problems []string
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.OK || len(got.Problems) != 2 || r.code != exitUsage {
		t.Fatalf("--json: exit %d, %v, %+v\n%s", r.code, err, got, r.stdout)
	}
	// Other commands refuse an invalid configuration too.
	if r := cli(t, "", "dlq", "list", "--group", "g"); r.code != exitUsage || !strings.Contains(r.stderr, "broker.type") {
		t.Fatalf("dlq list with invalid config: exit %d %q", r.code, r.stderr)
	}
}

func TestConfigShowRedactsSecrets(t *testing.T) {
	t.Setenv(envConfig, "")
	file := writeFile(t, "amqp.yaml", `service:
  name: orders
broker:
  type: amqp
  amqp:
    url: amqp://orders:s3cret-url@127.0.0.1:5672/prod
    username: orders
    password: hunter2
app:
  read_model: {dsn: "postgres://rm:pg-s3cret@db/payments", api_token: tok-s3cret, region: eu}
`)
	r := cli(t, "", "config", "show", "--config", file)
	mustOK(t, r)
	for _, secret := range []string{"s3cret-url", "hunter2", "pg-s3cret", "tok-s3cret"} {
		if strings.Contains(r.stdout, secret) {
			t.Fatalf("secret %s printed:\n%s", secret, r.stdout)
		}
	}
	for _, want := range []string{"amqp://orders:REDACTED@127.0.0.1:5672/prod", "password: REDACTED", "name: orders", "username: orders",
		"confirm_timeout: 30s", "concurrency: 4", "failure_path_timeout: 10s", "region: eu", "postgres://rm:REDACTED@db/payments"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("show output misses %q:\n%s", want, r.stdout)
		}
	}
	for _, other := range []string{"kafka:", "memory:", "buffer_size"} {
		if strings.Contains(r.stdout, other) {
			t.Errorf("show prints %q of a broker not selected:\n%s", other, r.stdout)
		}
	}
	r = cli(t, "", "--json", "config", "show", "--config", file)
	mustOK(t, r)
	var got struct {
		Broker struct {
			Type string
			AMQP struct {
				URL            string `json:"url"`
				ConfirmTimeout string `json:"confirm_timeout"`
			} `json:"amqp"`
			Kafka any `json:"kafka"`
		} `json:"broker"`
		Defaults struct {
			Timeout string `json:"timeout"`
		} `json:"defaults"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || strings.Contains(r.stdout, "hunter2") {
		t.Fatalf("--json show: %v\n%s", err, r.stdout)
	}
	if got.Broker.AMQP.URL != "amqp://orders:REDACTED@127.0.0.1:5672/prod" || got.Broker.AMQP.ConfirmTimeout != "30s" ||
		got.Broker.Kafka != nil || got.Defaults.Timeout != "30s" {
		t.Errorf("--json show: %+v\n%s", got, r.stdout)
	}
}

// The idempotency, outbox and postgres sections show their defaults, and
// the database's password, in a URL or in key=value form, never.
func TestConfigShowStores(t *testing.T) {
	t.Setenv(envConfig, "")
	for dsn, want := range map[string]string{
		"postgres://pay:pg-s3cret@db:5432/payments": "dsn: postgres://pay:REDACTED@db:5432/payments",
		"host=db user=pay password=pg-s3cret":       "dsn: host=db user=pay password=REDACTED",
	} {
		file := writeFile(t, "pg.yaml", "idempotency: {store: postgres}\noutbox: {store: postgres}\npostgres: {dsn: \""+dsn+"\"}\n")
		for _, args := range [][]string{{"config", "show", "--config", file}, {"--json", "config", "show", "--config", file}} {
			r := cli(t, "", args...)
			mustOK(t, r)
			if strings.Contains(r.stdout, "pg-s3cret") {
				t.Fatalf("%v: password printed:\n%s", args, r.stdout)
			}
			if args[0] == "--json" {
				continue
			}
			for _, w := range []string{want, "ttl: 24h0m0s", "purge_interval: 1h0m0s", "table: switchyard_outbox", "batch_size: 100", "poll_interval: 1s", "migrate: true"} {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("show output misses %q:\n%s", w, r.stdout)
				}
			}
		}
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"amqp://u:p@h:5672/v":                    "amqp://u:REDACTED@h:5672/v",
		"amqp://u@h/":                            "amqp://u@h/",
		"amqp://h/":                              "amqp://h/",
		"amqp://u:p%zz@h:5672":                   "amqp://REDACTED@h:5672",
		"host=db password=pw user=u":             "host=db password=REDACTED user=u",
		"host=db password = 'it''s a pw' user=u": "host=db password = REDACTED user=u",
		"host=db user=u":                         "host=db user=u",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestGraphFromFile(t *testing.T) {
	t.Setenv(envConfig, "")
	g := graph.Build([]middleware.Info{
		{Name: "h1", Group: "g1", EventType: "A", Publishes: []string{"B"}},
		{Name: "h2", Group: "g2", EventType: "B", Publishes: []string{"A"}},
	})
	var buf bytes.Buffer
	if err := graph.WriteJSON(&buf, g); err != nil {
		t.Fatal(err)
	}
	file := writeFile(t, "topology.json", buf.String())

	r := cli(t, "", "graph", "--from", file, "--format", "dot")
	mustOK(t, r)
	if r.stdout != g.DOT() || !strings.Contains(r.stderr, "cycle: A -> h1 -> B -> h2 -> A") {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
	r = cli(t, buf.String(), "--json", "graph") // stdin
	mustOK(t, r)
	var got struct {
		Graph  string
		Cycles [][]string
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.Graph != g.Mermaid() || len(got.Cycles) != 1 {
		t.Fatalf("--json: %v %+v", err, got)
	}
	if r := cli(t, "", "graph", "--from", file, "--format", "png"); r.code != exitUsage {
		t.Fatalf("--format png: exit %d", r.code)
	}
}

// On a broker that keeps order per key, a non-matching dead letter handed
// back (nacked) holds the later ones with its key: replay must still end,
// report them as not reached and leave both in the DLQ.
func TestDLQReplayStopsWhenAKeyIsHeldBack(t *testing.T) {
	b := newBroker(t)
	ctx := context.Background()
	if err := b.Provision(ctx, dlTopic, broker.DeadLetterGroup); err != nil {
		t.Fatal(err)
	}
	for i, reason := range []string{"invalid_payload", "timeout"} {
		m := message.NewMessage(fmt.Sprint("k-", i), []byte(`{}`))
		m.Metadata[header.Type] = "orders.order_placed"
		m.Metadata[header.Key] = "same-key"
		m.Metadata[header.DeadLetterReason] = reason
		m.Metadata[header.DeadLetterTopic] = "orders"
		m.Metadata[header.DeadLetterGroup] = "inventory"
		if err := b.Publisher().Publish(dlTopic, m); err != nil {
			t.Fatal(err)
		}
	}
	r := cli(t, "", "--json", "dlq", "replay", "--topic", dlTopic, "--reason", "timeout", "--yes", "--idle", "300ms")
	mustOK(t, r)
	var res drainResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatal(err)
	}
	if res.Count != 0 || res.NotMatching != 1 || res.NotReached != 1 {
		t.Fatalf("result %+v, want 0 replayed, 1 not matching, 1 not reached", res)
	}
	if got := ids(browseAll(t, b, dlTopic, broker.DeadLetterGroup)); !slices.Equal(got, []string{"k-0", "k-1"}) {
		t.Fatalf("left in the DLQ: %q", got)
	}
}
