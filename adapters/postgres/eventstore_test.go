package postgres_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard-go/switchyard/adapters/postgres"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/eventstore"
	"github.com/switchyard-go/switchyard/pkg/eventstore/eventstoretest"
	"github.com/switchyard-go/switchyard/pkg/outbox"
)

func newEventStore(t *testing.T, pool *pgxpool.Pool, cfg postgres.EventStoreConfig) *postgres.EventStore {
	t.Helper()
	cfg.Table = unique("events_")
	s, err := postgres.NewEventStore(pool, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = pool.Exec(context.Background(), `DROP TABLE `+s.Table()) })
	return s
}

func TestEventStoreConformance(t *testing.T) {
	pool := newPool(t)
	s := newEventStore(t, pool, postgres.EventStoreConfig{Source: "test"})
	eventstoretest.Run(t, func(*testing.T) eventstore.Store { return s })
}

type orderPaid struct {
	OrderID string `json:"order_id"`
}

func (orderPaid) EventType() string  { return "orders.order_paid" }
func (orderPaid) EventVersion() int  { return 1 }
func (orderPaid) EventTopic() string { return "orders" }

// TestEventStoreWritesToOutbox: appended events reach the outbox in the
// append's transaction, with the stored envelope; a conflicting append
// leaves nothing there.
func TestEventStoreWritesToOutbox(t *testing.T) {
	pool := newPool(t)
	ctx := context.Background()
	ob := newOutbox(t, pool, postgres.OutboxConfig{})
	s := newEventStore(t, pool, postgres.EventStoreConfig{Source: "orders-svc", Namespace: "prod.", Outbox: ob})
	if err := s.Append(ctx, "order-1", 0, orderPlaced{OrderID: "order-1"}, orderPaid{OrderID: "order-1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, "order-1", 0, orderPaid{OrderID: "order-1"}); !errors.Is(err, eventstore.ErrConcurrencyConflict) {
		t.Fatalf("stale append: %v, want ErrConcurrencyConflict", err)
	}
	recs, err := s.Load(ctx, "order-1")
	if err != nil || len(recs) != 2 {
		t.Fatalf("load: %d %v", len(recs), err)
	}
	pub := &recordingPublisher{}
	if n, err := (&outbox.Relay{Store: ob, Publisher: pub}).Flush(ctx); n != 2 || err != nil {
		t.Fatalf("Flush = %d, %v; want the two appended events only", n, err)
	}
	got := pub.snapshot()
	for i, m := range got {
		env, err := event.ReadEnvelope(m)
		if err != nil {
			t.Fatal(err)
		}
		if env != recs[i].Envelope {
			t.Errorf("published envelope %+v, stored %+v", env, recs[i].Envelope)
		}
		if env.Source != "orders-svc" || env.Key != "order-1" || string(m.Payload) != string(recs[i].Data) {
			t.Errorf("published %+v %s", env, m.Payload)
		}
	}
	var topics []string
	rows, _ := pool.Query(ctx, `SELECT topic FROM `+ob.Table()+` ORDER BY id`)
	for rows.Next() {
		var tp string
		_ = rows.Scan(&tp)
		topics = append(topics, tp)
	}
	rows.Close()
	if len(topics) != 2 || topics[0] != "prod.orders.order_placed" || topics[1] != "prod.orders" {
		t.Fatalf("outbox topics %v, want the events' topics under the namespace", topics)
	}
}

// TestEventStoreAppendTxRollsBackWithTheBusinessWrite: events appended in
// a transaction that rolls back are neither stored nor in the outbox.
func TestEventStoreAppendTxRollsBackWithTheBusinessWrite(t *testing.T) {
	pool := newPool(t)
	ctx := context.Background()
	ob := newOutbox(t, pool, postgres.OutboxConfig{})
	s := newEventStore(t, pool, postgres.EventStoreConfig{Outbox: ob})
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AppendTx(ctx, tx, "order-2", 0, orderPlaced{OrderID: "order-2"}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if recs, _ := s.Load(ctx, "order-2"); len(recs) != 0 {
		t.Fatalf("%d events stored after rollback", len(recs))
	}
	if n, _ := ob.Pending(ctx); n != 0 {
		t.Fatalf("%d outbox records after rollback", n)
	}
}
