package kafka_test

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-go/switchyard/adapters/kafka"
	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/retry"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// outputs reads topic from its start with the given isolation level and
// counts the records per value: until every one of want was seen, then for
// settle more, so that a repeat behind them would be counted too.
func outputs(t *testing.T, topic string, iso kgo.IsolationLevel, want []string, settle time.Duration) map[string]int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokertest.KafkaBrokers(t), ",")...),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(iso))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := map[string]int{}
	missing := func() int {
		n := 0
		for _, w := range want {
			if got[w] == 0 {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(90 * time.Second)
	var settleUntil time.Time
	for {
		if missing() == 0 && settleUntil.IsZero() {
			settleUntil = time.Now().Add(settle)
		}
		end := deadline
		if !settleUntil.IsZero() {
			end = settleUntil
		}
		if time.Now().After(end) {
			break
		}
		ctx, cancel := context.WithDeadline(context.Background(), end)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) { got[string(r.Value)]++ })
	}
	if n := missing(); n > 0 {
		t.Fatalf("%d of %d outputs never seen on %s: %v", n, len(want), topic, got)
	}
	return got
}

// An exactly-once subscription consumes, publishes and commits in one
// Kafka transaction: a message nacked after its output was produced aborts
// the transaction, so a read_committed consumer of the output topic never
// sees that output; the message comes back and its output, produced again,
// is seen once. A read_uncommitted consumer sees the aborted copies too
// (proof that they were produced).
func TestExactlyOnceAbortBetweenProduceAndCommit(t *testing.T) {
	mutate := func(c *kafka.Config) { c.Partitions = 1; c.NackBackoff = 50 * time.Millisecond }
	in, out := uniqueName(t, "eoin"), uniqueName(t, "eoout")
	group := uniqueName(t, "eog")
	cleanupTopic(t, in, group)
	cleanupTopic(t, out)
	b := newBroker(t, mutate)
	const n = 12
	var want []string
	for i := range n {
		want = append(want, "out-"+strconv.Itoa(i))
		m := message.NewMessage("in-"+strconv.Itoa(i), []byte(strconv.Itoa(i)))
		if err := b.Publisher().Publish(in, m); err != nil {
			t.Fatal(err)
		}
	}
	sub, ch := subscribe(t, b, group, in, broker.SubscriberOptions{ExactlyOnce: true})
	var mu sync.Mutex
	seen := map[string]int{}
	handled := make(chan struct{})
	go func() { // the handler: one output per input, the first attempt of every third nacked after its produce
		defer close(handled)
		for m := range ch {
			mu.Lock()
			seen[m.UUID]++
			again := seen[m.UUID] > 1
			mu.Unlock()
			sc, ok := m.Context().(broker.Scoped)
			if !ok {
				t.Errorf("message context %T is not broker.Scoped", m.Context())
				m.Nack()
				continue
			}
			o := message.NewMessage("", []byte("out-"+string(m.Payload)))
			o.SetContext(sc.Scope(context.Background()))
			if err := b.Publisher().Publish(out, o); err != nil {
				t.Errorf("publish: %v", err)
				m.Nack()
				continue
			}
			if i, _ := strconv.Atoi(string(m.Payload)); i%3 == 0 && !again {
				m.Nack() // after the produce, before the commit: the transaction aborts
				continue
			}
			m.Ack()
		}
	}()
	committed := outputs(t, out, kgo.ReadCommitted(), want, 2*time.Second)
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	<-handled
	for _, w := range want {
		if committed[w] != 1 {
			t.Errorf("%s seen %d times with read_committed, want 1", w, committed[w])
		}
	}
	raw := outputs(t, out, kgo.ReadUncommitted(), want, 2*time.Second)
	total := 0
	for _, c := range raw {
		total += c
	}
	if total <= n {
		t.Errorf("read_uncommitted saw %d records: no aborted output was produced, the test proves nothing", total)
	}
	t.Logf("%d inputs, %d handlings, %d outputs produced, %d committed", n, sumOf(seen), total, sumOf(committed))
}

func sumOf(m map[string]int) int {
	s := 0
	for _, v := range m {
		s += v
	}
	return s
}

