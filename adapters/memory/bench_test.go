package memory_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/internal/rpctest"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/header"
)

// BenchmarkPublishConsume publishes b.N messages with a 1 KiB payload from one
// goroutine while one consumer receives and acks them; an op is one message
// published, consumed and acked. The gochannel case runs Watermill's GoChannel
// (default config) the same way, for a ratio.
func BenchmarkPublishConsume(b *testing.B) {
	payload := make([]byte, 1024)
	b.Run("memory", func(b *testing.B) {
		br, err := memory.New(memory.Config{}, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer br.Close()
		sub, err := br.Subscriber("bench", broker.SubscriberOptions{})
		if err != nil {
			b.Fatal(err)
		}
		benchPublishConsume(b, br.Publisher(), sub, payload, false, false)
	})
	b.Run("memory-keyed", func(b *testing.B) {
		br, err := memory.New(memory.Config{}, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer br.Close()
		sub, err := br.Subscriber("bench", broker.SubscriberOptions{})
		if err != nil {
			b.Fatal(err)
		}
		benchPublishConsume(b, br.Publisher(), sub, payload, true, false)
	})
	// With the eight CloudEvents headers a Switchyard event carries.
	b.Run("memory-headers", func(b *testing.B) {
		br, err := memory.New(memory.Config{}, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer br.Close()
		sub, err := br.Subscriber("bench", broker.SubscriberOptions{})
		if err != nil {
			b.Fatal(err)
		}
		benchPublishConsume(b, br.Publisher(), sub, payload, false, true)
	})
	// Those and a key: more than 8 headers, where a Go map outgrows its
	// first group (a Switchyard event carries 10).
	b.Run("memory-keyed-headers", func(b *testing.B) {
		br, err := memory.New(memory.Config{}, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer br.Close()
		sub, err := br.Subscriber("bench", broker.SubscriberOptions{})
		if err != nil {
			b.Fatal(err)
		}
		benchPublishConsume(b, br.Publisher(), sub, payload, true, true)
	})
	b.Run("gochannel-headers", func(b *testing.B) {
		gc := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
		benchPublishConsume(b, gc, gc, payload, false, true)
	})
	b.Run("gochannel", func(b *testing.B) {
		gc := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
		benchPublishConsume(b, gc, gc, payload, false, false)
	})
}

var hdrs = map[string]string{
	header.ID: "0c6e5a1e-7c1f-4a55-9d0e-3f7f1b8d2a10", header.SpecVersion: header.SpecVersionValue,
	header.Type: "orders.order_placed", header.Source: "/orders", header.Time: "2026-01-02T03:04:05.123456789Z",
	header.ContentType: header.ContentTypeJSON, header.Version: "1", header.CorrelationID: "c0ffee",
}

func benchPublishConsume(b *testing.B, pub message.Publisher, sub message.Subscriber, payload []byte, keyed, withHeaders bool) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, err := sub.Subscribe(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	n := b.N
	wg.Go(func() {
		for i := 0; i < n; i++ {
			m := <-msgs
			m.Ack()
		}
	})
	ids := make([]string, 64)
	for i := range ids {
		ids[i] = watermill.NewUUID()
	}
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < n; i++ {
		m := message.NewMessage(ids[i%len(ids)], payload)
		if keyed {
			m.Metadata.Set(header.Key, strconv.Itoa(i%64))
		}
		if withHeaders {
			for k, v := range hdrs {
				m.Metadata[k] = v
			}
		}
		if err := pub.Publish("bench", m); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	b.StopTimer()
	cancel()
	_ = sub.Close()
	_ = pub.Close()
}

// BenchmarkRouter is the end-to-end path a service runs: Publish, the
// subscriber, Watermill's Router and a handler that succeeds (so the Router
// acks). An op is one message handled.
func BenchmarkRouter(b *testing.B) {
	payload := make([]byte, 1024)
	b.Run("memory", func(b *testing.B) {
		br, err := memory.New(memory.Config{}, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer br.Close()
		sub, err := br.Subscriber("bench", broker.SubscriberOptions{})
		if err != nil {
			b.Fatal(err)
		}
		benchRouter(b, br.Publisher(), sub, payload)
	})
	b.Run("gochannel", func(b *testing.B) {
		gc := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
		benchRouter(b, gc, gc, payload)
	})
}

func benchRouter(b *testing.B, pub message.Publisher, sub message.Subscriber, payload []byte) {
	router, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	if err != nil {
		b.Fatal(err)
	}
	n := b.N
	var handled atomic.Int64
	done := make(chan struct{})
	router.AddConsumerHandler("bench", "bench", sub, func(msg *message.Message) error {
		if handled.Add(1) == int64(n) {
			close(done)
		}
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { _ = router.Run(ctx) })
	<-router.Running()

	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < n; i++ {
		m := message.NewMessage(watermill.NewUUID(), payload)
		for k, v := range hdrs {
			m.Metadata[k] = v
		}
		if err := pub.Publish("bench", m); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	b.StopTimer()
	_ = router.Close()
	wg.Wait()
	_ = sub.Close()
	_ = pub.Close()
}

// BenchmarkPublishBatch compares Publish one event at a time with
// PublishBatch (see rpctest.BenchPublishBatch).
func BenchmarkPublishBatch(b *testing.B) {
	br, err := memory.New(memory.Config{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	rpctest.BenchPublishBatch(b, br, "bench.batch")
}
