package kafka

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kerr"
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
	// Only topic creation needs a deadline here: every record is bounded
	// by the client's delivery timeout (PublishTimeout). A context with a
	// timer per call cost 1000 concurrent publishers timer-lock contention.
	if err := p.ensureTopic(context.Background(), topic); err != nil {
		return fmt.Errorf("kafka: publish to %q: %w", topic, err)
	}
	if sess := txnIn(msgs[0].Context()); sess != nil { // published by an exactly-once handler
		return p.publishTxn(sess, topic, msgs)
	}
	return p.produce(context.Background(), topic, msgs, nil)
}

var (
	_ message.Publisher       = (*Publisher)(nil)
	_ broker.AsyncPublisher   = (*Publisher)(nil)
	_ broker.CopyingPublisher = (*Publisher)(nil)
)

// PublishCopies implements [broker.CopyingPublisher]: Publish (and the
// transactional publish) returns only after every record's promise ran,
// so franz-go holds nothing of the message then; the record's value is
// the payload, which the runtime replaces and never overwrites.
func (p *Publisher) PublishCopies() bool { return true }

// PublishAsync implements [broker.AsyncPublisher] with franz-go's
// asynchronous Produce: each message becomes a record as in Publish and
// its promise reports the outcome to done, from franz-go's goroutines. It
// returns once every record is buffered in the client. The window is the
// client's buffer ([kgo.MaxBufferedRecords], franz-go's default 50000
// records): Produce blocks while it is full, until ctx is done. ctx is
// each record's context in franz-go. Every record is answered: by the
// broker, or with an error once ctx is done or [Config.PublishTimeout]
// (the records' delivery timeout) has passed, also when its produce
// request was written and never answered (a broker that died): such a
// record may have been stored.
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
	produce := p.cl.Produce
	if sess := txnIn(ctx); sess != nil { // published by an exactly-once handler
		produce = sess.Produce
	}
	for i, m := range msgs {
		if err := ctx.Err(); err != nil {
			fail(msgs[i:], err)
			return
		}
		produce(ctx, toRecord(topic, m, nil), func(_ *kgo.Record, err error) {
			if err != nil {
				if errors.Is(err, kerr.UnknownTopicID) {
					// Not from franz-go's goroutine: purging waits for it.
					go p.purgeRecreated(topic)
				}
				err = fmt.Errorf("kafka: publish to %q: %w", topic, err)
			}
			done(m, err)
		})
	}
}

// purgeRecreated handles a topic that was deleted and created again
// (UNKNOWN_TOPIC_ID: nothing was written): purged from the client and
// forgotten by the provisioning cache, the next publish (the caller's
// retry) produces to the new topic instead of failing for ever.
func (p *Publisher) purgeRecreated(topic string) {
	p.cl.PurgeTopicsFromProducing(topic)
	p.b.recreated(topic)
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
	w, _ := produceWaits.Get().(*produceWait)
	if w == nil {
		w = &produceWait{}
		w.promise = w.record // one method value per pooled wait, not per call
	}
	w.wg.Add(len(msgs))
	for _, m := range msgs {
		p.cl.Produce(ctx, toRecord(topic, m, extra), w.promise)
	}
	w.wg.Wait()
	failed, first := w.failed, w.first
	w.failed, w.first = 0, nil
	produceWaits.Put(w) // every promise has run: nothing refers to w
	if errors.Is(first, kerr.UnknownTopicID) {
		p.purgeRecreated(topic)
	}
	if first != nil {
		return fmt.Errorf("kafka: publish to %q: %d of %d messages failed: %w", topic, failed, len(msgs), first)
	}
	return nil
}

// produceWait gathers the promises of one produce call. Pooled: a publish
// of one message then allocates no wait group, mutex or closure.
type produceWait struct {
	wg      sync.WaitGroup
	mu      sync.Mutex
	failed  int
	first   error
	promise func(*kgo.Record, error)
}

var produceWaits sync.Pool

func (w *produceWait) record(_ *kgo.Record, err error) {
	if err != nil {
		w.mu.Lock()
		w.failed++
		if w.first == nil {
			w.first = err
		}
		w.mu.Unlock()
	}
	w.wg.Done()
}

// toRecord converts m. The header values and the key are copied into one
// buffer: one allocation instead of one per header.
func toRecord(topic string, m *message.Message, extra []kgo.RecordHeader) *kgo.Record {
	r := &kgo.Record{Topic: topic, Value: m.Payload}
	k := m.Metadata.Get(header.Key)
	size := len(k)
	hasID := false
	for name, v := range m.Metadata {
		if strings.HasPrefix(name, metadataPrefix) || (name == header.ID && v == "") {
			continue
		}
		hasID = hasID || name == header.ID
		size += len(v)
	}
	if !hasID {
		size += len(m.UUID)
	}
	buf := make([]byte, 0, size)
	bytesOf := func(v string) []byte {
		start := len(buf)
		buf = append(buf, v...)
		return buf[start:len(buf):len(buf)]
	}
	if k != "" {
		r.Key = bytesOf(k)
	}
	r.Headers = make([]kgo.RecordHeader, 0, len(m.Metadata)+1+len(extra))
	for name, v := range m.Metadata {
		if strings.HasPrefix(name, metadataPrefix) || (name == header.ID && v == "") {
			continue
		}
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: name, Value: bytesOf(v)})
	}
	if !hasID && m.UUID != "" {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: header.ID, Value: bytesOf(m.UUID)})
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
