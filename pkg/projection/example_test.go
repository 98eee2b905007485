package projection_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/switchyard-go/switchyard/pkg/eventstore"
	"github.com/switchyard-go/switchyard/pkg/projection"
)

// A read model of order totals, fed by the event store's global stream,
// then rebuilt into its next generation.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := eventstore.NewMemory(eventstore.Encoder{})
	_ = events.Append(ctx, "order-1", 0, orderPlaced{OrderID: "order-1", Total: 10})
	_ = events.Append(ctx, "order-2", 0, orderPlaced{OrderID: "order-2", Total: 5})

	var mu sync.Mutex
	totals := map[string]float64{} // target → sum of totals
	p, err := projection.New("order_totals", projection.NewMemory(), nil)
	if err != nil {
		panic(err)
	}
	_ = projection.Handle(p, func(ctx context.Context, e orderPlaced) error {
		mu.Lock()
		defer mu.Unlock()
		totals[projection.Target(ctx)] += e.Total
		return nil
	})
	go p.Run(ctx, events)
	for p.Status().Position < 2 {
		time.Sleep(time.Millisecond)
	}
	if err := p.Rebuild(ctx, events); err != nil {
		panic(err)
	}
	mu.Lock()
	defer mu.Unlock()
	st := p.Status()
	fmt.Println(st.Target, totals["order_totals_v1"], totals["order_totals_v2"], st.Rebuilding)
	// Output: order_totals_v2 15 15 false
}
