package metrics_test

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchyard-go/switchyard/pkg/metrics"
)

// TestFlowGauges: Multi forwards breaker states and pauses to the
// recorders that take them; the Prometheus gauges show the current state.
func TestFlowGauges(t *testing.T) {
	reg := prometheus.NewRegistry()
	p, err := metrics.NewPrometheus(reg)
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.Multi{&metrics.Stats{}, p} // Stats does not take them: skipped
	m.BreakerState("pay", "open")
	m.BreakerState("pay", "half_open")
	m.Paused("pay", true)
	want := `
# HELP switchyard_handler_breaker_state 1 for the current state of the handler's circuit breaker (closed, open, half_open), 0 for the others.
# TYPE switchyard_handler_breaker_state gauge
switchyard_handler_breaker_state{handler="pay",state="closed"} 0
switchyard_handler_breaker_state{handler="pay",state="half_open"} 1
switchyard_handler_breaker_state{handler="pay",state="open"} 0
# HELP switchyard_handler_paused 1 while the handler is paused by Service.Pause.
# TYPE switchyard_handler_paused gauge
switchyard_handler_paused{handler="pay"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "switchyard_handler_breaker_state", "switchyard_handler_paused"); err != nil {
		t.Fatal(err)
	}
}
