package service

import (
	"errors"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-go/switchyard/pkg/middleware"
)

// Failure-path health: after failurePathCap failures of the failure path
// in a row (dead letters or delayed retries the broker did not take; each
// such message was nacked), the subscription is unhealthy and its intake
// backs off, doubling from failurePathBackoff up to failurePathMaxBackoff,
// so that a broker refusing dead letters is not met with a tight
// nack-redeliver loop. One delivery settled normally ends it.
const (
	failurePathCap        = 5
	failurePathBackoff    = 100 * time.Millisecond
	failurePathMaxBackoff = 30 * time.Second
)

// pathHealth tracks one subscription's failure path.
type pathHealth struct {
	failures atomic.Int32 // in a row; read on the hot path

	mu    sync.Mutex
	since time.Time
	last  error
}

func newPathHealth() *pathHealth { return &pathHealth{} }

// observe records the outcome of one delivery's stack.
func (h *pathHealth) observe(err error) {
	if err == nil {
		if h.failures.Load() != 0 {
			h.mu.Lock()
			h.failures.Store(0)
			h.since, h.last = time.Time{}, nil
			h.mu.Unlock()
		}
		return
	}
	var fpe *middleware.FailurePathError
	if errors.As(err, &fpe) {
		h.failed(err)
	}
}

// failed records a failure of the failure path.
func (h *pathHealth) failed(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failures.Add(1) == 1 {
		h.since = time.Now()
	}
	h.last = err
}

// backoff is how long intake should pause before the next message.
func (h *pathHealth) backoff() time.Duration {
	n := h.failures.Load()
	if n < failurePathCap {
		return 0
	}
	d := failurePathBackoff
	for i := failurePathCap; i < int(n) && d < failurePathMaxBackoff; i++ {
		d *= 2
	}
	return min(d, failurePathMaxBackoff)
}

// SubscriptionHealth is the state of one subscription of a running service.
type SubscriptionHealth struct {
	// Group and Topic identify the subscription, as the broker names them
	// (with the service's namespace).
	Group, Topic string
	// Handlers names the handlers the subscription feeds, sorted.
	Handlers []string
	// Healthy is false while the failure path keeps failing: the last
	// FailurePathFailures deliveries could neither be dead-lettered nor
	// handed back for delayed retry, and were nacked. Intake is backing off.
	Healthy bool
	// FailurePathFailures counts those failures in a row.
	FailurePathFailures int
	// Since is when the first of them happened; zero when there are none.
	Since time.Time
	// LastError is the last failure-path error, or "".
	LastError string
	// Flow is the pause switch and breaker state of each handler of the
	// subscription, by name; intake is stopped while one is paused or has
	// its breaker open.
	Flow []FlowState
}

// Health reports every subscription of the running service; nil when it is
// not running.
func (s *Service) Health() []SubscriptionHealth {
	s.mu.Lock()
	consumers := s.consumers
	s.mu.Unlock()
	out := make([]SubscriptionHealth, 0, len(consumers))
	for _, c := range consumers {
		h := c.health
		h.mu.Lock()
		n := int(h.failures.Load())
		sh := SubscriptionHealth{Group: c.key.group, Topic: c.key.topic, Handlers: c.handlerNames(), Healthy: n < failurePathCap, FailurePathFailures: n, Since: h.since}
		if h.last != nil {
			sh.LastError = h.last.Error()
		}
		h.mu.Unlock()
		for _, typ := range slices.Sorted(maps.Keys(c.byType)) {
			sh.Flow = append(sh.Flow, c.byType[typ].flow.state())
		}
		out = append(out, sh)
	}
	return out
}

// handlerNames lists the names of c's handlers, sorted.
func (c *consumer) handlerNames() []string {
	names := make([]string, 0, len(c.byType))
	for _, h := range c.byType {
		names = append(names, h.info.Name)
	}
	slices.Sort(names)
	return names
}
