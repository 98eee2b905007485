package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func record(r Recorder) {
	r.Published("orders", "orders.order_placed")
	r.Handled("inventory.reserve", 3*time.Millisecond)
	r.Handled("inventory.reserve", 5*time.Millisecond)
	r.Retried("inventory.reserve")
	r.DeadLettered("inventory.reserve", "permanent")
	r.Nacked("inventory.reserve")
	r.Duplicate("inventory.reserve")
}

func TestStatsAndMultiCountEveryEvent(t *testing.T) {
	var a, b Stats
	record(Multi{&a, &b})
	want := Snapshot{Published: 1, Handled: 2, Retried: 1, DeadLettered: 1, Nacked: 1, Duplicates: 1}
	for _, s := range []*Stats{&a, &b} {
		if got := s.Snapshot(); got != want {
			t.Errorf("snapshot = %+v, want %+v", got, want)
		}
	}
}

func TestPrometheusExportsTheSameCounts(t *testing.T) {
	reg := prometheus.NewRegistry()
	p, err := NewPrometheus(reg)
	if err != nil {
		t.Fatal(err)
	}
	record(p)
	for _, name := range []string{"switchyard_published_total", "switchyard_handled_total", "switchyard_handle_duration_seconds",
		"switchyard_retries_total", "switchyard_dead_lettered_total", "switchyard_nacked_total", "switchyard_duplicates_total"} {
		if n, err := testutil.GatherAndCount(reg, name); err != nil || n != 1 {
			t.Errorf("%s: %d series (%v), want 1", name, n, err)
		}
	}
	expected := `
# HELP switchyard_dead_lettered_total Messages given up on and published to a dead-letter topic.
# TYPE switchyard_dead_lettered_total counter
switchyard_dead_lettered_total{handler="inventory.reserve",reason="permanent"} 1
# HELP switchyard_handled_total Messages a handler completed successfully.
# TYPE switchyard_handled_total counter
switchyard_handled_total{handler="inventory.reserve"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expected), "switchyard_handled_total", "switchyard_dead_lettered_total"); err != nil {
		t.Error(err)
	}
	if _, err := NewPrometheus(reg); err == nil {
		t.Error("registering twice in one registry succeeded; want the duplicate-registration error")
	}
}

// Batches reach Stats and, through Multi, the Prometheus histograms.
func TestBatchRecorder(t *testing.T) {
	reg := prometheus.NewRegistry()
	p, err := NewPrometheus(reg)
	if err != nil {
		t.Fatal(err)
	}
	var s Stats
	var r Recorder = Multi{&s, p}
	r.(BatchRecorder).Batch("sink", 7, time.Millisecond)
	r.(BatchRecorder).Batch("sink", 3, time.Millisecond)
	if snap := s.Snapshot(); snap.Batches != 2 || snap.Batched != 10 {
		t.Errorf("snapshot %+v, want 2 batches of 10 messages", snap)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]uint64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			if h := m.GetHistogram(); h != nil {
				found[f.GetName()] = h.GetSampleCount()
				if f.GetName() == "switchyard_batch_size" && h.GetSampleSum() != 10 {
					t.Errorf("batch_size sum %v, want 10", h.GetSampleSum())
				}
			}
		}
	}
	if found["switchyard_batch_size"] != 2 || found["switchyard_batch_duration_seconds"] != 2 {
		t.Errorf("histograms %v, want 2 observations each", found)
	}
}
