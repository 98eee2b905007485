package rpctest

import (
	"context"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// BatchSize is how many events one operation of [BenchPublishBatch]
// publishes.
const BatchSize = 100

// BenchPublishBatch compares publishing [BatchSize] events to topic (under
// no namespace) one Publish after another, each waiting for its confirm,
// with one PublishBatch of them all, waiting once. One op is one batch of
// BatchSize events; ns/event is the figure to compare.
func BenchPublishBatch(b *testing.B, br broker.Broker, topic string) {
	svc := service.New(br)
	ctx := context.Background()
	batch := make([]event.Event, BatchSize)
	for i := range batch {
		batch[i] = Item{N: i, Topic: topic}
	}
	if err := svc.PublishBatch(ctx, batch...); err != nil { // warm up: topic, channels
		b.Fatal(err)
	}
	report := func(b *testing.B, began time.Time) {
		b.ReportMetric(float64(time.Since(began).Nanoseconds())/float64(b.N*BatchSize), "ns/event")
	}
	b.Run("one-by-one", func(b *testing.B) {
		began := time.Now()
		for range b.N {
			for _, e := range batch {
				if err := svc.Publish(ctx, e); err != nil {
					b.Fatal(err)
				}
			}
		}
		report(b, began)
	})
	b.Run("batch", func(b *testing.B) {
		began := time.Now()
		for range b.N {
			if err := svc.PublishBatch(ctx, batch...); err != nil {
				b.Fatal(err)
			}
		}
		report(b, began)
	})
}
