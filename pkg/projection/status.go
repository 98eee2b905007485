package projection

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-go/switchyard/pkg/eventstore"
)

// Status is what a projection last saw of itself in this process.
type Status struct {
	// Name is the projection's name.
	Name string
	// Target is the live read model.
	Target string
	// Generation is the live target's generation.
	Generation int
	// Position is the last global position applied to the live target
	// (0 for a broker-fed projection).
	Position int64
	// Head is the event store's head position last seen by Run or
	// Rebuild, and Lag how far the live target is behind it, in
	// positions (0 once everything of the projection's types up to Head
	// was applied). Zero for a broker-fed projection: its lag is the
	// consumer group's.
	Head, Lag int64
	// Rebuilding is true while a rebuild is in progress, into
	// RebuildTarget, which has reached RebuildPosition.
	Rebuilding      bool
	RebuildTarget   string
	RebuildPosition int64
	// Running is true while Run runs in this process.
	Running bool
	// Applied counts the events this process applied, rebuilds included.
	Applied int64
	// LastError is the last error of a unit of work, cleared by the next
	// success.
	LastError error
}

// Status returns the projection's status as last observed by this
// process; it does no I/O.
func (p *Projection) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status
}

func (p *Projection) observe(cp Checkpoint, sub *eventstore.Subscription) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := &p.status
	s.Target, s.Generation, s.Position = cp.Target, cp.Generation, cp.Position
	s.Rebuilding = cp.Rebuild != nil
	s.RebuildTarget, s.RebuildPosition = "", 0
	if cp.Rebuild != nil {
		s.RebuildTarget, s.RebuildPosition = cp.Rebuild.Target, cp.Rebuild.Position
	}
	switch {
	case sub != nil: // Run's subscription, at cp.Position
		s.Head, s.Lag = sub.Head(), sub.Lag()
	case s.Head > 0:
		s.Lag = max(0, s.Head-s.Position)
	}
	s.LastError = nil
}

// observeIdle notes what a caught-up Run saw.
func (p *Projection) observeIdle(sub *eventstore.Subscription) {
	p.mu.Lock()
	p.status.Head, p.status.Lag = sub.Head(), sub.Lag()
	p.mu.Unlock()
}

// observeRebuild notes cp and the head seen by a rebuild's subscription.
func (p *Projection) observeRebuild(cp Checkpoint, sub *eventstore.Subscription) {
	p.mu.Lock()
	p.status.Head = max(p.status.Head, sub.Head())
	p.mu.Unlock()
	p.observe(cp, nil)
}

func (p *Projection) applied(n int) {
	p.mu.Lock()
	p.status.Applied += int64(n)
	p.mu.Unlock()
}

func (p *Projection) setRunning(r bool) {
	p.mu.Lock()
	p.status.Running = r
	p.mu.Unlock()
}

func (p *Projection) setError(err error) {
	p.mu.Lock()
	p.status.LastError = err
	p.mu.Unlock()
}

// Collector exports the status of projections as Prometheus metrics, read
// at each scrape, beside pkg/metrics' (namespace "switchyard", label
// "projection"):
//
//	switchyard_projection_position          last position applied to the live target
//	switchyard_projection_head              event store head last seen
//	switchyard_projection_lag               positions behind the head
//	switchyard_projection_rebuilding        1 while a rebuild runs
//	switchyard_projection_rebuild_position  position the rebuild reached
//	switchyard_projection_applied_total     events applied by this process
//
//	srv, err := ops.New(ops.Config{Addr: ":9090"}) // the service's /metrics
//	srv.Registry().MustRegister(projection.NewCollector(summaries, stock))
type Collector struct {
	ps  []*Projection
	err error // projections given twice, by name
}

// NewCollector returns a collector for ps. Its series are labelled by
// projection name, so each name may be given once: a projection given
// twice (or two of one name) makes registering the collector fail with an
// error naming it, instead of every later scrape failing on duplicate
// metrics.
func NewCollector(ps ...*Projection) *Collector {
	c := &Collector{ps: ps}
	seen := make(map[string]int, len(ps))
	for i, p := range ps {
		if j, ok := seen[p.Name()]; ok {
			c.err = errors.Join(c.err, fmt.Errorf("projection: collector: projection %q given twice (arguments %d and %d); its series are labelled by name, give each projection once", p.Name(), j+1, i+1))
			continue
		}
		seen[p.Name()] = i
	}
	return c
}

var (
	descPosition        = prometheus.NewDesc("switchyard_projection_position", "Last global position applied to the projection's live read model.", []string{"projection"}, nil)
	descHead            = prometheus.NewDesc("switchyard_projection_head", "Event store head position last seen by the projection.", []string{"projection"}, nil)
	descLag             = prometheus.NewDesc("switchyard_projection_lag", "Positions the projection's live read model is behind the event store head.", []string{"projection"}, nil)
	descRebuilding      = prometheus.NewDesc("switchyard_projection_rebuilding", "1 while a rebuild of the projection is in progress.", []string{"projection"}, nil)
	descRebuildPosition = prometheus.NewDesc("switchyard_projection_rebuild_position", "Global position the rebuild in progress reached.", []string{"projection"}, nil)
	descApplied         = prometheus.NewDesc("switchyard_projection_applied_total", "Events applied by the projection in this process, rebuilds included.", []string{"projection"}, nil)
)

// Describe implements prometheus.Collector. With projections given twice
// it describes an invalid metric instead, which makes Register return the
// error.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	if c.err != nil {
		ch <- prometheus.NewInvalidDesc(c.err)
		return
	}
	for _, d := range []*prometheus.Desc{descPosition, descHead, descLag, descRebuilding, descRebuildPosition, descApplied} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	if c.err != nil { // registered unchecked: fail the scrape with the reason
		ch <- prometheus.NewInvalidMetric(prometheus.NewInvalidDesc(c.err), c.err)
		return
	}
	for _, p := range c.ps {
		s := p.Status()
		rebuilding := 0.0
		if s.Rebuilding {
			rebuilding = 1
		}
		ch <- prometheus.MustNewConstMetric(descPosition, prometheus.GaugeValue, float64(s.Position), s.Name)
		ch <- prometheus.MustNewConstMetric(descHead, prometheus.GaugeValue, float64(s.Head), s.Name)
		ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, float64(s.Lag), s.Name)
		ch <- prometheus.MustNewConstMetric(descRebuilding, prometheus.GaugeValue, rebuilding, s.Name)
		ch <- prometheus.MustNewConstMetric(descRebuildPosition, prometheus.GaugeValue, float64(s.RebuildPosition), s.Name)
		ch <- prometheus.MustNewConstMetric(descApplied, prometheus.CounterValue, float64(s.Applied), s.Name)
	}
}
