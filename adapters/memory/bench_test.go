package memory_test

import (
	"context"
	"strconv"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/switchyard-go/switchyard/adapters/memory"
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
		benchPublishConsume(b, br.Publisher(), sub, payload, false)
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
		benchPublishConsume(b, br.Publisher(), sub, payload, true)
	})
	b.Run("gochannel", func(b *testing.B) {
		gc := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
		benchPublishConsume(b, gc, gc, payload, false)
	})
}

func benchPublishConsume(b *testing.B, pub message.Publisher, sub message.Subscriber, payload []byte, keyed bool) {
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
