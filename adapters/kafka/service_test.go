package kafka_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

// waitChanged waits until cond, checked under mu, holds: again after each
// signal on changed, for 90s at most.
func waitChanged(t *testing.T, mu *sync.Mutex, changed <-chan struct{}, what string, cond func() bool) {
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
		waitChanged(t, &mu, changed, what, cond)
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

// A member that leaves gracefully while messages of a busy key are held
// behind it finishes them rather than handing them back: a handed-back
// record would stop the partition's committed offset before it, and the
// next owner would handle again every record acked after it (duplicates on
// every rolling deploy). The next member handles nothing twice, and
// nothing is lost.
func TestGracefulLeaveFinishesHeldMessagesNoDuplicates(t *testing.T) {
	mutate := func(c *kafka.Config) { c.Partitions = 1 }
	ns := uniqueName(t, "gl") + "."
	group := ns + "inventory"
	topic := ns + orderPlaced{}.EventType()
	cleanupTopic(t, topic, group)

	var (
		mu      sync.Mutex
		handled = map[string]int{}
	)
	changed := make(chan struct{}, 1)
	count := func(id string) {
		mu.Lock()
		handled[id]++
		mu.Unlock()
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		waitChanged(t, &mu, changed, what, cond)
	}
	publish := func(svc *service.Service, b *kafka.Broker, id, key string) {
		t.Helper()
		msg, _, err := svc.NewMessage(context.Background(), orderPlaced{OrderID: id}, service.WithKey(key))
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Publisher().Publish(topic, msg); err != nil {
			t.Fatal(err)
		}
	}

	var shutting atomic.Int64
	log := slog.New(countingHandler{slog.NewTextHandler(io.Discard, nil), "shutting down", &shutting})
	b1 := newBroker(t, mutate)
	svc1 := service.New(b1, service.WithNamespace(ns), service.WithLogger(log))
	slowStarted, release := make(chan struct{}), make(chan struct{})
	if err := service.Handle(svc1, "reserve", func(_ context.Context, e orderPlaced) error {
		if e.OrderID == "slow-0" {
			close(slowStarted)
			<-release // the key is busy: slow-1.. are held behind it
		}
		count(e.OrderID)
		return nil
	}, service.Group("inventory"), service.Concurrency(4)); err != nil {
		t.Fatal(err)
	}
	ctx1, stop1 := context.WithCancel(context.Background())
	run1 := make(chan error, 1)
	go func() { run1 <- svc1.Run(ctx1) }()
	t.Cleanup(stop1)
	select {
	case <-svc1.Ready():
	case err := <-run1:
		t.Fatalf("Run: %v", err)
	}
	waitStableGroup(t, group, 1)

	// One partition: slow-0 (its handler blocks), slow-1..3 behind it, then
	// fast records of other keys, acked while slow-1..3 are still held.
	var ids []string
	for i := range 4 {
		ids = append(ids, "slow-"+strconv.Itoa(i))
		publish(svc1, b1, ids[len(ids)-1], "slow")
	}
	for i := range 20 {
		ids = append(ids, "fast-"+strconv.Itoa(i))
		publish(svc1, b1, ids[len(ids)-1], "fast-"+strconv.Itoa(i))
	}
	select {
	case <-slowStarted:
	case <-time.After(90 * time.Second):
		t.Fatal("slow-0 never started")
	}
	waitFor("the fast records to be handled past the held ones", func() bool {
		n := 0
		for id := range handled {
			if strings.HasPrefix(id, "fast-") {
				n++
			}
		}
		return n == 20
	})

	stop1() // a graceful leave (SIGTERM) while slow-1..3 are held
	deadline := time.Now().Add(30 * time.Second)
	for shutting.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the first member never began shutting down")
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, with a deadline
	}
	close(release)
	select {
	case err := <-run1:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(90 * time.Second):
		t.Fatal("the first member did not shut down")
	}

	// The next member takes the partition over from the committed offset.
	b2 := newBroker(t, mutate)
	svc2 := service.New(b2, service.WithNamespace(ns))
	if err := service.Handle(svc2, "reserve", func(_ context.Context, e orderPlaced) error {
		count(e.OrderID)
		return nil
	}, service.Group("inventory")); err != nil {
		t.Fatal(err)
	}
	runService(t, svc2)
	for i := range 5 { // proof that the second member reads the partition
		ids = append(ids, "after-"+strconv.Itoa(i))
		publish(svc2, b2, ids[len(ids)-1], "after")
	}
	waitFor("the second member to handle the records published after the leave", func() bool {
		return handled["after-4"] > 0
	})
	mu.Lock()
	defer mu.Unlock()
	dups, lost := 0, 0
	for _, id := range ids {
		switch n := handled[id]; {
		case n == 0:
			lost++
			t.Errorf("%s never handled", id)
		case n > 1:
			dups += n - 1
			t.Errorf("%s handled %d times", id, n)
		}
	}
	t.Logf("%d records: %d lost, %d duplicates", len(ids), lost, dups)
}
