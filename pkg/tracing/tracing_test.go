package tracing_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/pkg/service"
	"github.com/switchyard-go/switchyard/pkg/tracing"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const guard = 10 * time.Second

type orderPlaced struct {
	OrderID string `json:"order_id"`
}

func (orderPlaced) EventType() string  { return "orders.order_placed" }
func (orderPlaced) EventVersion() int  { return 1 }
func (orderPlaced) EventTopic() string { return "orders" }

// runOnce runs a service with opt on the memory broker, publishes one
// event, waits for its handler and returns once Run did (the provider
// shut down, so every span was exported).
func runOnce(t *testing.T, opt service.Option) {
	t.Helper()
	b, err := memory.New(memory.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	svc := service.New(b, opt)
	handled := make(chan struct{})
	if err := service.Handle(svc, "charge", func(context.Context, orderPlaced) error {
		close(handled)
		return nil
	}, service.Group("billing")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	select {
	case <-svc.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	if err := svc.Publish(context.Background(), orderPlaced{OrderID: "o-1"}, service.WithID("evt-1")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-handled:
	case <-time.After(guard):
		t.Fatal("not handled")
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
}

// TestStdoutExporterWritesSpans: exporter stdout alone traces the service,
// and the spans are written by the time Run returns (the shutdown flushed
// them), with the resource's service name.
func TestStdoutExporterWritesSpans(t *testing.T) {
	var out bytes.Buffer
	runOnce(t, tracing.With(tracing.Config{Exporter: tracing.ExporterStdout},
		tracing.WithWriter(&out), tracing.WithServiceName("payments")))
	text := out.String()
	for _, want := range []string{`"Name":"send orders"`, `"Name":"process orders"`, `"Value":"payments"`, `"Value":"evt-1"`} {
		if !strings.Contains(text, want) {
			t.Errorf("stdout lacks %s:\n%s", want, text)
		}
	}
}

// TestSampleRatioDropsTraces: a ratio near 0 records (almost) no trace
// started here.
func TestSampleRatioDropsTraces(t *testing.T) {
	var out bytes.Buffer
	runOnce(t, tracing.With(tracing.Config{Exporter: tracing.ExporterStdout, SampleRatio: 1e-12}, tracing.WithWriter(&out)))
	if out.Len() != 0 {
		t.Errorf("spans written at ratio 1e-12:\n%s", out.String())
	}
}

// TestOTLPHTTPExporterPostsSpans: exporter otlp sends the spans as an OTLP
// protobuf request to the configured endpoint and path, which a receiver
// on the loopback decodes.
func TestOTLPHTTPExporterPostsSpans(t *testing.T) {
	var mu sync.Mutex
	var paths, types []string
	spans := map[string]map[string]string{} // span name -> string attributes
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var req collectortrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		paths, types = append(paths, r.URL.Path), append(types, r.Header.Get("Content-Type"))
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					spans[s.Name] = stringAttrs(s.Attributes)
				}
			}
		}
		mu.Unlock()
		resp, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(resp)
	}))
	defer srv.Close()
	runOnce(t, tracing.With(tracing.Config{
		Exporter: tracing.ExporterOTLP,
		OTLP: tracing.OTLP{
			Endpoint: strings.TrimPrefix(srv.URL, "http://"),
			URLPath:  "/custom/traces",
			Insecure: true,
		},
	}))
	mu.Lock()
	defer mu.Unlock()
	if len(paths) == 0 {
		t.Fatal("no export request arrived")
	}
	for i := range paths {
		if paths[i] != "/custom/traces" || types[i] != "application/x-protobuf" {
			t.Errorf("request %d: %s %s, want /custom/traces application/x-protobuf", i, paths[i], types[i])
		}
	}
	for name, want := range map[string]map[string]string{
		"send orders":    {"messaging.system": "memory", "messaging.operation.type": "send", "messaging.message.id": "evt-1"},
		"process orders": {"messaging.consumer.group.name": "billing", "messaging.operation.type": "process", "messaging.message.id": "evt-1"},
	} {
		got, ok := spans[name]
		if !ok {
			t.Errorf("no span %q received", name)
			continue
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: %s = %q, want %q", name, k, got[k], v)
			}
		}
	}
}

// traceReceiver is an OTLP gRPC trace service that records span names.
type traceReceiver struct {
	collectortrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans map[string]map[string]string
}

func (r *traceReceiver) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				r.spans[s.Name] = stringAttrs(s.Attributes)
			}
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// TestOTLPGRPCExporterSendsSpans: protocol grpc sends the spans to a gRPC
// trace service on the loopback.
func TestOTLPGRPCExporterSendsSpans(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rcv := &traceReceiver{spans: map[string]map[string]string{}}
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, rcv)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() { srv.Stop(); <-served }()
	runOnce(t, tracing.With(tracing.Config{
		Exporter: tracing.ExporterOTLP,
		OTLP:     tracing.OTLP{Protocol: tracing.ProtocolGRPC, Endpoint: ln.Addr().String(), Insecure: true},
	}))
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	for name, want := range map[string]map[string]string{
		"send orders":    {"messaging.operation.type": "send", "messaging.message.id": "evt-1"},
		"process orders": {"messaging.consumer.group.name": "billing", "messaging.message.id": "evt-1"},
	} {
		got, ok := rcv.spans[name]
		if !ok {
			t.Errorf("no span %q received; got %v", name, rcv.spans)
			continue
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: %s = %q, want %q", name, k, got[k], v)
			}
		}
	}
}

func stringAttrs(kvs []*commonpb.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		m[kv.Key] = kv.Value.GetStringValue()
	}
	return m
}

// TestNoExporterNoTracing: the zero Config and exporter none build nothing.
func TestNoExporterNoTracing(t *testing.T) {
	for _, c := range []tracing.Config{{}, {Exporter: tracing.ExporterNone}} {
		p, err := tracing.New(c)
		if p != nil || err != nil {
			t.Errorf("New(%+v) = %v, %v; want nil, nil", c, p, err)
		}
	}
}

// TestValidateReportsEveryProblem: each invalid field is named with its
// value, all at once.
func TestValidateReportsEveryProblem(t *testing.T) {
	err := tracing.Config{
		Exporter:        "jaeger",
		SampleRatio:     1.5,
		ShutdownTimeout: -time.Second,
		OTLP:            tracing.OTLP{Protocol: "thrift", Endpoint: "collector", URLPath: "v1/traces"},
	}.Validate("tracing")
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`tracing.exporter: "jaeger"`,
		"tracing.sample_ratio: 1.5",
		"tracing.shutdown_timeout: -1s",
		`tracing.otlp.protocol: "thrift"`,
		`tracing.otlp.endpoint: "collector"`,
		`tracing.otlp.url_path: "v1/traces"`,
		`tracing.otlp: set, but tracing.exporter is "jaeger"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if err := (tracing.Config{Exporter: tracing.ExporterOTLP, OTLP: tracing.OTLP{Protocol: tracing.ProtocolGRPC, URLPath: "/v1/traces"}}).Validate("tracing"); err == nil || !strings.Contains(err.Error(), "tracing.otlp.url_path") {
		t.Errorf("grpc with a url_path: %v, want an error naming tracing.otlp.url_path", err)
	}
	if err := (tracing.Config{Exporter: tracing.ExporterOTLP, SampleRatio: 0.25, OTLP: tracing.OTLP{Endpoint: "collector:4318"}}).Validate("tracing"); err != nil {
		t.Errorf("valid config: %v", err)
	}
}
