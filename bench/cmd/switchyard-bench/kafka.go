package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-go/switchyard/adapters/kafka"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/header"
)

// createTopic creates topic with s.Partitions partitions (auto-create is off
// on the test broker). Switchyard's adapter creates its own topics.
func createTopic(ctx context.Context, s spec, topic string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.KafkaBrokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, s.Partitions, 1, nil, topic)
	if err != nil {
		return err
	}
	if resp.Err != nil && !strings.Contains(resp.Err.Error(), "TOPIC_ALREADY_EXISTS") {
		return fmt.Errorf("bench: create topic %q: %w", topic, resp.Err)
	}
	return nil
}

// ---- Switchyard on Kafka ----

type sykafka struct {
	s spec
	syService
}

func (k *sykafka) start(ctx context.Context, mode consumeMode, h func(Event)) error {
	b, err := kafka.New(ctx, kafka.Config{
		Brokers:    k.s.KafkaBrokers,
		ClientID:   k.s.Prefix + "switchyard",
		Partitions: k.s.Partitions,
	}, discard)
	if err != nil {
		return err
	}
	return k.syService.start(ctx, b, k.s, mode, h)
}

// ---- Watermill on Kafka: watermill-kafka v3 (Sarama), acks=all ----

func saramaVersion(c *sarama.Config) {
	c.Version = sarama.V3_6_0_0
}

type wmkafka struct {
	s   spec
	mw  bool
	pub *wkafka.Publisher
	sub *wkafka.Subscriber
	wmRouter
}

func (k *wmkafka) start(ctx context.Context, mode consumeMode, h func(Event)) error {
	if err := createTopic(ctx, k.s, k.s.topic()); err != nil {
		return err
	}
	marshaler := wkafka.NewWithPartitioningMarshaler(func(_ string, msg *message.Message) (string, error) {
		return msg.Metadata.Get("key"), nil
	})
	pc := wkafka.DefaultSaramaSyncPublisherConfig()
	saramaVersion(pc)
	pc.Producer.RequiredAcks = sarama.WaitForAll
	var err error
	k.pub, err = wkafka.NewPublisher(wkafka.PublisherConfig{
		Brokers:               k.s.KafkaBrokers,
		Marshaler:             marshaler,
		OverwriteSaramaConfig: pc,
	}, watermill.NopLogger{})
	if err != nil {
		return err
	}
	if mode == consumeNone {
		return nil
	}
	sc := wkafka.DefaultSaramaSubscriberConfig()
	saramaVersion(sc)
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	k.sub, err = wkafka.NewSubscriber(wkafka.SubscriberConfig{
		Brokers:               k.s.KafkaBrokers,
		Unmarshaler:           marshaler,
		ConsumerGroup:         k.s.group(),
		OverwriteSaramaConfig: sc,
	}, watermill.NopLogger{})
	if err != nil {
		return err
	}
	if k.mw {
		if err := createTopic(ctx, k.s, k.s.topic()+"-poison"); err != nil {
			return err
		}
	}
	return k.wmRouter.start(ctx, k.s.topic(), k.sub, k.pub, k.mw, h)
}

func (k *wmkafka) publish(_ context.Context, e *Event) error {
	msg, err := wmMessage(e)
	if err != nil {
		return err
	}
	return k.pub.Publish(k.s.topic(), msg)
}

func (k *wmkafka) close() {
	k.wmRouter.close()
	if k.sub != nil {
		_ = k.sub.Close()
	}
	if k.pub != nil {
		_ = k.pub.Close()
	}
}

// ---- raw franz-go: idempotent acks=all producer, consumer group ----

const rawProduceWindow = 1000

// rawkafka is franz-go by hand. With envelope (the raw-headers contender)
// each record carries what a Switchyard record does: the same key and
// value and the same eight headers (CloudEvents attributes, key,
// correlation id); without it only the key and the value, as a minimal
// client would.
type rawkafka struct {
	s        spec
	envelope bool
	prod     *kgo.Client
	cons     *kgo.Client
	stop     context.CancelFunc
	wg       sync.WaitGroup
}

func (k *rawkafka) start(ctx context.Context, mode consumeMode, h func(Event)) error {
	topic := k.s.topic()
	if err := createTopic(ctx, k.s, topic); err != nil {
		return err
	}
	var err error
	// Uncompressed, as Switchyard's adapter (and Sarama, under
	// watermill-kafka) produces by default: franz-go's own default is
	// snappy, which would compare different wire formats.
	k.prod, err = kgo.NewClient(kgo.SeedBrokers(k.s.KafkaBrokers...), kgo.ClientID(k.s.Prefix+"raw"),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		return err
	}
	if mode == consumeNone {
		return nil
	}
	assigned := make(chan struct{})
	var once sync.Once
	k.cons, err = kgo.NewClient(kgo.SeedBrokers(k.s.KafkaBrokers...), kgo.ClientID(k.s.Prefix+"raw"),
		kgo.ConsumerGroup(k.s.group()), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AutoCommitMarks(),
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) {
			once.Do(func() { close(assigned) })
		}))
	if err != nil {
		return err
	}
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	k.stop = cancel
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		for {
			fs := k.cons.PollFetches(pctx)
			if pctx.Err() != nil || fs.IsClientClosed() {
				return
			}
			// Records of one partition are handled in order; the marks are
			// committed (at least once) after they were handled.
			fs.EachRecord(func(r *kgo.Record) {
				var e Event
				if err := json.Unmarshal(r.Value, &e); err == nil {
					h(e)
				}
			})
			k.cons.MarkCommitRecords(fs.Records()...)
		}
	}()
	select {
	case <-assigned:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (k *rawkafka) record(e *Event) (*kgo.Record, error) {
	p, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	r := &kgo.Record{Topic: k.s.topic(), Key: []byte(e.Key), Value: p}
	if !k.envelope {
		return r, nil
	}
	// What a hand-written client pays for the same envelope: a UUIDv7
	// (google/uuid), the time formatted, a header slice per record.
	u, err := uuid.NewV7()
	if err != nil {
		return nil, err
	}
	id := []byte(u.String())
	r.Headers = []kgo.RecordHeader{
		{Key: header.SpecVersion, Value: []byte(header.SpecVersionValue)},
		{Key: header.ID, Value: id},
		{Key: header.Type, Value: []byte(e.EventType())},
		{Key: header.Source, Value: []byte(benchSource)},
		{Key: header.Time, Value: time.Now().UTC().AppendFormat(nil, event.TimeLayout)},
		{Key: header.ContentType, Value: []byte(header.ContentTypeJSON)},
		{Key: header.Key, Value: r.Key},
		{Key: header.CorrelationID, Value: id},
	}
	return r, nil
}

func (k *rawkafka) publish(ctx context.Context, e *Event) error {
	r, err := k.record(e)
	if err != nil {
		return err
	}
	return k.prod.ProduceSync(ctx, r).FirstErr()
}

func (k *rawkafka) publishStream(ctx context.Context, n int, next func(int) *Event) error {
	sem := make(chan struct{}, rawProduceWindow)
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for i := range n {
		r, err := k.record(next(i))
		if err != nil {
			return err
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		wg.Add(1)
		k.prod.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				once.Do(func() { first = err })
			}
			<-sem
			wg.Done()
		})
	}
	wg.Wait()
	return first
}

func (k *rawkafka) close() {
	if k.stop != nil {
		k.stop()
	}
	if k.cons != nil {
		k.cons.Close()
	}
	k.wg.Wait()
	if k.prod != nil {
		k.prod.Close()
	}
}
