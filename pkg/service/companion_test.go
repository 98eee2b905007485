package service_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// recordingCompanion records what Run tells it and what the service says
// of itself at each point.
type recordingCompanion struct {
	startErr     error
	events       []string
	readyAtStart bool
	downAtStop   bool
	causeAtStop  error
	svc          *service.Service
}

func (c *recordingCompanion) Start(_ context.Context, s *service.Service) error {
	c.svc = s
	select {
	case <-s.Ready():
		c.readyAtStart = true
	default:
	}
	c.events = append(c.events, "start")
	return c.startErr
}

func (c *recordingCompanion) Stop(context.Context) error {
	c.downAtStop, c.causeAtStop = c.svc.ShuttingDown()
	c.events = append(c.events, "stop")
	return nil
}

func TestCompanionStartsBeforeSubscribingAndStopsAfterShutdown(t *testing.T) {
	b, err := memory.New(memory.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c := &recordingCompanion{}
	svc := service.New(b, service.WithCompanion(c))
	if err := service.Handle(svc, "h", func(context.Context, orderPlaced) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if down, _ := svc.ShuttingDown(); down {
		t.Fatal("shutting down before Run")
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	<-svc.Ready()
	if down, _ := svc.ShuttingDown(); down {
		t.Fatal("shutting down while running")
	}
	stopping := errors.New("deploy")
	cancel(stopping)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if c.readyAtStart || len(c.events) != 2 || !c.downAtStop || !errors.Is(c.causeAtStop, stopping) {
		t.Errorf("companion saw ready at start %t, events %v, shutting down at stop %t (%v)", c.readyAtStart, c.events, c.downAtStop, c.causeAtStop)
	}
	if down, _ := svc.ShuttingDown(); down {
		t.Error("still shutting down after Run returned")
	}

	// A companion that cannot start fails Run before anything is subscribed.
	failing := &recordingCompanion{startErr: errors.New("port taken")}
	svc = service.New(b, service.WithCompanion(failing))
	_ = service.Handle(svc, "h", func(context.Context, orderPlaced) error { return nil })
	if err := svc.Run(context.Background()); err == nil || err.Error() != "service: start companion: port taken" {
		t.Fatalf("Run = %v", err)
	}
	if len(failing.events) != 1 {
		t.Errorf("a companion that failed to start was stopped: %v", failing.events)
	}

	// WithStartError: the option of a constructor that failed does the same.
	svc = service.New(b, service.WithStartError(errors.New("bad exporter")))
	_ = service.Handle(svc, "h", func(context.Context, orderPlaced) error { return nil })
	if err := svc.Run(context.Background()); err == nil || err.Error() != "service: start companion: bad exporter" {
		t.Fatalf("Run with WithStartError = %v", err)
	}
}

// A publish-only process runs for its companions (an operations server, a
// scheduler's relay): Run of a PublishOnly service starts them, is ready,
// publishes work, and stops them at shutdown. Without PublishOnly, no
// handlers is refused even with a companion (most services have one: a
// tracing provider, a database pool), and so is a handler with it. Break
// it (refuse Run without handlers) and Run returns at once.
func TestRunWithOnlyCompanions(t *testing.T) {
	b, err := memory.New(memory.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := service.New(b, service.WithCompanion(&recordingCompanion{})).Run(context.Background()); !errors.Is(err, service.ErrNothingToRun) {
		t.Errorf("Run with a companion and no handlers = %v, want ErrNothingToRun", err)
	}
	withHandler := service.New(b, service.PublishOnly())
	if err := service.Handle(withHandler, "h", func(context.Context, orderPlaced) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := withHandler.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "PublishOnly, but 1 handlers") {
		t.Errorf("Run of a PublishOnly service with a handler = %v", err)
	}
	overridden := service.New(b, service.PublishOnly(), service.WithOverrides(map[string]service.Policy{"billing": {}}))
	if err := overridden.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "handlers.billing") {
		t.Errorf("Run of a PublishOnly service with an override for no handler = %v", err)
	}

	c := &recordingCompanion{}
	svc := service.New(b, service.PublishOnly(), service.WithCompanion(c))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	select {
	case <-svc.Ready():
	case err := <-done:
		t.Fatalf("Run with only a companion returned %v before it was ready", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not ready after 10s")
	}
	if err := svc.Publish(context.Background(), orderPlaced{OrderID: "o-1"}); err != nil {
		t.Errorf("Publish while running for companions: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if len(c.events) != 2 || c.events[0] != "start" || c.events[1] != "stop" {
		t.Errorf("companion events %v, want [start stop]", c.events)
	}
}

// failingCompanion fails when the test says so.
type failingCompanion struct {
	recordingCompanion
	failed chan error
}

func (c *failingCompanion) Failed() <-chan error { return c.failed }

// A companion that fails while Run runs (a relay whose subscription the
// broker ended) shuts the service down with its error, as a dying
// subscription does, instead of leaving it running, ready, without the
// companion; one that closes its channel without an error reports nothing.
// Break it (drop the companion case from Run's select) and Run runs on.
func TestFailingCompanionEndsRun(t *testing.T) {
	b, err := memory.New(memory.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	handled := make(chan string, 1)
	newService := func(c *failingCompanion) *service.Service {
		t.Helper()
		svc := service.New(b, service.WithCompanion(c))
		if err := service.Handle(svc, "h", func(_ context.Context, e orderPlaced) error { handled <- e.OrderID; return nil }); err != nil {
			t.Fatal(err)
		}
		return svc
	}

	boom := errors.New("relay subscription ended: ACCESS_REFUSED")
	c := &failingCompanion{failed: make(chan error, 1)}
	done := runAsync(t, newService(c))
	c.failed <- boom
	if err := recv(t, done, "Run to return after the companion failed"); !errors.Is(err, boom) || !strings.Contains(err.Error(), "companion failed") {
		t.Fatalf("Run = %v, want the companion's error", err)
	}
	if !c.downAtStop || !errors.Is(c.causeAtStop, boom) {
		t.Errorf("at Stop the service said shutting down %t because %v, want the companion's error", c.downAtStop, c.causeAtStop)
	}

	quiet := &failingCompanion{failed: make(chan error)}
	svc := newService(quiet)
	stop := start(t, svc)
	close(quiet.failed)
	// A message handled after the close: had the close counted as a
	// failure, the service would be shutting down by then.
	if err := svc.Publish(context.Background(), orderPlaced{OrderID: "after-close"}); err != nil {
		t.Fatal(err)
	}
	recv(t, handled, "a message handled after the companion closed its channel")
	if down, why := svc.ShuttingDown(); down {
		t.Fatalf("shutting down (%v) after a companion closed its channel without an error", why)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run = %v after a companion closed its channel without an error, want nil", err)
	}
}
