package handlers_test

import (
	"context"
	"testing"

	"github.com/switchyard-go/switchyard/handlers"
)

func TestOrderStatusMovesForwardInAnyArrivalOrder(t *testing.T) {
	ctx := context.Background()
	placed := func(v *handlers.OrderStatus) { _ = v.Placed(ctx, handlers.OrderPlaced{OrderID: "o"}) }
	reserved := func(v *handlers.OrderStatus) { _ = v.Reserved(ctx, handlers.InventoryReserved{OrderID: "o"}) }
	rejected := func(v *handlers.OrderStatus) { _ = v.Rejected(ctx, handlers.InventoryRejected{OrderID: "o"}) }
	notified := func(v *handlers.OrderStatus) { _ = v.Notified(ctx, handlers.NotificationSent{OrderID: "o"}) }
	type step = func(*handlers.OrderStatus)
	tests := []struct {
		name  string
		steps []step
		want  handlers.Status
	}{
		{"nothing", nil, handlers.StatusUnknown},
		{"placed", []step{placed}, handlers.StatusPlaced},
		{"reserved", []step{placed, reserved}, handlers.StatusReserved},
		{"rejected", []step{placed, rejected}, handlers.StatusRejected},
		{"notified", []step{placed, reserved, notified}, handlers.StatusNotified},
		{"reserved before placed", []step{reserved, placed}, handlers.StatusReserved},
		{"notified first", []step{notified, placed, reserved}, handlers.StatusNotified},
		{"duplicates", []step{placed, reserved, placed, reserved}, handlers.StatusReserved},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := handlers.NewOrderStatus()
			for _, s := range tt.steps {
				s(v)
			}
			if got := v.Status("o"); got != tt.want {
				t.Fatalf("Status = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestOrderStatusCounts(t *testing.T) {
	ctx := context.Background()
	v := handlers.NewOrderStatus()
	for _, id := range []string{"a", "b", "c"} {
		_ = v.Placed(ctx, handlers.OrderPlaced{OrderID: id})
	}
	_ = v.Reserved(ctx, handlers.InventoryReserved{OrderID: "a"})
	_ = v.Notified(ctx, handlers.NotificationSent{OrderID: "a"})
	_ = v.Rejected(ctx, handlers.InventoryRejected{OrderID: "b"})
	got := v.Counts()
	if got[handlers.StatusNotified] != 1 || got[handlers.StatusRejected] != 1 || got[handlers.StatusPlaced] != 1 || len(got) != 3 {
		t.Fatalf("Counts() = %v", got)
	}
}
