package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard-go/switchyard/adapters/postgres"
	"github.com/switchyard-go/switchyard/config"
	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/schedule"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// due is a scheduled event of the scheduling scenarios.
type due struct {
	N int `json:"n"`
}

func (due) EventType() string { return "e2e.due" }
func (due) EventVersion() int { return 1 }

func uniqueName(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// pgSchedule is a PostgreSQL schedule store on a table of its own.
func pgSchedule(t *testing.T, url string) schedule.Store {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	s, err := postgres.NewSchedule(pool, uniqueName("e2e_sched_"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func openBroker(t *testing.T, c config.Config) broker.Broker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := config.Open(ctx, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// scheduler is what a scheduling scenario runs on.
type scheduler interface {
	service.Scheduler
	service.Companion
}

// onStore is the store-backed scheduler on store.
func onStore(store schedule.Store) func(broker.Broker, string) scheduler {
	return func(broker.Broker, string) scheduler {
		return schedule.New(store, schedule.Config{PollInterval: 50 * time.Millisecond})
	}
}

// onBroker is the scheduler on the broker's delay machinery, its relay
// topic in the scenario's namespace.
func onBroker(b broker.Broker, ns string) scheduler {
	return schedule.NewOnBroker(b, schedule.BrokerConfig{Topic: ns + "scheduled", Group: ns + "scheduler"})
}

// scheduled runs one scheduling scenario: event 1 is scheduled at +wait
// and must reach both consumer groups of its topic no sooner; event 2 is
// scheduled and cancelled and must reach none (or, where cancel is not
// supported, both, no sooner than due). outage, if not nil, runs right
// after scheduling and returns once the broker is back.
func scheduled(t *testing.T, b broker.Broker, newScheduler func(broker.Broker, string) scheduler, wait time.Duration, outage func()) {
	ns := uniqueName("e2e-sched-") + "."
	sch := newScheduler(b, ns)
	svc := service.New(b, service.WithNamespace(ns), service.WithScheduler(sch), service.WithCompanion(sch))
	type handling struct {
		group string
		n     int
		at    time.Time
		id    string
	}
	var (
		mu   sync.Mutex
		seen []handling
	)
	for _, g := range []string{"left", "right"} {
		if err := service.Handle(svc, g, func(ctx context.Context, e due) error {
			mu.Lock()
			seen = append(seen, handling{g, e.N, time.Now(), middleware.DeliveryFrom(ctx).Envelope.ID})
			mu.Unlock()
			return nil
		}, service.Group(g)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, stop := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- svc.Run(ctx) }()
	defer func() {
		stop()
		if err := <-runErr; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	select {
	case <-svc.Ready():
	case err := <-runErr:
		t.Fatalf("Run: %v", err)
	case <-time.After(90 * time.Second):
		t.Fatal("service not ready after 90s")
	}
	at := time.Now().Add(wait)
	dueAt := map[int]time.Time{1: at, 2: at.Add(-wait / 2)}
	if _, err := svc.PublishAt(context.Background(), due{N: 1}, dueAt[1]); err != nil {
		t.Fatal(err)
	}
	id, err := svc.PublishAt(context.Background(), due{N: 2}, dueAt[2])
	if err != nil {
		t.Fatal(err)
	}
	want := 2 // event 1 in both groups
	switch err := svc.CancelScheduled(context.Background(), id); {
	case errors.Is(err, service.ErrCancelUnsupported):
		want = 4 // and event 2
	case err != nil:
		t.Fatalf("cancel: %v", err)
	}
	if outage != nil {
		outage()
	}
	deadline := time.Now().Add(120 * time.Second)
	for {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n >= want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 120s %d handlings of scheduled events, want %d", n, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The cancelled event was due before the other: had it been kept it
	// would be here by now (the relay publishes in due order).
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	got := map[string]string{} // group and event: its message id
	var latest time.Duration
	dups := 0
	for _, h := range seen {
		latest = max(latest, h.at.Sub(dueAt[h.n]))
		if h.n == 2 && want == 2 {
			t.Errorf("%s handled event 2, which was cancelled", h.group)
			continue
		}
		k := fmt.Sprint(h.group, h.n)
		if id, ok := got[k]; ok {
			// At least once: an outage may repeat a publish whose confirm
			// or ack was lost, with the same id (idempotent consumers see
			// it once). Without an outage there is no reason to.
			dups++
			if id != h.id || outage == nil {
				t.Errorf("%s handled event %d twice, ids %s and %s", h.group, h.n, id, h.id)
			}
		}
		got[k] = h.id
		if h.at.Before(dueAt[h.n]) {
			t.Errorf("%s handled event %d %s before it was due", h.group, h.n, dueAt[h.n].Sub(h.at))
		}
	}
	t.Logf("%d handlings (%d repeats), the latest %s after its due time", len(seen), dups, latest.Round(time.Millisecond))
	if len(got) != want {
		t.Errorf("handlings %+v, want %d: each event in each of left and right", seen, want)
	}
}

// TestScheduledPublish: on every broker a scheduled event reaches every
// group of its topic, never early, and a cancelled one none; on RabbitMQ
// and Kafka it is kept in PostgreSQL.
func TestScheduledPublish(t *testing.T) {
	for _, name := range []string{"memory", "amqp", "kafka"} {
		t.Run(name, func(t *testing.T) {
			c := configs[name](t)
			t.Run("store", func(t *testing.T) {
				var store schedule.Store = schedule.NewMemory()
				if name != "memory" {
					store = pgSchedule(t, brokertest.PostgresURL(t))
				}
				b := openBroker(t, c)
				defer b.Close()
				scheduled(t, b, onStore(store), time.Second, nil)
			})
			t.Run("broker", func(t *testing.T) {
				b := openBroker(t, c)
				defer b.Close()
				scheduled(t, b, onBroker, time.Second, nil)
			})
		})
	}
}

// TestScheduledSurvivesBrokerRestart: the broker is down when the event
// falls due; it is published once the broker is back, not lost, not early.
// With the PostgreSQL store the relay retries until the broker is back;
// on the broker's delay machinery the message waited in the broker itself.
func TestScheduledSurvivesBrokerRestart(t *testing.T) {
	private := map[string]func(t *testing.T) (config.Config, *brokertest.Server){
		"amqp": func(t *testing.T) (config.Config, *brokertest.Server) {
			srv := brokertest.StartRabbitMQ(t)
			c := config.Defaults()
			c.Broker.Type = config.BrokerAMQP
			c.Broker.AMQP.URL = srv.AMQPURL()
			return c, srv
		},
		"kafka": func(t *testing.T) (config.Config, *brokertest.Server) {
			srv := brokertest.StartKafka(t)
			c := config.Defaults()
			c.Broker.Type = config.BrokerKafka
			c.Broker.Kafka.Brokers = strings.Split(srv.KafkaBrokers(), ",")
			return c, srv
		},
	}
	for _, name := range []string{"amqp", "kafka"} {
		t.Run(name, func(t *testing.T) {
			pg := brokertest.PostgresURL(t)
			c, srv := private[name](t)
			outage := func() {
				srv.Stop()
				time.Sleep(3 * time.Second) // past the due time, broker down
				srv.Start()
			}
			t.Run("store", func(t *testing.T) {
				b := openBroker(t, c)
				defer b.Close()
				scheduled(t, b, onStore(pgSchedule(t, pg)), 2*time.Second, outage)
			})
			t.Run("broker", func(t *testing.T) {
				b := openBroker(t, c)
				defer b.Close()
				scheduled(t, b, onBroker, 2*time.Second, outage)
			})
		})
	}
}
