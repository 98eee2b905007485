package kafka_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/service"
)

type orderShipped struct {
	OrderID string `json:"order_id"`
}

func (orderShipped) EventType() string { return "orders.order_shipped" }
func (orderShipped) EventVersion() int { return 1 }

// The runtime reuses one pooled message per Kafka publish (the adapter
// publisher is a broker.CopyingPublisher): every record must carry its own
// headers only.
// Publishes from handlers (causation, hop count, no key) interleave with
// publishes from plain code (a key, no causation) on one service; each
// record read back has the headers of its own event. Break it (the pooled
// message's metadata not cleared) and direct records carry a handler
// publish's causation id.
func TestReusedPublishMessagesCarryOnlyTheirOwnHeaders(t *testing.T) {
	ns := uniqueName(t, "reuse") + "."
	placed, shipped := ns+orderPlaced{}.EventType(), ns+orderShipped{}.EventType()
	cleanupTopic(t, placed, ns+"ship")
	cleanupTopic(t, shipped)
	b := newBroker(t, nil)
	if cp, ok := b.Publisher().(broker.CopyingPublisher); !ok || !cp.PublishCopies() {
		t.Fatal("the Kafka publisher does not report that it copies: the pooled path this test is about is not taken")
	}
	svc := service.New(b, service.WithNamespace(ns))
	if err := service.Handle(svc, "ship", func(ctx context.Context, e orderPlaced) error {
		return svc.Publish(ctx, orderShipped{OrderID: e.OrderID})
	}, service.Group(ns+"ship"), service.Publishes(orderShipped{})); err != nil {
		t.Fatal(err)
	}
	runService(t, svc)

	const workers, each = 8, 40
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers)
	for w := range workers {
		wg.Add(2)
		go func() { // relayed through the handler: causation, no key
			defer wg.Done()
			for i := range each {
				if err := svc.Publish(context.Background(), orderPlaced{OrderID: fmt.Sprintf("relayed-%d-%d", w, i)}); err != nil {
					errs <- err
					return
				}
			}
		}()
		go func() { // direct: a key, no causation
			defer wg.Done()
			for i := range each {
				id := fmt.Sprintf("direct-%d-%d", w, i)
				if err := svc.Publish(context.Background(), orderShipped{OrderID: id}, service.WithKey(id)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokertest.KafkaBrokers(t), ",")...),
		kgo.ConsumeTopics(shipped), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ids := map[string]string{} // ce_id -> order id
	for len(ids) < 2*workers*each {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d shipped records", len(ids), 2*workers*each)
		}
		fs.EachRecord(func(r *kgo.Record) {
			var e orderShipped
			if err := json.Unmarshal(r.Value, &e); err != nil {
				t.Fatalf("record %s: %v", r.Value, err)
			}
			h := map[string]string{}
			for _, kv := range r.Headers {
				h[kv.Key] = string(kv.Value)
			}
			id := h[header.ID]
			if prev, dup := ids[id]; dup || id == "" {
				t.Errorf("%s: ce_id %q already on %s", e.OrderID, id, prev)
			}
			ids[id] = e.OrderID
			if strings.HasPrefix(e.OrderID, "direct-") {
				if h[header.Key] != e.OrderID || h[header.CausationID] != "" || h[header.HopCount] != "" || h[header.CorrelationID] != id {
					t.Errorf("direct %s: key %q causation %q hop %q correlation %q (id %q): want its own key, no causation or hop, correlation = id",
						e.OrderID, h[header.Key], h[header.CausationID], h[header.HopCount], h[header.CorrelationID], id)
				}
				return
			}
			if h[header.Key] != "" || h[header.CausationID] == "" || h[header.HopCount] != "1" {
				t.Errorf("relayed %s: key %q causation %q hop %q: want no key, a causation id, hop 1",
					e.OrderID, h[header.Key], h[header.CausationID], h[header.HopCount])
			}
		})
	}
}
