package handlers_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/switchyard-go/switchyard/handlers"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/failure"
)

// recorder is a Publisher that keeps what was published.
type recorder struct {
	mu     sync.Mutex
	events []event.Event
	err    error
}

func (r *recorder) Publish(_ context.Context, e event.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.events = append(r.events, e)
	return nil
}

func (r *recorder) published() []event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event.Event(nil), r.events...)
}

func order(id string, items ...handlers.Item) handlers.OrderPlaced {
	return handlers.OrderPlaced{OrderID: id, CustomerID: "c-1", Items: items, TotalCents: handlers.Total(items), Email: "c1@example.com"}
}

func TestInventoryHandler(t *testing.T) {
	widget := handlers.Item{SKU: "widget", Qty: 2, PriceCents: 250}
	gadget := handlers.Item{SKU: "gadget", Qty: 1, PriceCents: 1000}
	tests := []struct {
		name      string
		order     handlers.OrderPlaced
		permanent bool
		want      string // event type published
		stockLeft map[string]int
	}{
		{name: "reserved", order: order("o1", widget, gadget), want: handlers.TypeInventoryReserved,
			stockLeft: map[string]int{"widget": 8, "gadget": 0}},
		{name: "same sku on two lines adds up", order: order("o2", widget, widget), want: handlers.TypeInventoryReserved,
			stockLeft: map[string]int{"widget": 6, "gadget": 1}},
		{name: "out of stock is rejected, nothing reserved", order: order("o3", widget, handlers.Item{SKU: "gadget", Qty: 2, PriceCents: 1}),
			want: handlers.TypeInventoryRejected, stockLeft: map[string]int{"widget": 10, "gadget": 1}},
		{name: "unknown sku is rejected", order: order("o4", handlers.Item{SKU: "nope", Qty: 1, PriceCents: 1}),
			want: handlers.TypeInventoryRejected, stockLeft: map[string]int{"widget": 10, "gadget": 1}},
		{name: "no items", order: order("o5"), permanent: true},
		{name: "zero qty", order: order("o6", handlers.Item{SKU: "widget", Qty: 0, PriceCents: 1}), permanent: true},
		{name: "negative qty", order: order("o7", handlers.Item{SKU: "widget", Qty: -1, PriceCents: 1}), permanent: true},
		{name: "total mismatch", order: func() handlers.OrderPlaced { o := order("o8", widget); o.TotalCents++; return o }(), permanent: true},
		{name: "no email", order: func() handlers.OrderPlaced { o := order("o9", widget); o.Email = ""; return o }(), permanent: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := handlers.NewInventory(map[string]int{"widget": 10, "gadget": 1})
			pub := &recorder{}
			err := inv.Handler(pub)(context.Background(), tt.order)
			if tt.permanent {
				if !failure.IsPermanent(err) || !errors.Is(err, handlers.ErrInvalidOrder) {
					t.Fatalf("err = %v, want a permanent ErrInvalidOrder", err)
				}
				if got := pub.published(); len(got) != 0 {
					t.Fatalf("published %v for an invalid order", got)
				}
				if inv.Available("widget") != 10 {
					t.Fatalf("an invalid order changed the stock")
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			got := pub.published()
			if len(got) != 1 || got[0].EventType() != tt.want {
				t.Fatalf("published %v, want one %s", got, tt.want)
			}
			if event.KeyOf(got[0]) != tt.order.OrderID {
				t.Fatalf("key = %q, want the order id", event.KeyOf(got[0]))
			}
			for sku, n := range tt.stockLeft {
				if a := inv.Available(sku); a != n {
					t.Errorf("available %s = %d, want %d", sku, a, n)
				}
			}
		})
	}
}

func TestInventoryReservedCarriesContact(t *testing.T) {
	inv := handlers.NewInventory(map[string]int{"widget": 10})
	o := order("o1", handlers.Item{SKU: "widget", Qty: 3, PriceCents: 100})
	out, err := inv.Reserve(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	r, ok := out.(handlers.InventoryReserved)
	if !ok || r.Email != o.Email || r.CustomerID != o.CustomerID || r.TotalCents != 300 || len(r.Items) != 1 {
		t.Fatalf("outcome = %#v", out)
	}
}

func TestInventoryRedeliveryIsIdempotent(t *testing.T) {
	inv := handlers.NewInventory(map[string]int{"widget": 3})
	h := inv.Handler(&recorder{})
	o := order("o1", handlers.Item{SKU: "widget", Qty: 2, PriceCents: 100})
	failing := &recorder{err: errors.New("broker down")}
	// The publish fails after the reservation: the runtime retries.
	if err := inv.Handler(failing)(context.Background(), o); err == nil || failure.IsPermanent(err) {
		t.Fatalf("err = %v, want the transient publish error", err)
	}
	pub := &recorder{}
	if err := inv.Handler(pub)(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if got := pub.published(); len(got) != 1 || got[0].EventType() != handlers.TypeInventoryReserved {
		t.Fatalf("redelivery published %v, want InventoryReserved again", got)
	}
	if a := inv.Available("widget"); a != 1 {
		t.Fatalf("available = %d, want 1: the order was reserved twice", a)
	}
	// A later order that no longer fits is rejected and reserves nothing.
	if err := h(context.Background(), order("o2", handlers.Item{SKU: "widget", Qty: 2, PriceCents: 100})); err != nil {
		t.Fatal(err)
	}
	if a := inv.Available("widget"); a != 1 {
		t.Fatalf("available = %d after a rejected order, want 1", a)
	}
}

func TestInventoryConcurrentReservationsNeverOversell(t *testing.T) {
	inv := handlers.NewInventory(map[string]int{"widget": 50})
	pub := &recorder{}
	h := inv.Handler(pub)
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			o := order(string(rune('a'+i%26))+string(rune('0'+i/26)), handlers.Item{SKU: "widget", Qty: 1, PriceCents: 1})
			if err := h(context.Background(), o); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	reserved := 0
	for _, e := range pub.published() {
		if e.EventType() == handlers.TypeInventoryReserved {
			reserved++
		}
	}
	if reserved != 50 || inv.Available("widget") != 0 {
		t.Fatalf("reserved %d, available %d; want 50 and 0", reserved, inv.Available("widget"))
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	o := handlers.OrderPlaced{Items: []handlers.Item{{Qty: 0, PriceCents: -1}}, TotalCents: 5}
	err := o.Validate()
	for _, want := range []string{"order_id is empty", "email is empty", "items[0].sku is empty", "items[0].qty: 0", "items[0].price_cents: -1", "total_cents: 5"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
}
