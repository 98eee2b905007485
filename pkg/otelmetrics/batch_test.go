package otelmetrics_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/switchyard-go/switchyard/pkg/metrics"
	"github.com/switchyard-go/switchyard/pkg/otelmetrics"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// runBatches runs a batch handler "rollup" under opt and publishes five
// orders, which it handles in one batch (the window waits for them);
// it returns once Run did. While Run still runs, it calls running.
func runBatches(t *testing.T, opt service.Option, running func()) {
	t.Helper()
	svc := newService(t, opt)
	handled := make(chan int, 10)
	if err := service.HandleBatch(svc, "rollup", func(_ context.Context, items []service.Item[orderPlaced]) error {
		handled <- len(items)
		return nil
	}, service.BatchSize(5), service.BatchWindow(guard), service.Concurrency(1)); err != nil {
		t.Fatal(err)
	}
	serve(t, svc, func() {
		for _, id := range []string{"o-1", "o-2", "o-3", "o-4", "o-5"} {
			if err := svc.Publish(context.Background(), orderPlaced{OrderID: id}); err != nil {
				t.Fatal(err)
			}
		}
		for n := 0; n < 5; {
			select {
			case k := <-handled:
				n += k
			case <-time.After(guard):
				t.Fatalf("%d of 5 orders handled", n)
			}
		}
		// The batch is recorded after the handler returned.
		waitStats(t, svc, func(st metrics.Snapshot) bool { return st.Batches >= 1 })
	}, running)
}

// TestBatchInstruments: a batch handler's batches are recorded, by
// handler, as switchyard.batch.size and switchyard.batch.duration.
func TestBatchInstruments(t *testing.T) {
	rm := collect(t, runBatches)
	var sizes, durations uint64
	var messages int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Histogram[int64]:
				if m.Name == otelmetrics.BatchSize {
					for _, dp := range d.DataPoints {
						if h, _ := dp.Attributes.Value(otelmetrics.HandlerKey); h.AsString() != "rollup" {
							t.Errorf("%s attributes %v, want switchyard.handler rollup", m.Name, dp.Attributes.ToSlice())
						}
						sizes += dp.Count
						messages += dp.Sum
					}
				}
			case metricdata.Histogram[float64]:
				if m.Name == otelmetrics.BatchDuration {
					for _, dp := range d.DataPoints {
						durations += dp.Count
					}
				}
			}
		}
	}
	if sizes < 1 || messages != 5 || durations != sizes {
		t.Fatalf("%s: %d batches of %d messages in all, %s: %d batches; want the 5 messages and a duration per batch",
			otelmetrics.BatchSize, sizes, messages, otelmetrics.BatchDuration, durations)
	}
}

// TestBatchInstrumentsKeepThePrometheusNames: through the Prometheus
// exporter they read as package metrics' switchyard_batch_size and
// switchyard_batch_duration_seconds, so dashboards work with either.
func TestBatchInstrumentsKeepThePrometheusNames(t *testing.T) {
	reg := prometheus.NewRegistry()
	runBatches(t, otelmetrics.With(otelmetrics.Config{Exporters: []string{otelmetrics.ExporterPrometheus}}, otelmetrics.WithRegisterer(reg)), func() {
		names := gatheredNames(t, reg)
		for _, n := range []string{"switchyard_batch_size", "switchyard_batch_duration_seconds"} {
			if !names[n] {
				t.Errorf("no %s in %v", n, names)
			}
		}
	})
}
