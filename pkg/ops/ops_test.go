package ops_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/ops"
	"github.com/switchyard-go/switchyard/pkg/retry"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// running is a service with the server, run by a test.
type running struct {
	svc    *service.Service
	srv    *ops.Server
	base   string // http://127.0.0.1:port
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, b broker.Broker, cfg ops.Config, fn func(context.Context, paid) error) *running {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	srv, err := ops.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	svc := service.New(b, srv.Option(), service.WithShutdownTimeout(10*time.Second),
		service.WithDefaults(service.Policy{Retry: retryOnce}))
	if err := service.Handle(svc, "payments.record", fn); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{svc: svc, srv: srv, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- svc.Run(ctx) }()
	select {
	case <-svc.Ready():
	case err := <-r.done:
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("service not ready")
	}
	r.base = "http://" + srv.Addr()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(15 * time.Second):
			t.Error("Run did not return")
		}
	})
	return r
}

// stop cancels Run and returns its error.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		return err
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return")
	}
	return nil
}

func TestEndpointsOfARunningService(t *testing.T) {
	handled := make(chan string, 2)
	r := start(t, newFaultyBroker(t), ops.Config{}, func(_ context.Context, e paid) error {
		handled <- e.ID
		return nil
	})
	for _, id := range []string{"p-1", "p-2"} {
		if err := r.svc.Publish(context.Background(), paid{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		select {
		case <-handled:
		case <-time.After(10 * time.Second):
			t.Fatal("not handled")
		}
	}

	if code, body := get(t, r.base+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	code, rd := readiness(t, r.base)
	if code != http.StatusOK || !rd.Ready || rd.Status != ops.StatusRunning || rd.Reason != "" ||
		len(rd.Subscriptions) != 1 || rd.Subscriptions[0].Group != "payments.record" || rd.Subscriptions[0].Topic != "payments" || !rd.Subscriptions[0].Healthy {
		t.Errorf("/readyz: %d %+v", code, rd)
	}
	// The recorder is fed after the ack; wait for the second count.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, metrics := get(t, r.base+"/metrics")
		if strings.Contains(metrics, `switchyard_handled_total{handler="payments.record"} 2`) {
			for _, want := range []string{
				`switchyard_published_total{event_type="payments.paid",topic="payments"} 2`,
				`switchyard_handle_duration_seconds_count{handler="payments.record"} 2`,
				"go_goroutines",
			} {
				if !strings.Contains(metrics, want) {
					t.Errorf("/metrics lacks %q", want)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics never counted two handled messages:\n%s", metrics)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code, _ := get(t, r.base+"/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("/debug/pprof/ without pprof: %d, want 404", code)
	}

	// The server stops with the service.
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(r.base + "/healthz"); err == nil {
		t.Error("the server still answers after Run returned")
	}
}

func TestReadyzFailsWhenASubscriptionDies(t *testing.T) {
	b := newFaultyBroker(t)
	entered, release := make(chan struct{}, 1), make(chan struct{})
	r := start(t, b, ops.Config{}, func(context.Context, paid) error {
		entered <- struct{}{}
		<-release // keeps Run in its shutdown while the test looks
		return nil
	})
	if err := r.svc.Publish(context.Background(), paid{ID: "p-1"}); err != nil {
		t.Fatal(err)
	}
	<-entered
	if code, _ := readiness(t, r.base); code != http.StatusOK {
		t.Fatalf("/readyz before the fault: %d", code)
	}
	b.kill()
	rd := waitReadiness(t, r.base, "503 shutting_down", func(code int, rd ops.Readiness) bool {
		return code == http.StatusServiceUnavailable && rd.Status == ops.StatusShuttingDown
	})
	if !strings.Contains(rd.Reason, `shutting down: service: group "payments.record" on topic "payments"`) || rd.Ready {
		t.Errorf("reason %q", rd.Reason)
	}
	if code, _ := get(t, r.base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz while shutting down: %d, want 200 (the process is alive)", code)
	}
	close(release)
	select {
	case err := <-r.done:
		if err == nil || !strings.Contains(err.Error(), "closed its channel") {
			t.Errorf("Run = %v, want the subscription's death", err)
		}
		r.done <- err
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return")
	}
}

func TestReadyzFailsWhileShuttingDown(t *testing.T) {
	entered, release := make(chan struct{}, 1), make(chan struct{})
	r := start(t, newFaultyBroker(t), ops.Config{}, func(context.Context, paid) error {
		entered <- struct{}{}
		<-release
		return nil
	})
	if err := r.svc.Publish(context.Background(), paid{ID: "p-1"}); err != nil {
		t.Fatal(err)
	}
	<-entered
	r.cancel()
	rd := waitReadiness(t, r.base, "503 shutting_down", func(code int, rd ops.Readiness) bool {
		return code == http.StatusServiceUnavailable && rd.Status == ops.StatusShuttingDown
	})
	if rd.Reason != "shutting down: context canceled" {
		t.Errorf("reason %q", rd.Reason)
	}
	close(release)
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
}

var retryOnce = retry.Policy{MaxAttempts: 1}

func TestReadyzFailsWhileTheFailurePathFailsAndRecovers(t *testing.T) {
	b := newFaultyBroker(t)
	b.failDeadLetters.Store(true)
	r := start(t, b, ops.Config{}, func(context.Context, paid) error {
		return failure.Permanent(errors.New("card declined"))
	})
	if err := r.svc.Publish(context.Background(), paid{ID: "p-1"}); err != nil {
		t.Fatal(err)
	}
	rd := waitReadiness(t, r.base, "503 for an unhealthy subscription", func(code int, rd ops.Readiness) bool {
		return code == http.StatusServiceUnavailable
	})
	if rd.Status != ops.StatusRunning || !strings.Contains(rd.Reason, "subscription payments.record/payments unhealthy: its failure path failed") ||
		!strings.Contains(rd.Reason, "dead-letter topic refused") || rd.Subscriptions[0].Healthy || rd.Subscriptions[0].FailurePathFailures < 5 {
		t.Errorf("/readyz: %+v", rd)
	}
	b.failDeadLetters.Store(false) // the dead letter goes through: healthy again
	waitReadiness(t, r.base, "200 after the failure path recovered", func(code int, rd ops.Readiness) bool {
		return code == http.StatusOK && rd.Ready
	})
}

func TestPprofWhenAskedFor(t *testing.T) {
	r := start(t, newFaultyBroker(t), ops.Config{Pprof: true}, func(context.Context, paid) error { return nil })
	if code, body := get(t, r.base+"/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("/debug/pprof/: %d", code)
	}
}

func TestRunFailsWhenTheServerCannotListen(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	svc := service.New(newFaultyBroker(t), ops.With(ops.Config{Addr: ln.Addr().String()}))
	if err := service.Handle(svc, "h", func(context.Context, paid) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := svc.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "ops: listen on "+ln.Addr().String()) {
		t.Fatalf("Run = %v, want the listen error", err)
	}
	svc = service.New(newFaultyBroker(t), ops.With(ops.Config{Addr: "nowhere"}))
	_ = service.Handle(svc, "h", func(context.Context, paid) error { return nil })
	if err := svc.Run(context.Background()); err == nil || !strings.Contains(err.Error(), `ops.addr: "nowhere"`) {
		t.Fatalf("Run = %v, want the invalid address", err)
	}
}

// A publish-only process gets its operations endpoints: Run of a
// PublishOnly service serves the server, /readyz is ready with no subscriptions, and
// /metrics counts what it published.
func TestPublishOnlyServiceServesItsEndpoints(t *testing.T) {
	srv, err := ops.New(ops.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	svc := service.New(newFaultyBroker(t), srv.Option(), service.PublishOnly())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(15 * time.Second):
			t.Error("Run did not return")
		}
	}()
	select {
	case <-svc.Ready():
	case err := <-done:
		t.Fatalf("Run of a publish-only service: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("service not ready")
	}
	if err := svc.Publish(context.Background(), paid{ID: "p-1"}); err != nil {
		t.Fatal(err)
	}
	base := "http://" + srv.Addr()
	if code, rd := readiness(t, base); code != http.StatusOK || !rd.Ready || len(rd.Subscriptions) != 0 {
		t.Errorf("/readyz: %d %+v", code, rd)
	}
	if _, metrics := get(t, base+"/metrics"); !strings.Contains(metrics, `switchyard_published_total{event_type="payments.paid",topic="payments"} 1`) {
		t.Errorf("/metrics does not count the publish:\n%s", metrics)
	}
}

// A server that stops serving while the service runs (its listener
// failed) ends Run with the reason: a process whose /readyz no longer
// answers would be restarted by its orchestrator anyway, and running on
// unobserved hides that. Break it (only log the Serve error) and Run runs
// on.
func TestServerThatStopsServingEndsRun(t *testing.T) {
	r := start(t, newFaultyBroker(t), ops.Config{}, func(context.Context, paid) error { return nil })
	if err := ops.BreakListener(r.srv); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		if err == nil || !strings.Contains(err.Error(), "stopped serving") {
			t.Fatalf("Run = %v, want the server's failure", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run still running 15s after the operations server stopped serving")
	}
}
