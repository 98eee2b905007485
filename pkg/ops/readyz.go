package ops

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/switchyard-go/switchyard/pkg/service"
)

// Readiness is the body of /readyz.
type Readiness struct {
	// Ready is true when the service takes work: the status code is 200,
	// else 503.
	Ready bool `json:"ready"`
	// Status is starting, running, shutting_down or stopped.
	Status string `json:"status"`
	// Reason says why the service is not ready; "" when it is.
	Reason string `json:"reason,omitempty"`
	// Broker is the broker connection's health, when the broker can tell
	// (it implements broker.HealthChecker; every Switchyard adapter does).
	Broker *BrokerHealth `json:"broker,omitempty"`
	// Subscriptions is the health of every subscription of the running
	// service.
	Subscriptions []Subscription `json:"subscriptions"`
}

// BrokerHealth is the broker's part of [Readiness].
type BrokerHealth struct {
	// Name is the adapter: memory, amqp or kafka.
	Name string `json:"name"`
	// Healthy is true when the broker's check passed within
	// http.readiness.broker_timeout.
	Healthy bool `json:"healthy"`
	// Error is what the check found wrong; "" when healthy.
	Error string `json:"error,omitempty"`
}

// Subscription is one subscription's health in [Readiness].
type Subscription struct {
	Group string `json:"group"`
	Topic string `json:"topic"`
	// Handlers names the handlers the subscription feeds.
	Handlers            []string   `json:"handlers,omitempty"`
	Healthy             bool       `json:"healthy"`
	FailurePathFailures int        `json:"failure_path_failures,omitempty"`
	Since               *time.Time `json:"since,omitempty"`
	LastError           string     `json:"last_error,omitempty"`
	// Backlog is what the group has not consumed yet of the topic (see
	// broker.BacklogReader): absent when the broker cannot tell, is
	// unreachable, or the reading failed (BacklogError says why).
	Backlog *int64 `json:"backlog,omitempty"`
	// BacklogPartitions is the backlog per partition on Kafka.
	BacklogPartitions map[int32]int64 `json:"backlog_partitions,omitempty"`
	BacklogError      string          `json:"backlog_error,omitempty"`
}

// Statuses of [Readiness].
const (
	StatusStarting     = "starting"
	StatusRunning      = "running"
	StatusShuttingDown = "shutting_down"
	StatusStopped      = "stopped"
)

// Check is the readiness of svc: ready when Run has subscribed every
// handler, is not shutting down, and every subscription is healthy.
func Check(svc *service.Service) Readiness {
	if svc == nil {
		return Readiness{Status: StatusStopped, Reason: "not running", Subscriptions: []Subscription{}}
	}
	r := Readiness{Status: StatusRunning, Subscriptions: []Subscription{}}
	var unhealthy []string
	for _, h := range svc.Health() {
		sub := Subscription{Group: h.Group, Topic: h.Topic, Handlers: h.Handlers, Healthy: h.Healthy, FailurePathFailures: h.FailurePathFailures, LastError: h.LastError}
		if !h.Since.IsZero() {
			since := h.Since
			sub.Since = &since
		}
		r.Subscriptions = append(r.Subscriptions, sub)
		if !h.Healthy {
			unhealthy = append(unhealthy, fmt.Sprintf("subscription %s/%s unhealthy: its failure path failed %d times in a row since %s (messages nacked, intake backing off): %s",
				h.Group, h.Topic, h.FailurePathFailures, h.Since.Format(time.RFC3339), h.LastError))
		}
	}
	if down, cause := svc.ShuttingDown(); down {
		r.Status, r.Reason = StatusShuttingDown, "shutting down: "+cause.Error()
		return r
	}
	select {
	case <-svc.Ready():
	default:
		r.Status, r.Reason = StatusStarting, "starting: not every handler is subscribed yet (or Run is not running)"
		return r
	}
	if len(unhealthy) > 0 {
		r.Reason = strings.Join(unhealthy, "; ")
		return r
	}
	r.Ready = true
	return r
}

// withBroker adds a reading of the broker to r: the broker's health, every
// subscription's backlog, and the reasons they give for not being ready
// (the broker is unreachable; a backlog is above maxBacklog when > 0).
// A service starting or shutting down keeps its own reason first.
func withBroker(r Readiness, pr probe, maxBacklog int64) Readiness {
	var reasons []string
	if pr.checked {
		r.Broker = &BrokerHealth{Name: pr.broker, Healthy: pr.healthErr == nil}
		if pr.healthErr != nil {
			r.Broker.Error = pr.healthErr.Error()
			reasons = append(reasons, fmt.Sprintf("broker %s unreachable: %v", pr.broker, pr.healthErr))
		}
	}
	for i := range r.Subscriptions {
		sub := &r.Subscriptions[i]
		reading, ok := pr.backlogs[subKey{sub.Group, sub.Topic}]
		switch {
		case !ok:
		case reading.err != nil:
			sub.BacklogError = reading.err.Error()
		default:
			n := reading.backlog.Messages
			sub.Backlog, sub.BacklogPartitions = &n, reading.backlog.Partitions
			if maxBacklog > 0 && n > maxBacklog {
				reasons = append(reasons, fmt.Sprintf("subscription %s/%s backlog %d above http.readiness.max_backlog %d", sub.Group, sub.Topic, n, maxBacklog))
			}
		}
	}
	if len(reasons) == 0 || r.Status == StatusShuttingDown || r.Status == StatusStopped {
		return r
	}
	if r.Reason != "" {
		reasons = append([]string{r.Reason}, reasons...)
	}
	r.Ready, r.Reason = false, strings.Join(reasons, "; ")
	return r
}

func (s *Server) readyz(w http.ResponseWriter, req *http.Request) {
	svc := s.svc.Load()
	r := Check(svc)
	if svc != nil && r.Status != StatusShuttingDown {
		r = withBroker(r, s.prober.read(req.Context(), svc), s.cfg.Readiness.MaxBacklog)
	}
	if s.stopped.Load() && r.Status != StatusShuttingDown {
		r.Ready, r.Status, r.Reason = false, StatusStopped, "stopped: Run is returning"
	}
	w.Header().Set("Content-Type", "application/json")
	if !r.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(r)
}
