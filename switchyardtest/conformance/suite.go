package conformance

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/config"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/service"
	"github.com/switchyard-go/switchyard/switchyardtest"
)

// Suite is a service definition and the brokers to prove it on.
type Suite struct {
	// Define registers one instance's handlers and policies. It is called
	// for every instance a scenario starts (competing consumers and the
	// restart after a graceful shutdown start two), each on a new service,
	// so it should build the handlers' state afresh.
	Define switchyardtest.Define
	// Options, if set, returns the service options of one scenario (source,
	// defaults, idempotency store...); every instance of the scenario gets
	// the same ones, as instances share a database. The kit adds its own
	// namespace, logger and probe.
	Options func() []service.Option
	// Input returns input number n (from 0) for key: an event the
	// service's handlers consume and handle successfully. The kit
	// publishes it with key as its key (ce_partitionkey) and an id of its
	// own; events of one key are expected in publish order.
	Input func(key string, n int) event.Event
	// Poison lists inputs the handlers themselves refuse for good.
	Poison []Poison
	// MinChainDepth is the hop count the deepest event caused by one
	// input must reach within the service (0: no requirement), e.g. 2 for
	// placed → reserved → notified.
	MinChainDepth int
	// Brokers are the brokers to run every scenario on, each a subtest.
	Brokers []Broker
	// Skip names built-in scenarios not to run (see [Scenarios]).
	Skip []string
	// Extra scenarios run after the built-in ones, on every broker.
	Extra []Scenario
	// Timeout bounds each wait of a scenario. Default 60s.
	Timeout time.Duration
	// Settle is how long a scenario waits with nothing happening before it
	// counts (duplicates show up by then). Default 300ms.
	Settle time.Duration
}

// Poison is an input a handler refuses for good: it must be dead-lettered
// after one attempt with Reason, its error naming ErrorContains.
type Poison struct {
	Name          string
	Event         event.Event
	Handler       string
	Reason        failure.Reason // default permanent
	ErrorContains string
}

// Scenario is a scripted check run on every broker.
type Scenario struct {
	Name string
	Run  func(t *testing.T, e *Env)
	// Brokers, if set, names the brokers ([Broker.Name]) the scenario
	// applies to; on the others it is not run and the summary says "not
	// applicable", so that it never passes by skipping.
	Brokers []string
}

// Broker is a broker the suite runs on.
type Broker struct {
	// Name names the subtest, e.g. "kafka".
	Name string
	// Open opens a new connection to the broker, or skips (or fails, under
	// CI) tb when the broker is not configured. The kit closes it when the
	// scenario ends. The in-memory broker lives in the process: when Open
	// returns a *memory.Broker, the scenario opens it once and every
	// instance shares it; so it does when Shared is set.
	Open func(tb testing.TB) broker.Broker
	// Shared says that the broker lives in the process (a wrapper of the
	// in-memory broker, say): one Open per scenario, shared by its
	// instances.
	Shared bool
}

// GroupWaiter is implemented by brokers whose consumer groups rebalance
// when a member joins (adapters/kafka): the competing-consumers scenario
// waits for the group to settle before it publishes.
type GroupWaiter interface {
	WaitGroup(ctx context.Context, group string, members int) error
}

// Memory is the in-memory broker with cfg.
func Memory(cfg memory.Config) Broker {
	return Broker{Name: memory.Name, Shared: true, Open: func(tb testing.TB) broker.Broker {
		b, err := memory.New(cfg, nil)
		if err != nil {
			tb.Fatalf("conformance: %v", err)
		}
		return b
	}}
}

// FromConfig opens the broker a configuration selects, through
// [config.Open] as an application does; cfg may skip tb when the broker
// is not configured.
func FromConfig(name string, cfg func(tb testing.TB) config.Config) Broker {
	return Broker{Name: name, Open: func(tb testing.TB) broker.Broker {
		c := cfg(tb)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		b, err := config.Open(ctx, c, nil)
		if err != nil {
			tb.Fatalf("conformance: open %s: %v", name, err)
		}
		return b
	}}
}