type itemReserved struct {
	OrderID string `json:"order_id"`
}

func (itemReserved) EventType() string { return "inventory.item_reserved" }
func (itemReserved) EventVersion() int { return 1 }

// An exactly-once handler of the runtime: its publishes join the
// transaction of the message it handles. The first member's handler
// publishes and then outlives the shutdown timeout, so its messages are
// nacked and their transaction aborts; the next member handles them
// again. A read_committed consumer sees each output once.
func TestExactlyOnceHandlerAcrossAnAbortedShutdown(t *testing.T) {
	mutate := func(c *kafka.Config) { c.Partitions = 1 }
	ns := uniqueName(t, "eos") + "."
	group := ns + "inventory"
	topic := ns + orderPlaced{}.EventType()
	outTopic := ns + itemReserved{}.EventType()
	cleanupTopic(t, topic, group)
	cleanupTopic(t, outTopic)
	eo := service.Policy{ExactlyOnce: service.On}

	b1 := newBroker(t, mutate)
	svc1 := service.New(b1, service.WithNamespace(ns), service.WithShutdownTimeout(200*time.Millisecond))
	var mu sync.Mutex
	first := map[string]int{}
	stuck := make(chan struct{}, 100)
	if err := service.Handle(svc1, "reserve", func(ctx context.Context, e orderPlaced) error {
		if err := svc1.Publish(ctx, itemReserved{OrderID: e.OrderID}); err != nil {
			return err
		}
		mu.Lock()
		first[e.OrderID]++
		mu.Unlock()
		if e.OrderID == "o-5" { // produced, never committed
			stuck <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}, service.Group("inventory"), service.Publishes(itemReserved{}), service.WithPolicy(eo)); err != nil {
		t.Fatal(err)
	}
	ctx1, stop1 := context.WithCancel(context.Background())
	run1 := make(chan error, 1)
	go func() { run1 <- svc1.Run(ctx1) }()
	t.Cleanup(stop1)
	<-svc1.Ready()
	const n = 10
	var want []string
	for i := range n {
		id := "o-" + strconv.Itoa(i)
		want = append(want, `{"order_id":"`+id+`"}`)
		if err := svc1.Publish(context.Background(), orderPlaced{OrderID: id}, service.WithKey("k-"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-stuck:
	case <-time.After(90 * time.Second):
		t.Fatal("o-5 never handled")
	}
	stop1()
	if err := <-run1; err != nil {
		t.Logf("first member: %v", err)
	}

	b2 := newBroker(t, mutate)
	svc2 := service.New(b2, service.WithNamespace(ns))
	if err := service.Handle(svc2, "reserve", func(ctx context.Context, e orderPlaced) error {
		return svc2.Publish(ctx, itemReserved{OrderID: e.OrderID})
	}, service.Group("inventory"), service.Publishes(itemReserved{}), service.WithPolicy(eo)); err != nil {
		t.Fatal(err)
	}
	runService(t, svc2)
	got := outputs(t, outTopic, kgo.ReadCommitted(), want, 3*time.Second)
	for _, w := range want {
		if got[w] != 1 {
			t.Errorf("%s seen %d times with read_committed, want 1", w, got[w])
		}
	}
	mu.Lock()
	t.Logf("first member handled %d, outputs committed %d", sumOf(first), sumOf(got))
	mu.Unlock()
}

// A handler cannot ask for exactly-once on a broker without transactions,
// nor with retries in place.
func TestExactlyOncePolicyIsValidated(t *testing.T) {
	err := service.Policy{ExactlyOnce: service.On, Retry: retry.Policy{MaxAttempts: 3}}.Validate("handlers.x")
	if err == nil || !strings.Contains(err.Error(), "handlers.x.retry.max_attempts: 3") {
		t.Errorf("Validate = %v, want the max_attempts refused", err)
	}
	err = service.Policy{ExactlyOnce: service.On, OrderOnRetry: service.OrderRelease}.Validate("handlers.x")
	if err == nil || !strings.Contains(err.Error(), "handlers.x.order_on_retry") {
		t.Errorf("Validate = %v, want order_on_retry release refused", err)
	}
}

// envEOChild makes the test binary the child of TestExactlyOnceSurvivesKill9.
const envEOChild = "SWITCHYARD_TEST_EO_CHILD" // "<namespace>"

// eoReserve registers the exactly-once handler of the kill -9 test on svc:
// one output per input, paced by pause.
func eoReserve(t *testing.T, svc *service.Service, pause time.Duration) {
	t.Helper()
	if err := service.Handle(svc, "reserve", func(ctx context.Context, e orderPlaced) error {
		if err := svc.Publish(ctx, itemReserved{OrderID: e.OrderID}); err != nil {
			return err
		}
		time.Sleep(pause) // pacing, so that the kill lands mid-stream; not synchronisation
		return nil
	}, service.Group("inventory"), service.Publishes(itemReserved{}), service.WithPolicy(service.Policy{ExactlyOnce: service.On, Prefetch: 16})); err != nil {
		t.Fatal(err)
	}
}

// A service with an exactly-once handler killed with SIGKILL mid-stream
// (its transaction open, outputs produced but not committed), then
// replaced: a read_committed consumer of the output topic sees each output
// exactly once, and none is missing.
func TestExactlyOnceSurvivesKill9(t *testing.T) {
	mutate := func(c *kafka.Config) { c.Partitions = 2 }
	if ns := os.Getenv(envEOChild); ns != "" { // the child: handle until killed
		b := newBroker(t, mutate)
		svc := service.New(b, service.WithNamespace(ns))
		eoReserve(t, svc, 10*time.Millisecond)
		_ = svc.Run(context.Background())
		return
	}
	ns := uniqueName(t, "eok") + "."
	group := ns + "inventory"
	topic := ns + orderPlaced{}.EventType()
	outTopic := ns + itemReserved{}.EventType()
	cleanupTopic(t, topic, group)
	cleanupTopic(t, outTopic)
	b := newBroker(t, mutate)
	pub := service.New(b, service.WithNamespace(ns))
	const n = 300
	var want []string
	for i := range n {
		id := "o-" + strconv.Itoa(i)
		want = append(want, `{"order_id":"`+id+`"}`)
		if err := pub.Publish(context.Background(), orderPlaced{OrderID: id}, service.WithKey("k-"+strconv.Itoa(i%20))); err != nil {
			t.Fatal(err)
		}
	}

	child := exec.Command(os.Args[0], "-test.run=^TestExactlyOnceSurvivesKill9$", "-test.count=1")
	child.Env = append(os.Environ(), envEOChild+"="+ns)
	child.Stdout, child.Stderr = os.Stderr, os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			_ = child.Process.Kill()
			_ = child.Wait()
		}
	}()
	// Kill it once a third of the outputs were produced (committed or not).
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokertest.KafkaBrokers(t), ",")...),
		kgo.ConsumeTopics(outTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadUncommitted()))
	if err != nil {
		t.Fatal(err)
	}
	produced := 0
	deadline := time.Now().Add(90 * time.Second)
	for produced < n/3 {
		if time.Now().After(deadline) {
			t.Fatalf("the child produced %d outputs in 90s", produced)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		produced += cl.PollFetches(ctx).NumRecords()
		cancel()
	}
	cl.Close()
	if err := child.Process.Kill(); err != nil { // SIGKILL: no shutdown, no abort
		t.Fatal(err)
	}
	_ = child.Wait()
	killed = true

	svc := service.New(newBroker(t, mutate), service.WithNamespace(ns))
	eoReserve(t, svc, 0)
	runService(t, svc)
	got := outputs(t, outTopic, kgo.ReadCommitted(), want, 3*time.Second)
	for _, w := range want {
		if got[w] != 1 {
			t.Errorf("%s seen %d times with read_committed, want 1", w, got[w])
		}
	}
	raw := outputs(t, outTopic, kgo.ReadUncommitted(), want, time.Second)
	t.Logf("killed after %d outputs were produced; %d produced in all, %d committed, each once", produced, sumOf(raw), sumOf(got))
}
