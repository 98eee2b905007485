package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard-go/switchyard/adapters/postgres"
	"github.com/switchyard-go/switchyard/config"
	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/pkg/broker"
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

// scheduled runs one scheduling scenario: event 1 is scheduled at +wait
// and must reach both consumer groups of its topic no sooner; event 2 is
// scheduled and cancelled and must reach none. outage, if not nil, runs
// right after scheduling and returns once the broker is back.
func scheduled(t *testing.T, b broker.Broker, store schedule.Store, wait time.Duration, outage func()) {
	ns := uniqueName("e2e-sched-") + "."
	sch := schedule.New(store, schedule.Config{PollInterval: 50 * time.Millisecond})
	svc := service.New(b, service.WithNamespace(ns), service.WithScheduler(sch), service.WithCompanion(sch))
	type handling struct {
		group string
		n     int
		at    time.Time
	}
	var (
		mu   sync.Mutex
		seen []handling
	)
	for _, g := range []string{"left", "right"} {
		if err := service.Handle(svc, g, func(ctx context.Context, e due) error {
			mu.Lock()
			seen = append(seen, handling{g, e.N, time.Now()})
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
	if _, err := svc.PublishAt(context.Background(), due{N: 1}, at); err != nil {
		t.Fatal(err)
	}
	id, err := svc.PublishAt(context.Background(), due{N: 2}, at.Add(-wait/2))
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.CancelScheduled(context.Background(), id); err != nil {
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
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 120s the scheduled event reached %d of 2 groups", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The cancelled event was due before the other: had it been kept it
	// would be here by now (the relay publishes in due order).
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	groups := map[string]bool{}
	for _, h := range seen {
		if h.n != 1 {
			t.Errorf("%s handled event %d, which was cancelled", h.group, h.n)
			continue
		}
		groups[h.group] = true
		if h.at.Before(at) {
			t.Errorf("%s handled the event %s before it was due", h.group, at.Sub(h.at))
		}
	}
	if len(groups) != 2 || len(seen) != 2 {
		t.Errorf("handlings %+v, want event 1 once in each of left and right", seen)
	}
}

// TestScheduledPublish: on every broker a scheduled event reaches every
// group of its topic, never early, and a cancelled one none; on RabbitMQ
// and Kafka it is kept in PostgreSQL.
func TestScheduledPublish(t *testing.T) {
	for _, name := range []string{"memory", "amqp", "kafka"} {
		t.Run(name, func(t *testing.T) {
			c := configs[name](t)
			var store schedule.Store = schedule.NewMemory()
			if name != "memory" {
				store = pgSchedule(t, brokertest.PostgresURL(t))
			}
			b := openBroker(t, c)
			defer b.Close()
			scheduled(t, b, store, time.Second, nil)
		})
	}
}

// TestScheduledSurvivesBrokerRestart: the broker is down when the event
// falls due; it is published once the broker is back, not lost, not early.
func TestScheduledSurvivesBrokerRestart(t *testing.T) {
	t.Run("amqp", func(t *testing.T) {
		pg := brokertest.PostgresURL(t)
		srv := brokertest.StartRabbitMQ(t)
		c := config.Defaults()
		c.Broker.Type = config.BrokerAMQP
		c.Broker.AMQP.URL = srv.AMQPURL()
		b := openBroker(t, c)
		defer b.Close()
		scheduled(t, b, pgSchedule(t, pg), 2*time.Second, func() {
			srv.Stop()
			time.Sleep(3 * time.Second) // past the due time, broker down
			srv.Start()
		})
	})
	t.Run("kafka", func(t *testing.T) {
		pg := brokertest.PostgresURL(t)
		srv := brokertest.StartKafka(t)
		c := config.Defaults()
		c.Broker.Type = config.BrokerKafka
		c.Broker.Kafka.Brokers = strings.Split(srv.KafkaBrokers(), ",")
		b := openBroker(t, c)
		defer b.Close()
		scheduled(t, b, pgSchedule(t, pg), 2*time.Second, func() {
			srv.Stop()
			time.Sleep(3 * time.Second)
			srv.Start()
		})
	})
}
