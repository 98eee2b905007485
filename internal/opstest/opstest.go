// Package opstest runs a service with its operations server for the
// broker adapters' tests, which check on the real brokers what /readyz and
// /metrics say while the broker goes down and comes back, and while a
// consumer group has a known backlog.
//
// The service has one handler, "payments.hold" in group "payments.hold" on
// topic "payments", that blocks every event until the test releases it.
package opstest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/ops"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// Paid is the event the service handles.
type Paid struct {
	ID string `json:"id"`
}

func (Paid) EventType() string  { return "payments.paid" }
func (Paid) EventVersion() int  { return 1 }
func (Paid) EventTopic() string { return Topic }

// The handler's name, group and topic as the broker sees them (without a
// namespace).
const (
	Handler = "payments.hold"
	Group   = "payments.hold"
	Topic   = "payments"
)

// Service is a running service with its operations server.
type Service struct {
	Svc  *service.Service
	Base string // http://127.0.0.1:port

	t       testing.TB
	release chan struct{}
	once    sync.Once
	handled chan string
}

// Run runs a service on b with the operations server of cfg (Addr
// defaults to 127.0.0.1:0), its handler taking one event at a time
// (concurrency 1, prefetch 1) and holding it until [Service.Release]. Run
// stops when the test ends.
func Run(t testing.TB, b broker.Broker, cfg ops.Config) *Service {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	srv, err := ops.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &Service{t: t, release: make(chan struct{}), handled: make(chan string, 1000)}
	s.Svc = service.New(b, srv.Option(), service.WithShutdownTimeout(10*time.Second))
	err = service.Handle(s.Svc, Handler, func(ctx context.Context, e Paid) error {
		select {
		case <-s.release:
		case <-ctx.Done():
			return ctx.Err()
		}
		s.handled <- e.ID
		return nil
	}, service.WithPolicy(service.Policy{Concurrency: 1, Prefetch: 1}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		s.Release()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return within 30s")
		}
	})
	select {
	case <-s.Svc.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("the service was not ready within 60s")
	}
	s.Base = "http://" + srv.Addr()
	return s
}

// Release lets the handler complete every event, held or to come.
func (s *Service) Release() { s.once.Do(func() { close(s.release) }) }

// Handled waits for n events to be handled, failing after timeout.
func (s *Service) Handled(n int, timeout time.Duration) {
	s.t.Helper()
	deadline := time.After(timeout)
	for i := range n {
		select {
		case <-s.handled:
		case <-deadline:
			s.t.Fatalf("%d of %d events handled within %s", i, n, timeout)
		}
	}
}

// Get fetches path from the server and returns the status code and body.
func (s *Service) Get(path string) (int, string, error) {
	resp, err := http.Get(s.Base + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// Readyz fetches and decodes /readyz.
func (s *Service) Readyz() (int, ops.Readiness, error) {
	code, body, err := s.Get("/readyz")
	if err != nil {
		return 0, ops.Readiness{}, err
	}
	var r ops.Readiness
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		return code, r, fmt.Errorf("/readyz body %q: %w", body, err)
	}
	return code, r, nil
}

// WaitReadyz polls /readyz until ok accepts it, failing after timeout with
// the last answer.
func (s *Service) WaitReadyz(timeout time.Duration, what string, ok func(code int, r ops.Readiness) bool) ops.Readiness {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		code, r, err := s.Readyz()
		if err == nil && ok(code, r) {
			return r
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("/readyz never showed %s within %s; last: %d %+v %v", what, timeout, code, r, err)
		}
		<-tick.C
	}
}

// WaitMetrics polls /metrics until ok accepts its body, failing after
// timeout with the last body.
func (s *Service) WaitMetrics(timeout time.Duration, what string, ok func(body string) bool) string {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		_, body, err := s.Get("/metrics")
		if err == nil && ok(body) {
			return body
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("/metrics never showed %s within %s; last (%v):\n%s", what, timeout, err, body)
		}
		<-tick.C
	}
}

// Backlog returns the backlog /readyz reports for the handler's
// subscription, or -1 when it reports none.
func Backlog(r ops.Readiness) int64 {
	for _, sub := range r.Subscriptions {
		if sub.Group == Group && sub.Topic == Topic && sub.Backlog != nil {
			return *sub.Backlog
		}
	}
	return -1
}
