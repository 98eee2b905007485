package kafka

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/header"
)

// Metadata keys the subscriber adds to every message it hands out. They are
// not written back as record headers when such a message is published again.
const (
	// MetadataPartition is the partition the record was read from, decimal.
	MetadataPartition = header.KafkaPartition
	// MetadataOffset is the record's offset in its partition, decimal.
	MetadataOffset = header.KafkaOffset
	// metadataPrefix marks adapter-local metadata.
	metadataPrefix = "sy_kafka_"
)

// Publisher produces watermill messages to Kafka with one shared franz-go
// client. It is safe for concurrent use; concurrent Publish calls share
// produce requests.
type Publisher struct {
	b  *Broker
	cl *kgo.Client

	mu     sync.RWMutex
	closed bool
}

// Publish produces every message to topic, creating the topic first if the
// adapter has not seen it yet, and returns once all are acknowledged by the
// broker (by every in-sync replica with acks "all"). The record key is the
// message's [header.Key] metadata, so messages with the same key go to the
// same partition and keep their order. All metadata becomes record headers;
// [header.ID] is set from the message UUID when missing.
//
// Records are produced asynchronously and awaited together, so a batch of
// messages costs about one round trip. On error, some messages may have been
// stored: the error names the topic and how many failed.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return fmt.Errorf("kafka: publish to %q: %w", topic, broker.ErrClosed)
	}
	if len(msgs) == 0 {
		return nil
	}
	// Bound the whole publish, topic creation included: with the broker
	// down, the admin request alone could otherwise wait far longer.
	ctx, cancel := context.WithTimeout(context.Background(), p.b.cfg.PublishTimeout)
	defer cancel()
	if err := p.b.ensureTopics(ctx, topic); err != nil {
		return fmt.Errorf("kafka: publish to %q: %w", topic, err)
	}
	return p.produce(ctx, topic, msgs, nil)
}

var (
	_ message.Publisher     = (*Publisher)(nil)
	_ broker.AsyncPublisher = (*Publisher)(nil)
)

// PublishAsync implements [broker.AsyncPublisher] with franz-go's
// asynchronous Produce: each message becomes a record as in Publish and
// its promise reports the outcome to done, from franz-go's goroutines. It
// returns once every record is buffered in the client. The window is the
// client's buffer ([kgo.MaxBufferedRecords], franz-go's default 10000
// records): Produce blocks while it is full, until ctx is done. ctx is
// each record's context in franz-go: a record ctx's end catches before it
// is written to a produce request fails with ctx's error; a record in a
// request is answered by the broker or fails when
// [Config.PublishTimeout] (the records' delivery timeout) has passed and
// failing it is safe for the idempotent producer's sequence numbers.
func (p *Publisher) PublishAsync(ctx context.Context, topic string, done func(*message.Message, error), msgs ...*message.Message) {
	fail := func(rest []*message.Message, err error) {
		for _, m := range rest {
			done(m, fmt.Errorf("kafka: publish to %q: %w", topic, err))
		}
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		fail(msgs, broker.ErrClosed)
		return
	}
	if len(msgs) == 0 {
		return
	}
	if err := p.ensureTopic(ctx, topic); err != nil {
		fail(msgs, err)
		return
	}
	for i, m := range msgs {
		if err := ctx.Err(); err != nil {
			fail(msgs[i:], err)
			return
		}
		p.cl.Produce(ctx, toRecord(topic, m, nil), func(_ *kgo.Record, err error) {
			if err != nil {
				err = fmt.Errorf("kafka: publish to %q: %w", topic, err)
			}
			done(m, err)
		})
	}
}

// ensureTopic creates topic if the adapter has not seen it yet, bounded by
// PublishTimeout as well as ctx.
func (p *Publisher) ensureTopic(ctx context.Context, topic string) error {
	if p.b.topicKnown(topic) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.b.cfg.PublishTimeout)
	defer cancel()
	return p.b.ensureTopics(ctx, topic)
}

// produce sends one record per message to topic with extra headers appended,
// and waits for every acknowledgement.
func (p *Publisher) produce(ctx context.Context, topic string, msgs []*message.Message, extra []kgo.RecordHeader) error {
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed int
		first  error
	)
	wg.Add(len(msgs))
	done := func(_ *kgo.Record, err error) {
		if err != nil {
			mu.Lock()
			failed++
			if first == nil {
				first = err
			}
			mu.Unlock()
		}
		wg.Done()
	}
	for _, m := range msgs {
		p.cl.Produce(ctx, toRecord(topic, m, extra), done)
	}
	wg.Wait()
	if first != nil {
		return fmt.Errorf("kafka: publish to %q: %d of %d messages failed: %w", topic, failed, len(msgs), first)
	}
	return nil
}

func toRecord(topic string, m *message.Message, extra []kgo.RecordHeader) *kgo.Record {
	r := &kgo.Record{Topic: topic, Value: m.Payload}
	if k := m.Metadata.Get(header.Key); k != "" {
		r.Key = []byte(k)
	}
	r.Headers = make([]kgo.RecordHeader, 0, len(m.Metadata)+1+len(extra))
	hasID := false
	for k, v := range m.Metadata {
		if strings.HasPrefix(k, metadataPrefix) {
			continue
		}
		if k == header.ID {
			if v == "" {
				continue
			}
			hasID = true
		}
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
	}
	if !hasID && m.UUID != "" {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: header.ID, Value: []byte(m.UUID)})
	}
	for _, h := range extra {
		r.Headers = replaceHeader(r.Headers, h)
	}
	return r
}

func replaceHeader(hs []kgo.RecordHeader, h kgo.RecordHeader) []kgo.RecordHeader {
	for i := range hs {
		if hs[i].Key == h.Key {
			hs[i] = h
			return hs
		}
	}
	return append(hs, h)
}

// Close flushes buffered records and closes the producing client. Publish
// fails with [broker.ErrClosed] afterwards. It is idempotent; [Broker.Close]
// calls it.
func (p *Publisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), p.b.cfg.PublishTimeout)
	defer cancel()
	err := p.cl.Flush(ctx)
	p.cl.Close()
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("kafka: close publisher: %w", err)
	}
	return nil
}