// Scenarios are the names of the built-in scenarios, in the order they run.
var Scenarios = []string{
	"delivery_to_each_group",
	"competing_consumers",
	"order_per_key",
	"retry_then_success",
	"permanent_error_dead_letter",
	"idempotent_redelivery",
	"graceful_shutdown_mid_handler",
	"cloudevents_interop",
	"correlation_causation",
}

var builtins = map[string]func(t *testing.T, e *Env){
	"delivery_to_each_group":        deliveryToEachGroup,
	"competing_consumers":           competingConsumers,
	"order_per_key":                 orderPerKey,
	"retry_then_success":            retryThenSuccess,
	"permanent_error_dead_letter":   permanentDeadLetter,
	"idempotent_redelivery":         idempotentRedelivery,
	"graceful_shutdown_mid_handler": gracefulShutdown,
	"cloudevents_interop":           cloudEventsInterop,
	"correlation_causation":         correlationCausation,
}

// Run runs every scenario of s on every broker of s, as subtests
// "<broker>/<scenario>", and logs per broker which held, which differed and
// which were skipped.
func Run(t *testing.T, s Suite) {
	t.Helper()
	if s.Define == nil || s.Input == nil {
		t.Fatal("conformance: Suite.Define and Suite.Input are required")
	}
	if len(s.Brokers) == 0 {
		t.Fatal("conformance: Suite.Brokers is empty")
	}
	for _, name := range s.Skip {
		if builtins[name] == nil {
			t.Fatalf("conformance: Suite.Skip names %q, not a scenario (%v)", name, Scenarios)
		}
	}
	if s.Timeout == 0 {
		s.Timeout = 60 * time.Second
	}
	if s.Settle == 0 {
		s.Settle = 300 * time.Millisecond
	}
	var scenarios []Scenario
	for _, name := range Scenarios {
		if !slices.Contains(s.Skip, name) {
			scenarios = append(scenarios, Scenario{Name: name, Run: builtins[name]})
		}
	}
	scenarios = append(scenarios, s.Extra...)

	var mu sync.Mutex
	report := map[string]map[string][]string{} // broker -> outcome -> scenarios
	for _, b := range s.Brokers {
		t.Run(b.Name, func(t *testing.T) {
			for _, sc := range scenarios {
				if len(sc.Brokers) > 0 && !slices.Contains(sc.Brokers, b.Name) {
					mu.Lock()
					if report[b.Name] == nil {
						report[b.Name] = map[string][]string{}
					}
					report[b.Name]["not applicable"] = append(report[b.Name]["not applicable"], sc.Name)
					mu.Unlock()
					continue
				}
				outcome := "" // stays empty when -run filters the scenario out
				t.Run(sc.Name, func(t *testing.T) {
					outcome = "differed"
					e := newEnv(t, &s, b)
					defer func() {
						switch {
						case t.Skipped():
							outcome = "skipped"
						case !t.Failed():
							outcome = "held"
						}
					}()
					sc.Run(t, e)
				})
				if outcome == "" {
					continue
				}
				mu.Lock()
				if report[b.Name] == nil {
					report[b.Name] = map[string][]string{}
				}
				report[b.Name][outcome] = append(report[b.Name][outcome], sc.Name)
				mu.Unlock()
			}
		})
	}
	var lines []string
	mu.Lock()
	defer mu.Unlock()
	for _, b := range s.Brokers {
		r := report[b.Name]
		if r == nil {
			continue // filtered out by -run
		}
		line := fmt.Sprintf("%s: %d held", b.Name, len(r["held"]))
		for _, o := range []string{"differed", "skipped", "not applicable"} {
			if len(r[o]) > 0 {
				line += fmt.Sprintf(", %s: %s", o, strings.Join(r[o], " "))
			}
		}
		lines = append(lines, line)
	}
	t.Logf("conformance:\n  %s", strings.Join(lines, "\n  "))
}
