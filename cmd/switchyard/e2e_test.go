package main

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/service"
)

type placed struct {
	OrderID string `json:"order_id"`
}

func (placed) EventType() string  { return "orders.order_placed" }
func (placed) EventVersion() int  { return 1 }
func (placed) EventTopic() string { return "orders" }

// A service dead-letters a message; replay hands it back to the failing
// group only, which now handles it; the other group does not see it twice.
func TestReplayReachesOnlyTheFailingGroupOfARunningService(t *testing.T) {
	b := newBroker(t)
	svc := service.New(b)
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

	broken.Store(false)
	r := cli(t, "", "dlq", "replay", "--group", "inventory", "--yes", "--idle", "500ms")
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
