package command_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/pkg/command"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/eventstore"
	"github.com/switchyard-go/switchyard/pkg/retry"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// A cart: items are added, then it is paid, once.
type cart struct {
	Items int
	Paid  bool
}

type itemAdded struct {
	CartID string `json:"cart_id"`
}

func (itemAdded) EventType() string { return "test.item_added" }
func (itemAdded) EventVersion() int { return 1 }

type cartPaid struct {
	CartID string `json:"cart_id"`
}

func (cartPaid) EventType() string { return "test.cart_paid" }
func (cartPaid) EventVersion() int { return 1 }

type addItem struct {
	CartID string `json:"cart_id"`
}

func (addItem) EventType() string    { return "test.add_item" }
func (addItem) EventVersion() int    { return 1 }
func (c addItem) EventKey() string   { return c.CartID }
func (addItem) EventTopic() string   { return "ignored-by-the-bus" }
func (c payCart) EventKey() string   { return c.CartID }
func (payCart) EventType() string    { return "test.pay_cart" }
func (payCart) EventVersion() int    { return 1 }
func (checkedOut) EventType() string { return "test.checked_out" }
func (checkedOut) EventVersion() int { return 1 }

type payCart struct {
	CartID string `json:"cart_id"`
}

// checkedOut is an event whose handler sends a command.
type checkedOut struct {
	CartID string `json:"cart_id"`
}

var errAlreadyPaid = errors.New("cart is already paid")
var errEmpty = errors.New("cart is empty")

func applyCart(c cart, e event.Event) cart {
	switch e.(type) {
	case itemAdded:
		c.Items++
	case cartPaid:
		c.Paid = true
	}
	return c
}

func decideAdd(a *eventstore.Aggregate[cart], c addItem) error {
	if a.State.Paid {
		return command.Reject(errAlreadyPaid)
	}
	a.Record(itemAdded{CartID: c.CartID})
	return nil
}

func decidePay(a *eventstore.Aggregate[cart], c payCart) error {
	switch {
	case a.State.Paid:
		return command.Reject(errAlreadyPaid)
	case a.State.Items == 0:
		return command.Reject(errEmpty)
	}
	a.Record(cartPaid{CartID: c.CartID})
	return nil
}

func newRepo(t testing.TB, store eventstore.Store) *eventstore.Repository[cart] {
	t.Helper()
	dec := eventstore.NewDecoder(nil, nil)
	if err := errors.Join(eventstore.Register[itemAdded](dec), eventstore.Register[cartPaid](dec)); err != nil {
		t.Fatal(err)
	}
	return &eventstore.Repository[cart]{Store: store, Decoder: dec, Apply: applyCart}
}

// quickRetries keeps the failure path short in tests.
var quickRetries = service.Policy{Retry: retry.Policy{MaxAttempts: 3, InitialInterval: time.Millisecond, MaxInterval: 5 * time.Millisecond}}

func newService(t *testing.T) *service.Service {
	t.Helper()
	b, err := memory.New(memory.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return service.New(b, service.WithSource("command-test"), service.WithDefaults(quickRetries))
}

func newBus(t *testing.T, svc *service.Service) *command.Bus {
	t.Helper()
	bus, err := command.New(svc, command.Config{Topic: "test.commands"})
	if err != nil {
		t.Fatal(err)
	}
	return bus
}

// start runs svc until the test ends and waits until it subscribed.
func start(t *testing.T, svc *service.Service) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	select {
	case <-svc.Ready():
	case err := <-done:
		t.Fatalf("run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("service not ready after 10s")
	}
}

func waitCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// eventually waits until cond holds, failing after a deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
