package asyncapi_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/switchyard-go/switchyard/pkg/asyncapi"
	"github.com/switchyard-go/switchyard/pkg/eventschema"
	"github.com/switchyard-go/switchyard/pkg/graph"
	"github.com/switchyard-go/switchyard/pkg/middleware"
)

type orderPlaced struct {
	OrderID string `json:"order_id"`
}

func (orderPlaced) EventType() string  { return "orders.order_placed" }
func (orderPlaced) EventVersion() int  { return 1 }
func (e orderPlaced) EventKey() string { return e.OrderID }

// A service's graph, as svc.Graph() returns it, written for Kafka.
func ExampleGenerate() {
	schema, _ := eventschema.Of(orderPlaced{})
	g := graph.Build([]middleware.Info{
		{Name: "billing.charge", Group: "billing", Topic: "orders.order_placed", EventType: "orders.order_placed"},
	}).WithEvents(graph.Event{Name: "orders.order_placed", Version: 1, Topic: "orders.order_placed", Keyed: true, Schema: schema})

	doc, err := asyncapi.Generate(g, asyncapi.Config{
		Title:   "billing",
		Version: "1.0.0",
		Servers: []asyncapi.Server{{Host: "kafka-1:9092", Protocol: "kafka"}},
		Kafka:   &asyncapi.Kafka{Partitions: 3, Replicas: 3},
	})
	if err != nil {
		panic(err)
	}
	var d struct {
		Channels   map[string]any
		Operations map[string]struct {
			Action   string
			Bindings struct {
				Kafka struct{ GroupID struct{ Enum []string } }
			}
		}
	}
	_ = json.Unmarshal(doc, &d)
	var channels []string
	for id := range d.Channels {
		channels = append(channels, id)
	}
	slices.Sort(channels)
	op := d.Operations["billing.charge"]
	fmt.Println("channels:", strings.Join(channels, ", "))
	fmt.Println("billing.charge:", op.Action, "as group", op.Bindings.Kafka.GroupID.Enum[0])
	// Output:
	// channels: orders.order_placed
	// billing.charge: receive as group billing
}
