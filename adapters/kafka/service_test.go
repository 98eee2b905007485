package kafka_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/adapters/kafka"
	"github.com/switchyard-go/switchyard/pkg/service"
)

type orderPlaced struct {
	OrderID string `json:"order_id"`
}

func (orderPlaced) EventType() string { return "orders.order_placed" }
func (orderPlaced) EventVersion() int { return 1 }

// runService runs svc until the test ends.
func runService(t *testing.T, svc *service.Service) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- svc.Run(ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-svc.Ready():
	case err := <-errc:
		t.Fatalf("Run ended before ready: %v", err)
	}
}

// A handler of the runtime that outlives the drain of a rebalance has its
// context cancelled (cause: the partition was revoked), so it stops before
// the new owner handles the same message; the message is nacked, not
// dead-lettered, and the new owner handles it. Handlers of the partition the
// member keeps are not cancelled.
func TestRuntimeHandlerCancelledWhenItsPartitionIsRevoked(t *testing.T) {
	mutate := func(c *kafka.Config) {
		c.Partitions = 2
		c.RebalanceTimeout = 4 * time.Second // drain 3s
	}
	ns := uniqueName(t, "rv") + "."
	group := ns + "inventory"
	topic := ns + orderPlaced{}.EventType()
	cleanupTopic(t, topic, group)

	const n = 8 // over both partitions
	var (
		mu       sync.Mutex
		started  = map[string]bool{}
		causes   = map[string]error{}
		by2      = map[string]bool{}
		released = make(chan struct{})
	)
	changed := make(chan struct{}, 1)
	signal := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.After(90 * time.Second)
		for {
			mu.Lock()
			ok := cond()
			mu.Unlock()
			if ok {
				return
			}
			select {
			case <-changed:
			case <-deadline:
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	b1 := newBroker(t, mutate)
	svc1 := service.New(b1, service.WithNamespace(ns))
	if err := service.Handle(svc1, "reserve", func(ctx context.Context, e orderPlaced) error {
		mu.Lock()
		started[e.OrderID] = true
		mu.Unlock()
		signal()
		select { // a handler that runs until told, or cancelled
		case <-ctx.Done():
			mu.Lock()
			causes[e.OrderID] = context.Cause(ctx)
			mu.Unlock()
			signal()
			return ctx.Err()
		case <-released:
			return nil
		}
	}, service.Group("inventory"), service.Concurrency(n), service.Timeout(5*time.Minute)); err != nil {
		t.Fatal(err)
	}
	defer close(released)
	runService(t, svc1)
	waitStableGroup(t, group, 1)
	for i := range n {
		msg, _, err := svc1.NewMessage(context.Background(), orderPlaced{OrderID: "o-" + strconv.Itoa(i)}, service.WithKey("k-"+strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		if err := b1.Publisher().Publish(topic, msg); err != nil {
			t.Fatal(err)
		}
	}
	waitFor("the first member to hold every message", func() bool { return len(started) == n })

	b2 := newBroker(t, mutate)
	svc2 := service.New(b2, service.WithNamespace(ns))
	if err := service.Handle(svc2, "reserve", func(ctx context.Context, e orderPlaced) error {
		mu.Lock()
		by2[e.OrderID] = true
		mu.Unlock()
		signal()
		return nil
	}, service.Group("inventory")); err != nil {
		t.Fatal(err)
	}
	runService(t, svc2)

	waitFor("the second member to handle the revoked partition's messages", func() bool { return len(by2) > 0 && len(by2) == len(causes) })
	mu.Lock()
	defer mu.Unlock()
	for id, c := range causes {
		if !strings.Contains(fmt.Sprint(c), "revoked") {
			t.Errorf("%s: handler context ended with cause %v, want the revocation", id, c)
		}
		if !by2[id] {
			t.Errorf("%s: cancelled on the first member but not handled by the second", id)
		}
	}
	if len(causes) == n {
		t.Errorf("every handler was cancelled; only the revoked partition's should be")
	}
	if s := svc1.Stats(); s.DeadLettered != 0 {
		t.Errorf("a revoked delivery was dead-lettered: %+v", s)
	}
	t.Logf("%d of %d handlers cancelled by the revoke and handled by the new owner", len(causes), n)
}
