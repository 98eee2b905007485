package amqp

import (
	"bytes"
	"context"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/internal/rpctest"
	"github.com/switchyard-go/switchyard/pkg/broker"
)

// BenchmarkPublishConfirmed compares confirmed publishing of persistent
// 1 KiB messages to a fanout exchange with one bound durable queue:
//
//   - raw: amqp091-go alone, one channel, asynchronous confirms with at most
//     1000 unconfirmed messages (the baseline the adapter is held to).
//   - batch1000: our Publisher, Publish calls of 1000 messages from one
//     goroutine (each call waits for its 1000 confirms).
//   - parallel: our Publisher, 16 goroutines each publishing batches of 64,
//     so about as many messages are in flight as the raw window.
//   - single: our Publisher, 64 goroutines publishing one message per call.
//
// Compare ns/op (per message) of the sub-benchmarks of one run.
func BenchmarkPublishConfirmed(b *testing.B) {
	url := benchURL(b)
	payload := bytes.Repeat([]byte("x"), 1024)

	setup := func(b *testing.B) (*Broker, string, func()) { return benchBroker(b, url, "bench") }

	b.Run("raw", func(b *testing.B) {
		br, topic, cleanup := setup(b)
		defer cleanup()
		exchange := br.cfg.exchangeName(topic)
		conn, err := amqp091.Dial(url)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			b.Fatal(err)
		}
		if err := ch.Confirm(false); err != nil {
			b.Fatal(err)
		}
		const window = 1000
		ring := make([]*amqp091.DeferredConfirmation, 0, window)
		ctx := context.Background()
		b.SetBytes(int64(len(payload)))
		b.ResetTimer()
		cpu := startCPU()
		defer cpu.report(b)
		for i := 0; i < b.N; i++ {
			if len(ring) == window {
				if ok, err := ring[0].WaitContext(ctx); !ok || err != nil {
					b.Fatalf("nack or %v", err)
				}
				ring = ring[1:]
			}
			dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, "", false, false, amqp091.Publishing{
				DeliveryMode: amqp091.Persistent, MessageId: "m", Body: payload,
			})
			if err != nil {
				b.Fatal(err)
			}
			ring = append(ring, dc)
		}
		for _, dc := range ring {
			if ok, err := dc.WaitContext(ctx); !ok || err != nil {
				b.Fatalf("nack or %v", err)
			}
		}
	})

	b.Run("batch1000", func(b *testing.B) {
		br, topic, cleanup := setup(b)
		defer cleanup()
		pub := br.Publisher()
		msgs := make([]*message.Message, 1000)
		for i := range msgs {
			msgs[i] = message.NewMessage("m", payload)
		}
		b.SetBytes(int64(len(payload)))
		b.ResetTimer()
		cpu := startCPU()
		defer cpu.report(b)
		for left := b.N; left > 0; left -= len(msgs) {
			if err := pub.Publish(topic, msgs[:min(left, len(msgs))]...); err != nil {
				b.Fatal(err)
			}
		}
	})

	parallel := func(goroutines, batch int) func(b *testing.B) {
		return func(b *testing.B) {
			br, topic, cleanup := setup(b)
			defer cleanup()
			pub := br.Publisher()
			work := make(chan int, goroutines)
			b.SetBytes(int64(len(payload)))
			b.ResetTimer()
			cpu := startCPU()
			defer cpu.report(b)
			var wg sync.WaitGroup
			for range goroutines {
				wg.Add(1)
				go func() {
					defer wg.Done()
					msgs := make([]*message.Message, batch)
					for i := range msgs {
						msgs[i] = message.NewMessage("m", payload)
					}
					for n := range work {
						if err := pub.Publish(topic, msgs[:n]...); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			for left := b.N; left > 0; left -= batch {
				work <- min(left, batch)
			}
			close(work)
			wg.Wait()
		}
	}
	b.Run("parallel16x64", parallel(16, 64))
	b.Run("single64", parallel(64, 1))
}

// cpuMeter reports this process's CPU time per operation ("cpu-ns/op"):
// on a machine shared with the broker, the client's CPU cost per message is
// the comparison that noise from other processes does not swamp.
type cpuMeter struct{ start time.Duration }

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU() cpuMeter { return cpuMeter{processCPU()} }

func (m cpuMeter) report(b *testing.B) {
	b.ReportMetric(float64(processCPU()-m.start)/float64(b.N), "cpu-ns/op")
}

// benchBroker opens a Broker on a fresh prefix with group "sink" bound to
// topic; cleanup closes it and deletes the queue and exchange.
func benchBroker(b *testing.B, url, topic string) (*Broker, string, func()) {
	prefix := "sybench-" + randomSuffix() + "."
	br, err := New(context.Background(), Config{URL: url, ExchangePrefix: prefix, QueuePrefix: prefix, ConnectionName: prefix}, nil)
	if err != nil {
		b.Fatal(err)
	}
	s, err := br.Subscriber("sink", broker.SubscriberOptions{})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.(message.SubscribeInitializer).SubscribeInitialize(topic); err != nil {
		b.Fatal(err)
	}
	return br, topic, func() {
		_ = br.Close()
		conn, err := amqp091.Dial(url)
		if err != nil {
			return
		}
		defer conn.Close()
		ch, _ := conn.Channel()
		_, _ = ch.QueueDelete(prefix+topic+".sink", false, false, false)
		_ = ch.ExchangeDelete(prefix+topic, false, false)
	}
}

func benchURL(b *testing.B) string {
	b.Helper()
	return brokertest.AMQPURL(b)
}

// BenchmarkConsume compares end-to-end consumption of persistent 1 KiB
// messages already in a durable queue, each acked on receipt, prefetch 100:
// raw amqp091-go (one consumer, d.Ack) against our Subscriber (one
// subscription, msg.Ack). Filling the queue is not timed.
func BenchmarkConsume(b *testing.B) {
	url := benchURL(b)
	payload := bytes.Repeat([]byte("x"), 1024)
	fill := func(b *testing.B, br *Broker, topic string) {
		b.Helper()
		msgs := make([]*message.Message, 1000)
		for i := range msgs {
			msgs[i] = message.NewMessage("m", payload)
		}
		for left := b.N; left > 0; left -= len(msgs) {
			if err := br.Publisher().Publish(topic, msgs[:min(left, len(msgs))]...); err != nil {
				b.Fatal(err)
			}
		}
	}
	setupWith := func(b *testing.B, opts broker.SubscriberOptions) (*Broker, *Subscriber, string, string, func()) {
		prefix := "sybench-" + randomSuffix() + "."
		br, err := New(context.Background(), Config{URL: url, ExchangePrefix: prefix, QueuePrefix: prefix, ConnectionName: prefix, Prefetch: 100}, nil)
		if err != nil {
			b.Fatal(err)
		}
		s, err := br.NewSubscriber("sink", opts)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.SubscribeInitialize("bench"); err != nil {
			b.Fatal(err)
		}
		return br, s, "bench", prefix + "bench.sink", func() {
			_ = br.Close()
			conn, err := amqp091.Dial(url)
			if err != nil {
				return
			}
			defer conn.Close()
			ch, _ := conn.Channel()
			_, _ = ch.QueueDelete(prefix+"bench.sink", false, false, false)
			_ = ch.ExchangeDelete(prefix+"bench", false, false)
		}
	}
	setup := func(b *testing.B) (*Broker, *Subscriber, string, string, func()) {
		return setupWith(b, broker.SubscriberOptions{})
	}

	b.Run("raw", func(b *testing.B) {
		br, _, topic, queue, cleanup := setup(b)
		defer cleanup()
		fill(b, br, topic)
		conn, err := amqp091.Dial(url)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			b.Fatal(err)
		}
		if err := ch.Qos(100, 0, false); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(payload)))
		b.ResetTimer()
		cpu := startCPU()
		deliveries, err := ch.Consume(queue, "raw", false, false, false, false, nil)
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < b.N; i++ {
			d := <-deliveries
			if err := d.Ack(false); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		cpu.report(b)
	})

	b.Run("switchyard", func(b *testing.B) {
		br, s, topic, _, cleanup := setup(b)
		defer cleanup()
		fill(b, br, topic)
		b.SetBytes(int64(len(payload)))
		b.ResetTimer()
		cpu := startCPU()
		msgs, err := s.Subscribe(context.Background(), topic)
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < b.N; i++ {
			(<-msgs).Ack()
		}
		b.StopTimer()
		cpu.report(b)
	})

	// Ordered subscriptions (single active consumer) hold ordered_prefetch
	// messages (default 1) so that a handed-back message is redelivered
	// before later ones; this is what that costs against a window of 100.
	for _, prefetch := range []int{0, 100} {
		name := "switchyard-ordered-prefetch-default"
		if prefetch > 0 {
			name = "switchyard-ordered-prefetch-100"
		}
		b.Run(name, func(b *testing.B) {
			br, s, topic, _, cleanup := setupWith(b, broker.SubscriberOptions{Ordered: true, Prefetch: prefetch})
			defer cleanup()
			fill(b, br, topic)
			b.SetBytes(int64(len(payload)))
			b.ResetTimer()
			msgs, err := s.Subscribe(context.Background(), topic)
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; i < b.N; i++ {
				(<-msgs).Ack()
			}
			b.StopTimer()
		})
	}
}

// BenchmarkPublishBatch compares Publish one event at a time (a confirm
// wait each) with PublishBatch (one wait for all the confirms) of
// rpctest.BatchSize persistent events to a fanout exchange with one bound
// durable queue.
func BenchmarkPublishBatch(b *testing.B) {
	br, topic, cleanup := benchBroker(b, benchURL(b), "bench.batch")
	defer cleanup()
	rpctest.BenchPublishBatch(b, br, topic)
}
