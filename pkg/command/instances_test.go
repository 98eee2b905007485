package command_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/adapters/amqp"
	"github.com/switchyard-go/switchyard/adapters/kafka"
	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/command"
	"github.com/switchyard-go/switchyard/pkg/eventstore"
	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/idempotency"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// instance is one instance of a cart service: its bus with the cart
// handlers, and how many commands it handled.
type instance struct {
	svc     *service.Service
	bus     *command.Bus
	handled atomic.Int32
}

// newInstance builds an instance on b (instances of one service share the
// event store and the command group).
func newInstance(t *testing.T, b broker.Broker, repo *eventstore.Repository[cart], opts ...service.Option) *instance {
	t.Helper()
	in := &instance{svc: service.New(b, append([]service.Option{service.WithSource("carts"), service.WithDefaults(quickRetries)}, opts...)...)}
	bus, err := command.New(in.svc, command.Config{Topic: "test.commands", Group: "carts"},
		command.RejectionReasons(errAlreadyPaid, errEmpty))
	if err != nil {
		t.Fatal(err)
	}
	in.bus = bus
	count := func(fn func(context.Context, payCart) error) func(context.Context, payCart) error {
		return func(ctx context.Context, c payCart) error { in.handled.Add(1); return fn(ctx, c) }
	}
	add := command.OnAggregate(repo, decideAdd)
	err = errors.Join(
		command.Handle(bus, "carts.add", func(ctx context.Context, c addItem) error { in.handled.Add(1); return add(ctx, c) }),
		command.Handle(bus, "carts.pay", count(command.OnAggregate(repo, decidePay))),
	)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// TestSendAndWaitAcrossInstances: instance A sends, instance B (the only
// one consuming the command group) handles; A still learns the version,
// the rejection with its reason, and a failure.
func TestSendAndWaitAcrossInstances(t *testing.T) {
	b := sharedBroker(t)
	crossInstances(t, "", func(*testing.T) broker.Broker { return b })
}

// TestSendAndWaitAcrossInstancesOnRealBrokers: the same with each
// instance on its own connections to the real RabbitMQ and Kafka, as
// separate processes would be.
func TestSendAndWaitAcrossInstancesOnRealBrokers(t *testing.T) {
	t.Run("rabbitmq", func(t *testing.T) {
		url := brokertest.AMQPURL(t)
		prefix := fmt.Sprintf("sytest-cmdwait-%d.", time.Now().UnixNano())
		dropRabbitMQ(t, url, brokertest.Rabbitmqctl(), prefix) // after the brokers closed
		crossInstances(t, prefix, func(t *testing.T) broker.Broker {
			b, err := amqp.New(context.Background(), amqp.Config{URL: url}, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = b.Close() })
			return b
		})
	})
	t.Run("kafka", func(t *testing.T) {
		brokers := strings.Split(brokertest.KafkaBrokers(t), ",")
		prefix := fmt.Sprintf("sytest-cmdwait-%d.", time.Now().UnixNano())
		dropKafka(t, brokers, prefix)
		crossInstances(t, prefix, func(t *testing.T) broker.Broker {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			b, err := kafka.New(ctx, kafka.Config{Brokers: brokers}, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = b.Close() })
			return b
		})
	})
}

