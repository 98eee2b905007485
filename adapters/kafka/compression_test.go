package kafka_test

import (
	"context"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-go/switchyard/adapters/kafka"
	"github.com/switchyard-go/switchyard/internal/brokertest"
)

// TestCompressionOfProducedBatches reads back, with a raw client, the batch
// codec of what the adapter produced: the default must be none (kafkajs
// cannot read franz-go's own default, snappy), and each setting must be the
// codec on the wire.
func TestCompressionOfProducedBatches(t *testing.T) {
	// A compressible payload: franz-go may send a batch uncompressed when
	// compressing does not make it smaller.
	payload := `{"items":[` + strings.Repeat(`{"sku":"abc-123","qty":1},`, 80) + `{}]}`
	wantCodec := map[string]int8{ // Kafka's codec numbers, as in the record batch attributes
		"":                      0,
		kafka.CompressionNone:   0,
		kafka.CompressionGzip:   1,
		kafka.CompressionSnappy: 2,
		kafka.CompressionLZ4:    3,
		kafka.CompressionZstd:   4,
	}
	for setting, want := range wantCodec {
		name := setting
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) {
			b := newBroker(t, func(c *kafka.Config) { c.Compression = setting })
			topic := uniqueName(t, "t")
			cleanupTopic(t, topic)
			if err := b.Publisher().Publish(topic, newMsg("k1", payload), newMsg("k2", payload)); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			cl, err := kgo.NewClient(
				kgo.SeedBrokers(strings.Split(brokertest.KafkaBrokers(t), ",")...),
				kgo.ConsumeTopics(topic),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), waitMsg)
			defer cancel()
			got := 0
			for got < 2 {
				fs := cl.PollFetches(ctx)
				if err := ctx.Err(); err != nil {
					t.Fatalf("read %d of 2 records: %v", got, err)
				}
				fs.EachRecord(func(r *kgo.Record) {
					got++
					if c := int8(r.Attrs.CompressionType()); c != want {
						t.Errorf("record %d/%d: batch codec %d, want %d (%q)", r.Partition, r.Offset, c, want, setting)
					}
				})
			}
		})
	}
}
