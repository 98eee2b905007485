package otelmetrics_test

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

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	collectormetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/metrics"
	"github.com/switchyard-go/switchyard/pkg/otelmetrics"
	"github.com/switchyard-go/switchyard/pkg/retry"
	"github.com/switchyard-go/switchyard/pkg/service"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const guard = 10 * time.Second

type orderPlaced struct {
	OrderID string `json:"order_id"`
}

func (orderPlaced) EventType() string  { return "orders.order_placed" }
func (orderPlaced) EventVersion() int  { return 1 }
func (orderPlaced) EventTopic() string { return "orders" }

// runOrders runs a service with opt on the memory broker whose handler
// "charge" (group billing) handles o-ok, fails o-retry once before
// handling it, and fails o-bad permanently (dead-lettered); it returns
// once Run did, so the provider shut down after a last export. While Run
// still runs, it calls running if not nil.
func runOrders(t *testing.T, opt service.Option, running func()) {
	t.Helper()
	svc := newService(t, opt)
	var mu sync.Mutex
	failedOnce := false
	done3 := make(chan struct{}, 3)
	err := service.Handle(svc, "charge", func(_ context.Context, e orderPlaced) error {
		mu.Lock()
		defer mu.Unlock()
		switch e.OrderID {
		case "o-bad":
			done3 <- struct{}{}
			return failure.Permanent(errors.New("card declined"))
		case "o-retry":
			if !failedOnce {
				failedOnce = true
				return errors.New("gateway timeout")
			}
		}
		done3 <- struct{}{}
		return nil
	}, service.Group("billing"), service.Retry(retry.Policy{MaxAttempts: 3, InitialInterval: time.Millisecond, MaxInterval: time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	serve(t, svc, func() {
		for _, id := range []string{"o-ok", "o-retry", "o-bad"} {
			if err := svc.Publish(context.Background(), orderPlaced{OrderID: id}); err != nil {
				t.Fatal(err)
			}
		}
		for range 3 {
			select {
			case <-done3:
			case <-time.After(guard):
				t.Fatal("not every order was handled")
			}
		}
		// The dead letter's counter moves once its publish is confirmed,
		// after the handler returned: wait for the service's own count.
		waitStats(t, svc, func(st metrics.Snapshot) bool { return st.DeadLettered >= 1 && st.Handled >= 2 })
	}, running)
}

// newService returns a service with opt on a memory broker closed after
// the test.
func newService(t *testing.T, opt service.Option) *service.Service {
	t.Helper()
	b, err := memory.New(memory.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return service.New(b, opt)
}

// serve runs svc, calls work once it is ready and then running (if not
// nil) while Run still runs, and returns once Run did, so the provider
// shut down after a last export.
func serve(t *testing.T, svc *service.Service, work, running func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	select {
	case <-svc.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	work()
	if running != nil {
		running()
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
}

// waitStats waits until the service's own counts satisfy ok.
func waitStats(t *testing.T, svc *service.Service, ok func(metrics.Snapshot) bool) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for !ok(svc.Stats()) {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", svc.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// point is one data point: its attributes and value (a sum, or a
// histogram's count).
type point struct {
	attrs map[string]string
	value float64
}

func points(rm metricdata.ResourceMetrics) map[string][]point {
	out := map[string][]point{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					out[m.Name] = append(out[m.Name], point{attrMap(dp.Attributes.ToSlice()), float64(dp.Value)})
				}
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					out[m.Name] = append(out[m.Name], point{attrMap(dp.Attributes.ToSlice()), float64(dp.Count)})
				}
			}
		}
	}
	return out
}

// want checks that name has exactly one point with attrs (and maybe
// more attributes) and value.
func want(t *testing.T, got map[string][]point, name string, value float64, attrs map[string]string) {
	t.Helper()
	for _, p := range got[name] {
		match := true
		for k, v := range attrs {
			if p.attrs[k] != v {
				match = false
			}
		}
		if match {
			if p.value != value {
				t.Errorf("%s%v = %v, want %v", name, attrs, p.value, value)
			}
			return
		}
	}
	t.Errorf("%s: no point with %v; got %+v", name, attrs, got[name])
}

var delivery = map[string]string{
	"messaging.system":              "memory",
	"messaging.destination.name":    "orders",
	"messaging.consumer.group.name": "billing",
	"messaging.operation.name":      "process",
	"switchyard.handler":            "charge",
}

func with(base map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// collect runs run with the instruments on a manual reader and returns
// what the reader collected after it.
func collect(t *testing.T, run func(*testing.T, service.Option, func())) metricdata.ResourceMetrics {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	run(t, otelmetrics.Instrument(mp), nil)
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	return rm
}

// TestInstrumentsHaveTheSemanticConventionNamesAndAttributes reads the
// instruments with the SDK's manual reader.
func TestInstrumentsHaveTheSemanticConventionNamesAndAttributes(t *testing.T) {
	got := points(collect(t, runOrders))
	want(t, got, otelmetrics.SentMessages, 3, map[string]string{
		"messaging.system": "memory", "messaging.destination.name": "orders", "messaging.operation.name": "send",
		"cloudevents.event_type": "orders.order_placed",
	})
	want(t, got, otelmetrics.ConsumedMessages, 3, delivery)
	// Two handled (one after a retry): no error.type; one dead-lettered.
	want(t, got, otelmetrics.ProcessDuration, 2, with(delivery, "error.type", ""))
	want(t, got, otelmetrics.ProcessDuration, 1, with(delivery, "error.type", otelmetrics.ErrorDeadLettered))
	want(t, got, otelmetrics.Retries, 1, delivery)
	want(t, got, otelmetrics.DeadLetters, 1, with(delivery, "switchyard.dead_letter.reason", string(failure.ReasonPermanent)))
	want(t, got, otelmetrics.InFlight, 0, delivery)
	if len(got[otelmetrics.Nacks]) != 0 || len(got[otelmetrics.Duplicates]) != 0 {
		t.Errorf("nacks %v, duplicates %v: want none", got[otelmetrics.Nacks], got[otelmetrics.Duplicates])
	}
}

// TestPrometheusExporterServesTheInstruments: exporter prometheus writes
// them into the registry the operations server serves.
func TestPrometheusExporterServesTheInstruments(t *testing.T) {
	reg := prometheus.NewRegistry()
	runOrders(t, otelmetrics.With(otelmetrics.Config{Exporters: []string{otelmetrics.ExporterPrometheus}},
		otelmetrics.WithRegisterer(reg), otelmetrics.WithServiceName("billing-svc")), func() { checkPrometheus(t, reg) })
}

// gatheredNames returns the names of the metric families reg serves.
func gatheredNames(t *testing.T, reg *prometheus.Registry) map[string]bool {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
	}
	return names
}

func checkPrometheus(t *testing.T, reg *prometheus.Registry) {
	t.Helper()
	names := gatheredNames(t, reg)
	for _, n := range []string{
		"messaging_client_sent_messages_total", "messaging_client_consumed_messages_total",
		"messaging_process_duration_seconds", "switchyard_retries_total", "switchyard_dead_letters_total",
		"switchyard_in_flight",
	} {
		if !names[n] {
			t.Errorf("no %s in %v", n, names)
		}
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP messaging_client_consumed_messages_total Deliveries taken from the broker, one per delivery whatever its attempts.
# TYPE messaging_client_consumed_messages_total counter
messaging_client_consumed_messages_total{messaging_consumer_group_name="billing",messaging_destination_name="orders",messaging_operation_name="process",messaging_system="memory",otel_scope_name="github.com/switchyard-go/switchyard",otel_scope_schema_url="",otel_scope_version="",switchyard_handler="charge"} 3
`), "messaging_client_consumed_messages_total"); err != nil {
		t.Error(err)
	}
}

// metricsReceiver is an OTLP metrics service (gRPC) that records the
// string attributes of every sum data point by metric name.
type metricsReceiver struct {
	collectormetrics.UnimplementedMetricsServiceServer
	mu      sync.Mutex
	metrics map[string][]map[string]string
	service string
}

func (r *metricsReceiver) record(req *collectormetrics.ExportMetricsServiceRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rm := range req.ResourceMetrics {
		if s := stringAttrs(rm.GetResource().GetAttributes())["service.name"]; s != "" {
			r.service = s
		}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				for _, dp := range m.GetSum().GetDataPoints() {
					r.metrics[m.Name] = append(r.metrics[m.Name], stringAttrs(dp.Attributes))
				}
				for _, dp := range m.GetHistogram().GetDataPoints() {
					r.metrics[m.Name] = append(r.metrics[m.Name], stringAttrs(dp.Attributes))
				}
			}
		}
	}
}

func (r *metricsReceiver) Export(_ context.Context, req *collectormetrics.ExportMetricsServiceRequest) (*collectormetrics.ExportMetricsServiceResponse, error) {
	r.record(req)
	return &collectormetrics.ExportMetricsServiceResponse{}, nil
}

func (r *metricsReceiver) check(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.service != "billing-svc" {
		t.Errorf("service.name %q", r.service)
	}
	for _, name := range []string{otelmetrics.SentMessages, otelmetrics.ConsumedMessages, otelmetrics.ProcessDuration, otelmetrics.Retries, otelmetrics.DeadLetters, otelmetrics.InFlight} {
		pts := r.metrics[name]
		if len(pts) == 0 {
			t.Errorf("no %s received; got %v", name, r.metrics)
			continue
		}
		if name != otelmetrics.SentMessages && pts[0]["messaging.consumer.group.name"] != "billing" {
			t.Errorf("%s: attributes %v, want the consumer group", name, pts[0])
		}
		if pts[0]["messaging.system"] != "memory" || pts[0]["messaging.destination.name"] != "orders" {
			t.Errorf("%s: attributes %v", name, pts[0])
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

// TestOTLPGRPCExporterSendsMetrics: protocol grpc sends the metrics to a
// gRPC metrics service on the loopback, at the latest when Run returns.
func TestOTLPGRPCExporterSendsMetrics(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rcv := &metricsReceiver{metrics: map[string][]map[string]string{}}
	srv := grpc.NewServer()
	collectormetrics.RegisterMetricsServiceServer(srv, rcv)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() { srv.Stop(); <-served }()
	runOrders(t, otelmetrics.With(otelmetrics.Config{
		Exporters: []string{otelmetrics.ExporterOTLP},
		OTLP:      otelmetrics.OTLP{Protocol: otelmetrics.ProtocolGRPC, Endpoint: ln.Addr().String(), Insecure: true},
	}, otelmetrics.WithServiceName("billing-svc")), nil)
	rcv.check(t)
}

// TestOTLPHTTPExporterPostsMetrics: protocol http/protobuf posts them to
// url_path.
func TestOTLPHTTPExporterPostsMetrics(t *testing.T) {
	rcv := &metricsReceiver{metrics: map[string][]map[string]string{}}
	var paths sync.Map
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths.Store(r.URL.Path, true)
		body, err := io.ReadAll(r.Body)
		var req collectormetrics.ExportMetricsServiceRequest
		if err == nil {
			err = proto.Unmarshal(body, &req)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rcv.record(&req)
		resp, _ := proto.Marshal(&collectormetrics.ExportMetricsServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(resp)
	}))
	defer srv.Close()
	runOrders(t, otelmetrics.With(otelmetrics.Config{
		Exporters: []string{otelmetrics.ExporterOTLP},
		OTLP:      otelmetrics.OTLP{Endpoint: strings.TrimPrefix(srv.URL, "http://"), Insecure: true},
	}, otelmetrics.WithServiceName("billing-svc")), nil)
	if _, ok := paths.Load("/v1/metrics"); !ok {
		t.Error("nothing posted to /v1/metrics")
	}
	rcv.check(t)
}

func TestValidateReportsEveryProblem(t *testing.T) {
	err := otelmetrics.Config{
		Exporters: []string{"statsd", "otlp", "otlp", "none"},
		Interval:  -time.Second, ShutdownTimeout: -time.Second,
		OTLP: otelmetrics.OTLP{Protocol: "thrift", Endpoint: "collector", URLPath: "v1/metrics"},
	}.Validate("metrics")
	for _, w := range []string{
		`metrics.exporters[0]: "statsd", want one of none, prometheus, otlp`,
		`metrics.exporters[2]: "otlp" listed twice`,
		"metrics.exporters: [statsd otlp otlp none], want none alone",
		"metrics.interval: -1s, want > 0 (0 means 30s)",
		"metrics.shutdown_timeout: -1s",
		`metrics.otlp.protocol: "thrift", want http/protobuf (default) or grpc`,
		`metrics.otlp.endpoint: "collector", want host:port`,
		`metrics.otlp.url_path: "v1/metrics", want a path starting with /`,
	} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("Validate = %v\nwant %q", err, w)
		}
	}
	err = otelmetrics.Config{OTLP: otelmetrics.OTLP{Endpoint: "c:4318"}}.Validate("metrics")
	if err == nil || !strings.Contains(err.Error(), "metrics.otlp: set, but metrics.exporters [] does not list otlp") {
		t.Errorf("Validate = %v", err)
	}
	if _, err := otelmetrics.New(otelmetrics.Config{Exporters: []string{"prometheus"}}); err == nil ||
		!strings.Contains(err.Error(), "metrics.exporters: prometheus, but there is no registry") {
		t.Errorf("New without a registry = %v", err)
	}
	if p, err := otelmetrics.New(otelmetrics.Config{Exporters: []string{"none"}}); p != nil || err != nil {
		t.Errorf("New(none) = %v, %v; want nothing", p, err)
	}
}

func attrMap(kvs []attribute.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value.Emit()
	}
	return m
}

// TestStdoutExporterWritesMetrics: exporter stdout writes the instruments
// as JSON, at the latest when Run returns.
func TestStdoutExporterWritesMetrics(t *testing.T) {
	var buf syncBuffer
	runOrders(t, otelmetrics.With(otelmetrics.Config{Exporters: []string{otelmetrics.ExporterStdout}},
		otelmetrics.WithServiceName("billing-svc"), otelmetrics.WithWriter(&buf)), nil)
	out := buf.String()
	for _, want := range []string{`"messaging.client.consumed.messages"`, `"messaging.process.duration"`, `"billing-svc"`} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout export lacks %s:\n%.2000s", want, out)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the exporter's goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
