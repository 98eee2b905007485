package main

import (
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestMetricsShowTheReadModel: with an http section the service's
// /metrics has the read model's projection beside the service's own
// metrics: its position reaches the event store's head and its lag drops
// to zero once the read model caught up with the commands.
func TestMetricsShowTheReadModel(t *testing.T) {
	isolate(t)
	t.Setenv("SWITCHYARD_HTTP_ADDR", "127.0.0.1:0")
	t.Setenv("SWITCHYARD_METRICS_EXPORTERS", "prometheus") // OpenTelemetry's, into the same registry
	base, a := startApp(t, "")
	if a.ops == nil || a.ops.Addr() == "" {
		t.Fatal("no operations server with http.addr set")
	}
	for _, id := range []string{"order-m1", "order-m2"} {
		if st := request(t, "POST", base+"/orders", strings.Replace(aliceOrder, "%s", id, 1), nil, nil); st != http.StatusCreated {
			t.Fatalf("place %s: %d", id, st)
		}
	}
	name := regexp.QuoteMeta(os.Getenv("SWITCHYARD_APP_READ_MODEL"))
	want := []*regexp.Regexp{
		regexp.MustCompile(`(?m)^switchyard_projection_position\{projection="` + name + `"\} 2$`),
		regexp.MustCompile(`(?m)^switchyard_projection_head\{projection="` + name + `"\} 2$`),
		regexp.MustCompile(`(?m)^switchyard_projection_lag\{projection="` + name + `"\} 0$`),
		regexp.MustCompile(`(?m)^switchyard_projection_rebuilding\{projection="` + name + `"\} 0$`),
		regexp.MustCompile(`(?m)^switchyard_handled_total\{.*handler="orders.place".*\} 2$`),                            // the service's own, same endpoint
		regexp.MustCompile(`(?m)^messaging_client_consumed_messages_total\{.*switchyard_handler="orders.place".*\} 2$`), // OpenTelemetry's
	}
	var body string
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + a.ops.Addr() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		body = string(b)
		missing := 0
		for _, re := range want {
			if !re.MatchString(body) {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // the read model lands within a poll
	}
	for _, re := range want {
		if !re.MatchString(body) {
			t.Errorf("/metrics lacks %s", re)
		}
	}
	t.Logf("/metrics:\n%s", grepLines(body, "switchyard_projection", "switchyard_handled", "messaging_client_consumed"))
}

func grepLines(s string, prefixes ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				out = append(out, l)
			}
		}
	}
	return strings.Join(out, "\n")
}
