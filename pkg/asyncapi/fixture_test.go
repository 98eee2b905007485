package asyncapi_test

import (
	"testing"

	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/eventschema"
	"github.com/switchyard-go/switchyard/pkg/graph"
	"github.com/switchyard-go/switchyard/pkg/middleware"
)

type item struct {
	SKU string `json:"sku"`
	Qty int    `json:"qty"`
}

type placed struct {
	OrderID string `json:"order_id"`
	Items   []item `json:"items"`
}

func (placed) EventType() string  { return "orders.order_placed" }
func (placed) EventVersion() int  { return 1 }
func (e placed) EventKey() string { return e.OrderID }

type reserved struct {
	OrderID string `json:"order_id"`
	Items   []item `json:"items"`
}

func (reserved) EventType() string  { return "orders.inventory_reserved" }
func (reserved) EventVersion() int  { return 2 }
func (e reserved) EventKey() string { return e.OrderID }
func (reserved) EventTopic() string { return "inventory" }

type audited struct {
	Note string `json:"note"`
}

func (audited) EventType() string { return "audit.noted" }
func (audited) EventVersion() int { return 1 }

// flow is a small service: one event on its own topic, one on a named
// topic, one unkeyed, two groups on one topic, a handler whose name needs
// sanitizing.
func flow(t *testing.T) *graph.Graph {
	t.Helper()
	handlers := []middleware.Info{
		{Name: "inventory.reserve", Group: "inventory", Topic: "orders.order_placed", EventType: "orders.order_placed", Publishes: []string{"orders.inventory_reserved", "audit.noted"}},
		{Name: "analytics.placed", Group: "analytics", Topic: "orders.order_placed", EventType: "orders.order_placed"},
		{Name: "audit log/writer", Group: "audit", Topic: "audit.noted", EventType: "audit.noted"},
		{Name: "analytics.reserved", Group: "analytics", Topic: "inventory", EventType: "orders.inventory_reserved"},
	}
	var events []graph.Event
	for _, e := range []event.Event{placed{}, reserved{}, audited{}} {
		s, err := eventschema.Of(e)
		if err != nil {
			t.Fatal(err)
		}
		_, keyed := e.(event.Keyed)
		events = append(events, graph.Event{Name: e.EventType(), Version: e.EventVersion(), Topic: event.TopicOf(e), Keyed: keyed, Schema: s})
	}
	return graph.Build(handlers).WithEvents(events...)
}