// crossInstances runs the cross-instance checks with the brokers open
// returns (one per instance, or one shared: memory), in namespace ns.
func crossInstances(t *testing.T, namespace string, open func(*testing.T) broker.Broker) {
	repo := newRepo(t, eventstore.NewMemory(eventstore.Encoder{}))
	ns := service.WithNamespace(namespace)
	// A runs nothing: its commands can only be handled by B.
	a, bb := newInstance(t, open(t), repo, ns), newInstance(t, open(t), repo, ns)
	start(t, bb.svc)
	ctx := waitCtx(t)

	res, err := a.bus.SendAndWait(ctx, addItem{CartID: "cart-x"})
	if err != nil || res.Version != 1 || res.ID == "" {
		t.Fatalf("add from A: %+v, %v; want version 1", res, err)
	}
	if res, err = a.bus.SendAndWait(ctx, payCart{CartID: "cart-x"}); err != nil || res.Version != 2 {
		t.Fatalf("pay from A: %+v, %v; want version 2", res, err)
	}
	_, err = a.bus.SendAndWait(ctx, payCart{CartID: "cart-x"})
	if !command.IsRejected(err) || !errors.Is(err, errAlreadyPaid) || errors.Is(err, errEmpty) {
		t.Fatalf("paying twice from A: %v, want a rejection that errors.Is errAlreadyPaid only", err)
	}
	if err.Error() != (&command.RejectedError{Err: errAlreadyPaid}).Error() {
		t.Errorf("rejection %q, want the handler's text", err)
	}
	if a.handled.Load() != 0 || bb.handled.Load() != 3 {
		t.Fatalf("A handled %d, B %d; want every command on B", a.handled.Load(), bb.handled.Load())
	}
	// Plain Send still just sends.
	if _, err := a.bus.Send(ctx, addItem{CartID: "cart-y"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the plain send handled on B", func() bool { return bb.handled.Load() == 4 })
}

// TestFailureAcrossInstances: a command whose handler fails for good on
// B is reported to A as ErrFailed with the handler's text, at once.
func TestFailureAcrossInstances(t *testing.T) {
	b := sharedBroker(t)
	newFailing := func() (*service.Service, *command.Bus) {
		svc := service.New(b, service.WithDefaults(quickRetries))
		bus, err := command.New(svc, command.Config{Topic: "test.commands", Group: "carts"})
		if err != nil {
			t.Fatal(err)
		}
		if err := command.Handle(bus, "carts.pay", func(context.Context, payCart) error { return failure.Permanent(errors.New("card processor down")) }); err != nil {
			t.Fatal(err)
		}
		return svc, bus
	}
	_, busA := newFailing()
	svcB, _ := newFailing()
	start(t, svcB)
	_, err := busA.SendAndWait(waitCtx(t), payCart{CartID: "c"})
	if !errors.Is(err, command.ErrFailed) || command.IsRejected(err) || errors.Is(err, command.ErrNoOutcome) {
		t.Fatalf("send: %v, want ErrFailed", err)
	}
	if want := "card processor down"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	eventually(t, "the dead letter on B", func() bool { return svcB.Stats().DeadLettered == 1 })
}

// TestDuplicateAcrossInstancesAnswers: with deduplication on, a command
// sent again under the same id is skipped by B, which still tells A so
// at once (ErrAlreadyHandled) instead of letting it wait for its deadline.
func TestDuplicateAcrossInstancesAnswers(t *testing.T) {
	b := sharedBroker(t)
	seen, err := idempotency.NewMemory(idempotency.MemoryConfig{MaxEntries: 100, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	repo := newRepo(t, eventstore.NewMemory(eventstore.Encoder{}))
	newDeduplicating := func() (*service.Service, *command.Bus) {
		svc := service.New(b, service.WithDefaults(quickRetries), service.WithIdempotency(seen))
		bus, err := command.New(svc, command.Config{Topic: "test.commands", Group: "carts"})
		if err != nil {
			t.Fatal(err)
		}
		if err := command.Handle(bus, "carts.add", command.OnAggregate(repo, decideAdd)); err != nil {
			t.Fatal(err)
		}
		return svc, bus
	}
	_, busA := newDeduplicating()
	svcB, _ := newDeduplicating()
	start(t, svcB)
	ctx := waitCtx(t)
	if res, err := busA.SendAndWait(ctx, addItem{CartID: "c"}, command.WithID("key-1")); err != nil || res.Version != 1 {
		t.Fatalf("first send: %+v, %v; want version 1", res, err)
	}
	begun := time.Now()
	_, err = busA.SendAndWait(ctx, addItem{CartID: "c"}, command.WithID("key-1"))
	if !errors.Is(err, command.ErrAlreadyHandled) {
		t.Fatalf("second send: %v, want ErrAlreadyHandled", err)
	}
	if waited := time.Since(begun); waited > 5*time.Second {
		t.Errorf("the duplicate's answer took %s: it waited for the deadline", waited)
	}
	if recs, _ := repo.Store.Load(ctx, "c"); len(recs) != 1 {
		t.Errorf("%d events, want 1: the duplicate was handled", len(recs))
	}
}

// noInboxes hides the memory broker's inboxes (broker.Inboxer), as a
// broker without them would.
type noInboxes struct{ broker.Broker }

// TestSendAndWaitWithoutInboxes: on a broker that cannot route replies,
// SendAndWait still hears outcomes handled by its own process.
func TestSendAndWaitWithoutInboxes(t *testing.T) {
	b := sharedBroker(t)
	in := newInstance(t, noInboxes{b}, newRepo(t, eventstore.NewMemory(eventstore.Encoder{})))
	if _, ok := in.svc.Broker().(broker.Inboxer); ok {
		t.Fatal("the broker still has inboxes")
	}
	start(t, in.svc)
	res, err := in.bus.SendAndWait(waitCtx(t), addItem{CartID: "c"})
	if err != nil || res.Version != 1 {
		t.Fatalf("send: %+v, %v; want version 1", res, err)
	}
	if _, err := in.bus.SendAndWait(waitCtx(t), payCart{CartID: "empty"}); !errors.Is(err, errEmpty) {
		t.Fatalf("pay an empty cart: %v, want errEmpty", err)
	}
}

// TestOneIDSentThroughTwoInstances: A and B wait for the same command id
// (a client retried its Idempotency-Key through another instance). B
// handles A's message while its own send waits: both senders get an
// answer, B's in memory and A's through its inbox.
func TestOneIDSentThroughTwoInstances(t *testing.T) {
	b := sharedBroker(t)
	started := make(chan struct{}, 2)
	release := map[string]chan struct{}{"c1": make(chan struct{}), "c2": make(chan struct{})}
	newBlocking := func() (*service.Service, *command.Bus) {
		svc := service.New(b, service.WithDefaults(quickRetries))
		bus, err := command.New(svc, command.Config{Topic: "test.commands", Group: "carts"})
		if err != nil {
			t.Fatal(err)
		}
		err = command.Handle(bus, "carts.add", func(_ context.Context, c addItem) error {
			started <- struct{}{}
			<-release[c.CartID]
			return nil
		}, service.Concurrency(2))
		if err != nil {
			t.Fatal(err)
		}
		return svc, bus
	}
	_, busA := newBlocking()
	svcB, busB := newBlocking()
	start(t, svcB)
	ctx := waitCtx(t)
	answers := make(chan error, 2)
	// Other carts, so that the broker need not keep the two in key order.
	send := func(bus *command.Bus, cart string) {
		_, err := bus.SendAndWait(ctx, addItem{CartID: cart}, command.WithID("key-7"))
		answers <- err
	}
	step := func(what string, ch <-chan struct{}) {
		t.Helper()
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		}
	}
	go send(busA, "c1")
	step("A's message on B", started)
	go send(busB, "c2")
	step("B's own message on B (its waiter is registered)", started)
	for i, cart := range []string{"c1", "c2"} { // A's first: B's waiter still waits
		close(release[cart])
		select {
		case err := <-answers:
			if err != nil {
				t.Fatalf("answer %d: %v", i+1, err)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("answer %d never came", i+1)
		}
	}
}

// sharedBroker is one memory broker for the instances of a test, as one
// RabbitMQ or Kafka cluster would be.
func sharedBroker(t *testing.T) *memory.Broker {
	t.Helper()
	b, err := memory.New(memory.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}
