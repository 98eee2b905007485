package config

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A file alone turns the operations server on: ServiceOptions starts it
// with the service.
func TestHTTPFromTheFile(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := Parse([]byte("http: {addr: \""+addr+"\"}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, svc := memoryService(t, c, c.serviceOptions(io.Discard)...)
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-svc.Ready()
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": `"ready": true`, "/metrics": "go_goroutines"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("%s: %d %s", path, resp.StatusCode, body)
		}
	}
}

// metrics.exporters [prometheus] adds the OpenTelemetry instruments to the
// operations server's /metrics, beside the switchyard_* metrics.
func TestMetricsSectionExportsToTheOperationsServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := Parse([]byte("http: {addr: \""+addr+"\"}\nmetrics: {exporters: [prometheus]}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, svc := memoryService(t, c, c.serviceOptions(io.Discard)...)
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-svc.Ready()
	if err := svc.Publish(context.Background(), placed{}); err != nil {
		t.Fatal(err)
	}
	var body []byte
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(string(body), "messaging_process_duration_seconds_count") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	for _, want := range []string{"# TYPE messaging_client_consumed_messages_total counter", "# TYPE messaging_process_duration_seconds histogram",
		`switchyard_broker_up{broker="memory"} 1`, "go_goroutines"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
}

func TestMetricsSectionValidated(t *testing.T) {
	_, err := Parse([]byte("metrics: {exporters: [prometheus, statsd], otlp: {protocol: thrift}}\n"), nil)
	wantAll(t, err,
		`metrics.exporters[1]: "statsd", want one of none, prometheus, otlp`,
		`metrics.otlp.protocol: "thrift"`,
		"metrics.exporters: [prometheus statsd] lists prometheus, but http.addr is empty")
	c, err := Parse([]byte("metrics: {exporters: [otlp]}\n"), func(k string) (string, bool) {
		if k == "SWITCHYARD_METRICS_OTLP_ENDPOINT" {
			return "collector:4318", true
		}
		return "", false
	})
	if err != nil || c.Metrics.OTLP.Endpoint != "collector:4318" {
		t.Fatalf("%+v, %v", c.Metrics, err)
	}
	if e := c.Effective().Metrics; e.Interval != 30*time.Second || e.OTLP.Protocol != "http/protobuf" || e.OTLP.URLPath != "/v1/metrics" {
		t.Errorf("effective metrics %+v", e)
	}
}
