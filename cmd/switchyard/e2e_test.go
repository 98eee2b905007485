package main

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pkg/admin"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/ops"
	"github.com/switchyard-go/switchyard/pkg/service"
)

type placed struct {
	OrderID string `json:"order_id"`
}

func (placed) EventType() string  { return "orders.order_placed" }
func (placed) EventVersion() int  { return 1 }
func (placed) EventTopic() string { return "orders" }

// A service on the memory broker dead-letters a message; the CLI, pointed
// at the service's operations server with --service, lists it and replays
// it to the failing group only, which now handles it; the other group does
// not see it twice.
func TestReplayReachesOnlyTheFailingGroupOfARunningService(t *testing.T) {
	b := newBroker(t)
	srv, err := ops.New(ops.Config{Addr: "127.0.0.1:0", Admin: admin.Config{Enabled: true, Token: testToken, Write: true}})
	if err != nil {
		t.Fatal(err)
	}
	svc := service.New(shared{b}, srv.Option())
	var broken atomic.Bool
	broken.Store(true)
	var mu sync.Mutex
	handled := map[string]int{}
	count := func(name string) {
		mu.Lock()
		handled[name]++
		mu.Unlock()
	}
	if err := service.Handle(svc, "inventory.reserve", func(ctx context.Context, e placed) error {
		if broken.Load() {
			return failure.Permanent(errors.New("stock service down"))
		}
		count("inventory")
		return nil
	}, service.Group("inventory")); err != nil {
		t.Fatal(err)
	}
	if err := service.Handle(svc, "analytics.count", func(ctx context.Context, e placed) error {
		count("analytics")
		return nil
	}, service.Group("analytics")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	<-svc.Ready()
	if err := svc.Publish(context.Background(), placed{OrderID: "1"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return b.Depth(service.DeadLetterTopicFor("inventory"), broker.DeadLetterGroup) == 1 })

	target := []string{"--service", "http://" + srv.Addr(), "--token", testToken}
	r := cli(t, "", append(target, "dlq", "list", "--group", "inventory")...)
	mustOK(t, r)
	if !strings.Contains(r.stdout, "1 dead letter(s)") || !strings.Contains(r.stdout, "inventory.reserve") {
		t.Fatalf("list through --service:\n%s", r.stdout)
	}
	broken.Store(false)
	r = cli(t, "", append(target, "dlq", "replay", "--group", "inventory", "--yes", "--idle", "500ms")...)
	mustOK(t, r)
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return handled["inventory"] == 1 })
	if err := b.WaitIdle(context.Background(), 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if handled["analytics"] != 1 || handled["inventory"] != 1 {
		t.Fatalf("handled %v, want the replay handled by inventory only", handled)
	}
	if d := b.Depth(service.DeadLetterTopicFor("inventory"), broker.DeadLetterGroup); d != 0 {
		t.Fatalf("%d dead letters left after replay", d)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// With a memory configuration and no --service, the dlq commands say the
// memory broker lives in the service and exit 2, instead of showing an
// empty broker of their own.
func TestDLQRefusesAMemoryBrokerOfItsOwn(t *testing.T) {
	t.Setenv(envConfig, "")
	for _, args := range [][]string{
		{"dlq", "list", "--group", "inventory"},
		{"dlq", "show", "--group", "inventory", "--id", "x"},
		{"dlq", "replay", "--group", "inventory", "--yes"},
		{"dlq", "purge", "--group", "inventory", "--yes"},
	} {
		r := cli(t, "", args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, "lives inside the service process") || !strings.Contains(r.stderr, "--service") {
			t.Errorf("%q: exit %d, stderr %q; want 2 and a pointer to --service", args, r.code, r.stderr)
		}
	}
}

// --service with a wrong token, or a write on a read-only API, fails with
// the API's reason.
func TestDLQServiceRefusals(t *testing.T) {
	newBroker(t)
	r := cli(t, "", "--service", serviceURL, "--token", "wrong-token-0123456789", "dlq", "list", "--group", "inventory")
	if r.code != exitFailure || !strings.Contains(r.stderr, "wrong token") {
		t.Errorf("wrong token: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := cli(t, "", "--service", serviceURL, "dlq", "list", "--group", "inventory", "--token", ""); r.code != exitUsage || !strings.Contains(r.stderr, "--token") {
		t.Errorf("no token: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := cli(t, "", "--service", "localhost:9090", "--token", testToken, "dlq", "list", "--group", "inventory"); r.code != exitUsage || !strings.Contains(r.stderr, "http(s)://") {
		t.Errorf("bad URL: exit %d, stderr %q", r.code, r.stderr)
	}
}

// dlq parked and release reach the service's parked keys through --service;
// without it they say where the keys are.
func TestDLQParkedAndRelease(t *testing.T) {
	newBroker(t)
	r := cli(t, "", "dlq", "parked")
	mustOK(t, r)
	if !strings.Contains(r.stdout, "0 parked key(s)") {
		t.Fatalf("parked: %s", r.stdout)
	}
	r = cli(t, "", "dlq", "release", "--group", "inventory", "--key", "order-1")
	mustOK(t, r)
	if !strings.Contains(r.stdout, `released key "order-1" of group "inventory"`) {
		t.Fatalf("release: %s", r.stdout)
	}
	if r := cli(t, "", "dlq", "release", "--group", "inventory"); r.code != exitUsage {
		t.Fatalf("release without --key: exit %d", r.code)
	}
}

// handler pause, list and resume act on a running service through
// --service: a message published while paused waits until the resume.
func TestHandlerPauseListResume(t *testing.T) {
	b := newBroker(t)
	srv, err := ops.New(ops.Config{Addr: "127.0.0.1:0", Admin: admin.Config{Enabled: true, Token: testToken, Write: true}})
	if err != nil {
		t.Fatal(err)
	}
	svc := service.New(shared{b}, srv.Option())
	var handled atomic.Int32
	if err := service.Handle(svc, "inventory.reserve", func(ctx context.Context, e placed) error {
		handled.Add(1)
		return nil
	}, service.Group("inventory")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	<-svc.Ready()
	target := []string{"--service", "http://" + srv.Addr(), "--token", testToken}

	r := cli(t, "", append(target, "handler", "pause", "inventory.reserve")...)
	mustOK(t, r)
	if !strings.Contains(r.stdout, `paused handler "inventory.reserve"`) {
		t.Fatalf("pause: %s", r.stdout)
	}
	r = cli(t, "", append(target, "handler", "list")...)
	mustOK(t, r)
	if !strings.Contains(r.stdout, "inventory.reserve") || !strings.Contains(r.stdout, "true") {
		t.Fatalf("list while paused:\n%s", r.stdout)
	}
	if err := svc.Publish(context.Background(), placed{OrderID: "1"}); err != nil {
		t.Fatal(err)
	}
	// Nothing to wait on for "not handled": give a handler that ignored the
	// pause a moment to run.
	time.Sleep(200 * time.Millisecond)
	if n := handled.Load(); n != 0 {
		t.Fatalf("handled %d while paused", n)
	}
	mustOK(t, cli(t, "", append(target, "handler", "resume", "inventory.reserve")...))
	waitFor(t, func() bool { return handled.Load() == 1 })

	if r := cli(t, "", append(target, "handler", "pause", "inventory.reserv")...); r.code != exitFailure || !strings.Contains(r.stderr, "inventory.reserve") {
		t.Errorf("pause of an unknown handler: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := cli(t, "", "handler", "list"); r.code != exitUsage || !strings.Contains(r.stderr, "--service") {
		t.Errorf("handler list without --service: exit %d, stderr %q", r.code, r.stderr)
	}
}
