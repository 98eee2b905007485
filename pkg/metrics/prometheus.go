package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Prometheus exports the runtime's counters and a handling-latency histogram.
type Prometheus struct {
	published    *prometheus.CounterVec
	handled      *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	retried      *prometheus.CounterVec
	deadLettered *prometheus.CounterVec
	nacked       *prometheus.CounterVec
	duplicates   *prometheus.CounterVec
	breakerState *prometheus.GaugeVec // see flow.go
	paused       *prometheus.GaugeVec
	// batchSize and batchDuration: see batch.go.
	batchSize, batchDuration *prometheus.HistogramVec
}

// NewPrometheus registers Switchyard's metrics with reg (namespace
// "switchyard") and returns a Recorder feeding them.
func NewPrometheus(reg prometheus.Registerer) (*Prometheus, error) {
	p := &Prometheus{
		published: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "switchyard", Name: "published_total",
			Help: "Events published and confirmed by the broker."}, []string{"topic", "event_type"}),
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "switchyard", Name: "handled_total",
			Help: "Messages a handler completed successfully."}, []string{"handler"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "switchyard", Name: "handle_duration_seconds",
			Help: "Time from delivery to completion, retries included.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10)}, []string{"handler"}),
		retried: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "switchyard", Name: "retries_total",
			Help: "Failed attempts that were retried."}, []string{"handler"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "switchyard", Name: "dead_lettered_total",
			Help: "Messages given up on and published to a dead-letter topic."}, []string{"handler", "reason"}),
		nacked: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "switchyard", Name: "nacked_total",
			Help: "Messages handed back to the broker for redelivery (dead-letter publish failed, or shutdown)."}, []string{"handler"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "switchyard", Name: "duplicates_total",
			Help: "Redelivered messages skipped by the idempotency check."}, []string{"handler"}),
		breakerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "switchyard", Name: "handler_breaker_state",
			Help: "1 for the current state of the handler's circuit breaker (closed, open, half_open), 0 for the others."}, []string{"handler", "state"}),
		paused: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "switchyard", Name: "handler_paused",
			Help: "1 while the handler is paused by Service.Pause."}, []string{"handler"}),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "switchyard", Name: "batch_size",
			Help: "Messages in each batch a batch handler handled.", Buckets: prometheus.ExponentialBuckets(1, 2, 12)}, []string{"handler"}),
		batchDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "switchyard", Name: "batch_duration_seconds",
			Help: "Time a batch handler took for one batch.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10)}, []string{"handler"}),
	}
	for _, c := range []prometheus.Collector{p.published, p.handled, p.duration, p.retried, p.deadLettered, p.nacked, p.duplicates, p.breakerState, p.paused, p.batchSize, p.batchDuration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (p *Prometheus) Published(topic, eventType string) {
	p.published.WithLabelValues(topic, eventType).Inc()
}
func (p *Prometheus) Handled(h string, d time.Duration) {
	p.handled.WithLabelValues(h).Inc()
	p.duration.WithLabelValues(h).Observe(d.Seconds())
}
func (p *Prometheus) Retried(h string)              { p.retried.WithLabelValues(h).Inc() }
func (p *Prometheus) DeadLettered(h, reason string) { p.deadLettered.WithLabelValues(h, reason).Inc() }
func (p *Prometheus) Nacked(h string)               { p.nacked.WithLabelValues(h).Inc() }
func (p *Prometheus) Duplicate(h string)            { p.duplicates.WithLabelValues(h).Inc() }
