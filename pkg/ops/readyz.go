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
	// Subscriptions is the health of every subscription of the running
	// service.
	Subscriptions []Subscription `json:"subscriptions"`
}

// Subscription is one subscription's health in [Readiness].
type Subscription struct {
	Group               string     `json:"group"`
	Topic               string     `json:"topic"`
	Healthy             bool       `json:"healthy"`
	FailurePathFailures int        `json:"failure_path_failures,omitempty"`
	Since               *time.Time `json:"since,omitempty"`
	LastError           string     `json:"last_error,omitempty"`
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
		sub := Subscription{Group: h.Group, Topic: h.Topic, Healthy: h.Healthy, FailurePathFailures: h.FailurePathFailures, LastError: h.LastError}
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

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	r := Check(s.svc.Load())
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
