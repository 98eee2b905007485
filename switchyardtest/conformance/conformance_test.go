package conformance_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/idempotency"
	"github.com/switchyard-go/switchyard/pkg/retry"
	"github.com/switchyard-go/switchyard/pkg/service"
	"github.com/switchyard-go/switchyard/switchyardtest/conformance"
)

// A small payments flow: requested → captured → receipted, and an audit
// log of requests.
type requested struct {
	ID     string `json:"id"`
	Amount int    `json:"amount"`
}

func (requested) EventType() string  { return "ctest.requested" }
func (requested) EventVersion() int  { return 1 }
func (e requested) EventKey() string { return e.ID }

type captured struct {
	ID     string `json:"id"`
	Amount int    `json:"amount"`
}

func (captured) EventType() string  { return "ctest.captured" }
func (captured) EventVersion() int  { return 1 }
func (e captured) EventKey() string { return e.ID }

type receipted struct {
	ID string `json:"id"`
}

func (receipted) EventType() string  { return "ctest.receipted" }
func (receipted) EventVersion() int  { return 1 }
func (e receipted) EventKey() string { return e.ID }

var errAmount = errors.New("amount must be positive")

func define(svc *service.Service) error {
	var mu sync.Mutex
	audit := map[string]int{}
	for _, err := range []error{
		service.Handle(svc, "payments.capture", func(ctx context.Context, e requested) error {
			if e.Amount <= 0 {
				return failure.Permanent(fmt.Errorf("payment %s: %w", e.ID, errAmount))
			}
			return svc.Publish(ctx, captured(e))
		}, service.Group("payments"), service.Publishes(captured{})),
		service.Handle(svc, "audit.requested", func(_ context.Context, e requested) error {
			mu.Lock()
			audit[e.ID]++
			mu.Unlock()
			return nil
		}, service.Group("audit")),
		service.Handle(svc, "receipts.send", func(ctx context.Context, e captured) error {
			return svc.Publish(ctx, receipted{ID: e.ID})
		}, service.Group("receipts"), service.Publishes(receipted{})),
		service.Handle(svc, "ledger.record", func(context.Context, receipted) error { return nil }, service.Group("ledger")),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

func suite(brokers ...conformance.Broker) conformance.Suite {
	return conformance.Suite{
		Define: define,
		Options: func() []service.Option {
			store, _ := idempotency.NewMemory(idempotency.MemoryConfig{})
			return []service.Option{
				service.WithIdempotency(store),
				service.WithDefaults(service.Policy{Retry: retry.Policy{InitialInterval: 5 * time.Millisecond, MaxInterval: 20 * time.Millisecond}}),
			}
		},
		Input: func(key string, n int) event.Event {
			return requested{ID: fmt.Sprintf("%s-%d", key, n), Amount: 100 + n}
		},
		Poison: []conformance.Poison{{
			Name: "zero amount", Event: requested{ID: "zero", Amount: 0},
			Handler: "payments.capture", ErrorContains: errAmount.Error(),
		}},
		MinChainDepth: 2,
		Brokers:       brokers,
	}
}

func TestMemoryConforms(t *testing.T) {
	conformance.Run(t, suite(conformance.Memory(memory.Config{})))
}

// brokenBroker is the in-memory broker with one guarantee broken on
// purpose, to see the suite fail on it.
type brokenBroker struct {
	*memory.Broker
	breaks string
}

func (b *brokenBroker) Subscriber(group string, opts broker.SubscriberOptions) (message.Subscriber, error) {
	s, err := b.Broker.Subscriber(group, opts)
	if err != nil {
		return nil, err
	}
	return &brokenSubscriber{Subscriber: s, breaks: b.breaks}, nil
}

type brokenSubscriber struct {
	message.Subscriber
	breaks string
}

func (s *brokenSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	in, err := s.Subscriber.Subscribe(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := make(chan *message.Message)
	go func() {
		defer close(out)
		held, swapped := map[string]*message.Message{}, map[string]bool{}
		n := 0
		for m := range in {
			switch s.breaks {
			case "drops-correlation": // a header lost on the way
				delete(m.Metadata, header.CorrelationID)
			case "loses-messages": // acked, never handed out
				if n++; n%5 == 0 {
					m.Ack()
					continue
				}
			case "reorders-keys": // the first two messages of a key swapped
				key := m.Metadata.Get(header.Key)
				if !strings.HasPrefix(key, "order-") || swapped[key] {
					break
				}
				if h := held[key]; h != nil {
					out <- m
					m, swapped[key] = h, true
					break
				}
				held[key] = m.Copy()
				m.Ack()
				continue
			}
			out <- m
		}
	}()
	return out, nil
}

// TestBrokenBrokerSuite runs the suite on a broken broker when the outer
// test asks for it.
func TestBrokenBrokerSuite(t *testing.T) {
	breaks := os.Getenv("CONFORMANCE_BREAKS")
	if breaks == "" {
		// The helper process of TestKitFailsOnBrokenBrokers, which runs
		// it and asserts on its failures: on its own it has nothing to do.
		return
	}
	s := suite(conformance.Broker{Name: breaks, Shared: true, Open: func(tb testing.TB) broker.Broker {
		b, err := memory.New(memory.Config{}, nil)
		if err != nil {
			tb.Fatal(err)
		}
		return &brokenBroker{Broker: b, breaks: breaks}
	}})
	s.Timeout = 3 * time.Second
	for _, name := range conformance.Scenarios {
		if !strings.Contains(os.Getenv("CONFORMANCE_SCENARIOS"), name) {
			s.Skip = append(s.Skip, name)
		}
	}
	conformance.Run(t, s)
}

// TestKitFailsOnBrokenBrokers: a suite that passes on a broker that breaks
// a guarantee would prove nothing. Each broken broker must fail the
// scenario of its guarantee, while a scenario it does not break holds.
func TestKitFailsOnBrokenBrokers(t *testing.T) {
	for _, tc := range []struct {
		breaks, fails, holds string
	}{
		{"drops-correlation", "correlation_causation", "order_per_key"},
		{"loses-messages", "delivery_to_each_group", "cloudevents_interop"},
		{"reorders-keys", "order_per_key", "correlation_causation"},
	} {
		t.Run(tc.breaks, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run", "^TestBrokenBrokerSuite$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), "CONFORMANCE_BREAKS="+tc.breaks, "CONFORMANCE_SCENARIOS="+tc.fails+","+tc.holds)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("the suite on a broker that %s: err = %v, want it to fail\n%s", tc.breaks, err, out)
			}
			for _, want := range []string{
				"--- FAIL: TestBrokenBrokerSuite/" + tc.breaks + "/" + tc.fails,
				"--- PASS: TestBrokenBrokerSuite/" + tc.breaks + "/" + tc.holds,
				tc.breaks + ": 1 held, differed: " + tc.fails,
			} {
				if !strings.Contains(string(out), want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
		})
	}
}
