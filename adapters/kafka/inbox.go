package kafka

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-go/switchyard/pkg/broker"
)

// InboxTopic is the topic every inbox of the cluster reads (see
// [Broker.OpenInbox]). It is created like any other topic
// ([Config.Provision]).
const InboxTopic = "switchyard.inbox"

// inboxHeader is the record header naming the inbox a record is for. It
// must not start with metadataPrefix, which Publish strips.
const inboxHeader = "sy_inbox"

var _ broker.Inboxer = (*Broker)(nil)

// inboxes are the broker's open inboxes, closed with it.
type inboxes struct {
	mu     sync.Mutex
	open   map[*inbox]struct{}
	closed bool
}

func (s *inboxes) add(in *inbox) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.open == nil {
		s.open = map[*inbox]struct{}{}
	}
	s.open[in] = struct{}{}
	return true
}

func (s *inboxes) remove(in *inbox) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.open, in)
}

func (s *inboxes) closeAll() {
	s.mu.Lock()
	s.closed = true
	open := s.open
	s.open = nil
	s.mu.Unlock()
	for in := range open {
		_ = in.Close()
	}
}

// OpenInbox implements [broker.Inboxer] with one shared topic,
// [InboxTopic], instead of a topic per inbox: creating a topic takes
// seconds and a topic of a dead instance would never be deleted. The inbox
// reads every partition of it with its own client, without a consumer
// group (nothing to join, rebalance or leave behind), from the end
// offsets listed before OpenInbox returns, so nothing sent afterwards is
// missed; it keeps the records whose inbox header is its own id and skips
// the others. Every inbox so reads every reply of the cluster: that is
// cheap for replies, which are small and few compared with events, and
// is the price of needing no topic or group per instance.
func (b *Broker) OpenInbox(ctx context.Context) (broker.Inbox, error) {
	if err := b.ensureTopics(ctx, InboxTopic); err != nil {
		return nil, fmt.Errorf("kafka: open inbox: %w", err)
	}
	ends, err := b.adm.ListEndOffsets(ctx, InboxTopic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("kafka: open inbox: end offsets of %q: %w", InboxTopic, err)
	}
	from := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) { from[o.Partition] = kgo.NewOffset().At(o.Offset) })
	if len(from) == 0 {
		return nil, fmt.Errorf("kafka: open inbox: topic %q has no partitions", InboxTopic)
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt(nil), b.opts...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{InboxTopic: from}))...)
	if err != nil {
		return nil, fmt.Errorf("kafka: open inbox: client: %w", err)
	}
	id := uuid.NewString()
	runCtx, stop := context.WithCancel(context.Background())
	in := &inbox{
		b:       b,
		id:      id,
		address: InboxTopic + "/" + id,
		cl:      cl,
		stop:    stop,
		out:     make(chan *message.Message, 256),
		ended:   make(chan struct{}),
	}
	if !b.inboxes.add(in) {
		stop()
		cl.Close()
		return nil, fmt.Errorf("kafka: open inbox: %w", broker.ErrClosed)
	}
	go in.run(runCtx)
	return in, nil
}

// SendToInbox implements [broker.Inboxer]: it produces msg to
// [InboxTopic] with the inbox's id as a header and waits for the broker's
// acknowledgement. Kafka cannot tell whether anyone still reads that id,
// so an inbox that is gone never gives [broker.ErrNoInbox] here: the
// record is stored and skipped by every reader.
func (b *Broker) SendToInbox(ctx context.Context, address string, msg *message.Message) error {
	id, ok := strings.CutPrefix(address, InboxTopic+"/")
	if !ok || id == "" {
		return fmt.Errorf("kafka: send to inbox %q: not an inbox address (want %q followed by an id)", address, InboxTopic+"/")
	}
	p := b.pub
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return fmt.Errorf("kafka: send to inbox %q: %w", address, broker.ErrClosed)
	}
	if err := p.ensureTopic(ctx, InboxTopic); err != nil {
		return fmt.Errorf("kafka: send to inbox %q: %w", address, err)
	}
	return p.produce(ctx, InboxTopic, []*message.Message{msg}, []kgo.RecordHeader{{Key: inboxHeader, Value: []byte(id)}})
}

type inbox struct {
	b       *Broker
	id      string
	address string
	cl      *kgo.Client
	stop    context.CancelFunc
	out     chan *message.Message
	ended   chan struct{} // closed when run returned

	once sync.Once
}

func (in *inbox) Address() string                   { return in.address }
func (in *inbox) Messages() <-chan *message.Message { return in.out }

// Close stops reading and closes the inbox's client. It is idempotent.
func (in *inbox) Close() error {
	in.once.Do(func() {
		in.stop()
		<-in.ended
		in.cl.Close()
		in.b.inboxes.remove(in)
	})
	return nil
}

// run hands out the records addressed to this inbox until Close.
func (in *inbox) run(ctx context.Context) {
	defer close(in.ended)
	defer close(in.out)
	for {
		fetches := in.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			if !errors.Is(err, context.Canceled) {
				in.b.logger.Warn("kafka: inbox fetch failed", "topic", topic, "partition", partition, "error", err)
			}
		})
		stopped := false
		fetches.EachRecord(func(r *kgo.Record) {
			if stopped || !addressedTo(r, in.id) {
				return
			}
			select {
			case in.out <- recordMessage(r):
			case <-ctx.Done():
				stopped = true
			}
		})
		if stopped {
			return
		}
	}
}

// addressedTo reports whether r's inbox header is id.
func addressedTo(r *kgo.Record, id string) bool {
	for _, h := range r.Headers {
		if h.Key == inboxHeader {
			return string(h.Value) == id
		}
	}
	return false
}
