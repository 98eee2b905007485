package config

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/switchyard-go/switchyard/pkg/tracing"
)

// A file alone turns tracing on: ServiceOptions builds the provider, the
// spans reach the OTLP endpoint the file names (a receiver on the
// loopback), with service.name as the resource's name, and Run's end
// flushes them.
func TestTracingFromTheFile(t *testing.T) {
	var mu sync.Mutex
	var names, services []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req collectortrace.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		mu.Lock()
		for _, rs := range req.ResourceSpans {
			for _, kv := range rs.Resource.GetAttributes() {
				if kv.Key == "service.name" {
					services = append(services, kv.Value.GetStringValue())
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					names = append(names, s.Name)
				}
			}
		}
		mu.Unlock()
		resp, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(resp)
	}))
	defer srv.Close()
	file := "service: {name: payments}\n" +
		"tracing:\n  exporter: otlp\n  otlp: {endpoint: \"" + strings.TrimPrefix(srv.URL, "http://") + "\", insecure: true}\n"
	c, err := Parse([]byte(file), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, svc := memoryService(t, c, c.serviceOptions(io.Discard)...)
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	<-svc.Ready()
	if err := svc.Publish(context.Background(), placed{ID: "p-1"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for svc.Stats().Handled == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if svc.Stats().Handled == 0 {
		t.Fatal("the event was not handled")
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	got := strings.Join(names, ",")
	if !strings.Contains(got, "send ") || !strings.Contains(got, "process ") {
		t.Errorf("spans received: %q, want a send and a process span", got)
	}
	for _, s := range services {
		if s != "payments" {
			t.Errorf("service.name = %q, want payments", s)
		}
	}
	if len(services) == 0 {
		t.Error("no resource with service.name")
	}
}

func TestTracingSection(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		env        map[string]string
		want       []string // in the error; none: valid
		check      func(*testing.T, Config)
	}{
		{name: "unknown key", file: "tracing: {exportr: stdout}\n", want: []string{"exportr"}},
		{name: "unknown otlp key", file: "tracing: {exporter: otlp, otlp: {endpiont: x}}\n", want: []string{"endpiont"}},
		{name: "every problem", file: "tracing: {exporter: jaeger, sample_ratio: 2}\n",
			want: []string{`tracing.exporter: "jaeger"`, "tracing.sample_ratio: 2"}},
		{name: "environment", env: map[string]string{"SWITCHYARD_TRACING_EXPORTER": "otlp", "SWITCHYARD_TRACING_OTLP_ENDPOINT": "collector:4318", "SWITCHYARD_TRACING_SAMPLE_RATIO": "0.5"},
			check: func(t *testing.T, c Config) {
				if c.Tracing.Exporter != tracing.ExporterOTLP || c.Tracing.OTLP.Endpoint != "collector:4318" || c.Tracing.SampleRatio != 0.5 {
					t.Errorf("tracing = %+v", c.Tracing)
				}
			}},
		{name: "effective", file: "tracing: {exporter: otlp}\n",
			check: func(t *testing.T, c Config) {
				e := c.Effective().Tracing
				if e.SampleRatio != 1 || e.OTLP.Endpoint != tracing.DefaultOTLPEndpoint || e.OTLP.URLPath != "/v1/traces" || e.OTLP.Protocol != tracing.ProtocolHTTP {
					t.Errorf("effective tracing = %+v", e)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var environ []string
			for k, v := range tc.env {
				environ = append(environ, k+"="+v)
			}
			c, err := ParseEnviron([]byte(tc.file), environ, nil)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
			} else if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if tc.check != nil {
				tc.check(t, c)
			}
		})
	}
}
