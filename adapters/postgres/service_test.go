package postgres_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/adapters/postgres"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/service"
)

type orderPlaced struct {
	OrderID string `json:"order_id"`
}

func (orderPlaced) EventType() string { return "orders.order_placed" }
func (orderPlaced) EventVersion() int { return 1 }

// TestTransactionalThroughService runs TransactionalIdempotency as service
// middleware: a broker duplicate writes no second effect and is counted.
func TestTransactionalThroughService(t *testing.T) {
	pool := newPool(t)
	ctx := context.Background()
	table := unique("effects_")
	if _, err := pool.Exec(ctx, `CREATE TABLE `+table+` (order_id text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = pool.Exec(context.Background(), `DROP TABLE `+table) })
	b, err := memory.New(memory.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	var svc *service.Service
	svc = service.New(b, service.WithNamespace(unique("t")+"."), service.WithMiddleware(postgres.TransactionalIdempotency(pool, postgres.TxConfig{
		OnDuplicate: func(d *middleware.Delivery) { svc.Recorder().Duplicate(d.Handler.Name) },
	})))
	var calls atomic.Int32
	if err := service.Handle(svc, "reserve", func(ctx context.Context, e orderPlaced) error {
		calls.Add(1)
		_, err := postgres.TxFrom(ctx).Exec(ctx, `INSERT INTO `+table+` (order_id) VALUES ($1)`, e.OrderID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- svc.Run(runCtx) }()
	defer func() { stop(); <-errc }()
	<-svc.Ready()

	msg, topic, err := svc.NewMessage(ctx, orderPlaced{OrderID: "o-1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publisher().Publish(topic, msg, msg.Copy()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s := svc.Stats(); s.Handled+s.Duplicates < 2; s = svc.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %+v", s)
		}
		time.Sleep(5 * time.Millisecond)
	}
	var effects int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&effects); err != nil {
		t.Fatal(err)
	}
	if s := svc.Stats(); effects != 1 || s.Handled != 1 || s.Duplicates != 1 {
		t.Fatalf("effects %d, stats %+v; want 1 effect, 1 handled, 1 duplicate", effects, s)
	}
}
