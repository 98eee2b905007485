package kafka_test

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-go/switchyard/adapters/kafka"
	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/internal/rpctest"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/header"
)

// BenchmarkPublish compares the adapter's Publisher with a raw franz-go
// client configured the same way (acks=all, idempotent, linger 0), with the
// same concurrency and batch sizes and the same 1 KiB records carrying the
// same key and headers. Compare msgs/s of "switchyard" and "raw" runs of one
// shape; both run in one invocation against the same broker.
//
//	go test -run '^$' -bench BenchmarkPublish -benchtime 20000x ./adapters/kafka/
func BenchmarkPublish(b *testing.B) {
	brokers := strings.Split(brokertest.KafkaBrokers(b), ",")
	topic := uniqueName(b, "bench")
	cleanupTopic(b, topic)

	br := newBroker(b, func(c *kafka.Config) { c.Linger = -1 }) // off, as the raw client below
	pub := br.Publisher()
	if err := pub.Publish(topic, newMsg("warm", "up")); err != nil {
		b.Fatal(err)
	}
	raw, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.RequiredAcks(kgo.AllISRAcks()), // idempotent by default
		kgo.ProducerLinger(0),
	)
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	if err := raw.ProduceSync(context.Background(), &kgo.Record{Topic: topic}).FirstErr(); err != nil {
		b.Fatal(err)
	}

	payload := bytes.Repeat([]byte("x"), 1024)
	var seq atomic.Int64
	rawRecord := func() *kgo.Record {
		n := seq.Add(1)
		id := "bench-" + strconv.FormatInt(n, 10)
		key := []byte(strconv.FormatInt(n%64, 10))
		return &kgo.Record{Topic: topic, Key: key, Value: payload, Headers: []kgo.RecordHeader{
			{Key: header.ID, Value: []byte(id)},
			{Key: header.Key, Value: key},
		}}
	}
	ourMessage := func() *message.Message {
		n := seq.Add(1)
		m := message.NewMessage("bench-"+strconv.FormatInt(n, 10), payload)
		m.Metadata.Set(header.Key, strconv.FormatInt(n%64, 10))
		return m
	}

	for _, shape := range []struct{ workers, batch int }{{1, 1}, {64, 1}, {8, 100}} {
		publish := map[string]func() error{
			"switchyard": func() error {
				msgs := make([]*message.Message, shape.batch)
				for i := range msgs {
					msgs[i] = ourMessage()
				}
				return pub.Publish(topic, msgs...)
			},
			"raw": func() error {
				recs := make([]*kgo.Record, shape.batch)
				for i := range recs {
					recs[i] = rawRecord()
				}
				return raw.ProduceSync(context.Background(), recs...).FirstErr()
			},
		}
		for _, impl := range []string{"raw", "switchyard"} {
			name := fmt.Sprintf("%s/workers=%d/batch=%d", impl, shape.workers, shape.batch)
			b.Run(name, func(b *testing.B) {
				b.SetBytes(int64(len(payload)))
				calls := (b.N + shape.batch - 1) / shape.batch
				var next atomic.Int64
				var wg sync.WaitGroup
				var (
					errMu    sync.Mutex
					firstErr error
				)
				b.ResetTimer()
				for range shape.workers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for next.Add(1) <= int64(calls) {
							if err := publish[impl](); err != nil {
								errMu.Lock()
								if firstErr == nil {
									firstErr = err
								}
								errMu.Unlock()
								return
							}
						}
					}()
				}
				wg.Wait()
				b.StopTimer()
				if firstErr != nil {
					b.Fatal(firstErr)
				}
				b.ReportMetric(float64(calls*shape.batch)/b.Elapsed().Seconds(), "msgs/s")
			})
		}
	}
}

// BenchmarkConsume compares end to end consumption of b.N pre-published
// 1 KiB records: the adapter's subscriber (prefetch 256, every message
// acked at once, periodic commits) against a raw franz-go group consumer
// (PollFetches, autocommit). Each run uses a new group starting at the
// earliest offset; the time includes joining the group.
//
//	go test -run '^$' -bench BenchmarkConsume -benchtime 20000x ./adapters/kafka/
func BenchmarkConsume(b *testing.B) {
	brokers := strings.Split(brokertest.KafkaBrokers(b), ",")
	br := newBroker(b, nil)
	payload := bytes.Repeat([]byte("x"), 1024)

	publishN := func(b *testing.B, topic string) {
		const batch = 500
		for sent := 0; sent < b.N; sent += batch {
			msgs := make([]*message.Message, min(batch, b.N-sent))
			for i := range msgs {
				msgs[i] = message.NewMessage("c-"+strconv.Itoa(sent+i), payload)
				msgs[i].Metadata.Set(header.Key, strconv.Itoa((sent+i)%64))
			}
			if err := br.Publisher().Publish(topic, msgs...); err != nil {
				b.Fatal(err)
			}
		}
	}

	b.Run("raw", func(b *testing.B) {
		topic, group := uniqueName(b, "cons"), uniqueName(b, "g")
		cleanupTopic(b, topic, group)
		publishN(b, topic)
		b.SetBytes(int64(len(payload)))
		b.ResetTimer()
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			b.Fatal(err)
		}
		for got := 0; got < b.N; {
			fs := cl.PollFetches(context.Background())
			got += fs.NumRecords()
		}
		b.StopTimer()
		cl.Close()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
	b.Run("switchyard", func(b *testing.B) {
		topic, group := uniqueName(b, "cons"), uniqueName(b, "g")
		cleanupTopic(b, topic, group)
		publishN(b, topic)
		b.SetBytes(int64(len(payload)))
		b.ResetTimer()
		sub, err := br.Subscriber(group, broker.SubscriberOptions{})
		if err != nil {
			b.Fatal(err)
		}
		ch, err := sub.Subscribe(context.Background(), topic)
		if err != nil {
			b.Fatal(err)
		}
		for range b.N {
			(<-ch).Ack()
		}
		b.StopTimer()
		_ = sub.Close()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
}

// BenchmarkPublishBatch compares Publish one event at a time (an
// acks=all round trip each) with PublishBatch (produce all, wait once) of
// rpctest.BatchSize events, with the adapter's default linger.
func BenchmarkPublishBatch(b *testing.B) {
	topic := uniqueName(b, "bench")
	cleanupTopic(b, topic)
	rpctest.BenchPublishBatch(b, newBroker(b, nil), topic)
}
