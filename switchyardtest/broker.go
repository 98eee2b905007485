package switchyardtest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/header"
)

// testBroker is the in-memory broker the harness runs a service on. It
// records what the service publishes, and holds delayed redeliveries on the
// harness clock: adapters/memory has no clock of its own (its delays and
// nack backoffs run on time.AfterFunc), so Delay waits on the fake clock
// here and then hands the message to the memory broker with no delay.
// Provision, Browse, Idle and the rest are the memory broker's own.
type testBroker struct {
	*memory.Broker
	clock *Clock
	log   *publishLog
}

var (
	_ broker.Broker      = (*testBroker)(nil)
	_ broker.Delayer     = (*testBroker)(nil)
	_ broker.Provisioner = (*testBroker)(nil)
	_ broker.Browser     = (*testBroker)(nil)
)

// Publisher returns a publisher that records every message it publishes.
func (b *testBroker) Publisher() message.Publisher {
	return &recordingPublisher{next: b.Broker.Publisher(), log: b.log, kind: kindPublished}
}

// Delay holds msg on the clock for delay, then queues it for group.
func (b *testBroker) Delay(ctx context.Context, topic, group string, msg *message.Message, delay time.Duration) error {
	if delay <= 0 {
		b.log.add(kindDelayed, topic, msg, delay)
		return b.Broker.Delay(ctx, topic, group, msg, 0)
	}
	if group == "" {
		return fmt.Errorf("memory: delay to %q: %w", topic, memory.ErrInvalidGroup)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory: delay to %q: %w", topic, err)
	}
	m := msg.Copy()
	b.log.add(kindDelayed, topic, m, delay)
	b.clock.AfterFunc(delay, func() {
		// The broker may be closed by then: the message goes with it,
		// as the memory broker's own delayed messages do.
		_ = b.Broker.Delay(context.Background(), topic, group, m, 0)
	})
	return nil
}

// recordingPublisher records messages before publishing them (so that a
// handler's follow-up never appears before its cause) and marks those the
// broker refused.
type recordingPublisher struct {
	next message.Publisher
	log  *publishLog
	kind recordKind
}

func (p *recordingPublisher) Publish(topic string, msgs ...*message.Message) error {
	recs := make([]*record, len(msgs))
	for i, m := range msgs {
		recs[i] = p.log.add(p.kind, topic, m, 0)
	}
	err := p.next.Publish(topic, msgs...)
	if err != nil {
		p.log.failed(recs, err)
	}
	return err
}

func (p *recordingPublisher) Close() error { return p.next.Close() }

type recordKind uint8

const (
	kindPublished recordKind = iota + 1 // by the service under test
	kindSent                            // by the test, as another service
	kindDelayed                         // a delayed retry handed to the broker
)

// record is one message that went to the broker.
type record struct {
	seq      int
	kind     recordKind
	topic    string
	uuid     string
	metadata map[string]string
	payload  []byte
	env      event.Envelope
	envErr   error
	delay    time.Duration
	err      error // the broker refused it
}

func (r *record) deadLetter() bool { return r.metadata[header.DeadLetterReason] != "" }

func (r *record) String() string {
	var b strings.Builder
	switch {
	case r.kind == kindSent:
		b.WriteString("sent      ")
	case r.kind == kindDelayed:
		fmt.Fprintf(&b, "delayed %s ", r.delay)
	case r.deadLetter():
		b.WriteString("dead letter")
	default:
		b.WriteString("published ")
	}
	typ := r.env.Type
	if typ == "" {
		typ = "(no type)"
	}
	fmt.Fprintf(&b, " %s to %q id=%s", typ, r.topic, r.uuid)
	if r.env.Key != "" {
		fmt.Fprintf(&b, " key=%s", r.env.Key)
	}
	if r.deadLetter() {
		fmt.Fprintf(&b, " reason=%s handler=%s attempts=%s", r.metadata[header.DeadLetterReason],
			r.metadata[header.DeadLetterHandler], r.metadata[header.DeadLetterAttempts])
	}
	if r.err != nil {
		fmt.Fprintf(&b, " REFUSED: %v", r.err)
	}
	return b.String()
}

// publishLog is every message that went to the broker, in order.
type publishLog struct {
	mu      sync.Mutex
	recs    []*record
	changed chan struct{}
}

func newPublishLog() *publishLog { return &publishLog{changed: make(chan struct{})} }

func (l *publishLog) add(kind recordKind, topic string, m *message.Message, delay time.Duration) *record {
	r := &record{
		kind: kind, topic: topic, uuid: m.UUID, delay: delay,
		metadata: maps.Clone(map[string]string(m.Metadata)),
		payload:  slices.Clone(m.Payload),
	}
	if r.metadata == nil {
		r.metadata = map[string]string{}
	}
	r.env, r.envErr = event.ReadEnvelope(&message.Message{UUID: m.UUID, Metadata: r.metadata})
	l.mu.Lock()
	r.seq = len(l.recs) + 1
	l.recs = append(l.recs, r)
	l.notifyLocked()
	l.mu.Unlock()
	return r
}

func (l *publishLog) failed(recs []*record, err error) {
	l.mu.Lock()
	for _, r := range recs {
		r.err = err
	}
	l.notifyLocked()
	l.mu.Unlock()
}

func (l *publishLog) notifyLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *publishLog) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

// all returns the records the broker took of the given kind, in order.
func (l *publishLog) all(kind recordKind) []*record {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*record
	for _, r := range l.recs {
		if r.kind == kind && r.err == nil {
			out = append(out, r)
		}
	}
	return out
}

func (l *publishLog) journal(max int) string {
	l.mu.Lock()
	recs := slices.Clone(l.recs)
	l.mu.Unlock()
	var b strings.Builder
	writeLast(&b, recs, max, "messages", "nothing was published")
	return b.String()
}

// writeLast writes the last max items (all for max <= 0), one an indented
// line, after a line counting those left out; none when there are no items.
func writeLast[T fmt.Stringer](b *strings.Builder, items []T, max int, what, none string) {
	if max > 0 && len(items) > max {
		fmt.Fprintf(b, "  … %d earlier %s\n", len(items)-max, what)
		items = items[len(items)-max:]
	}
	for _, it := range items {
		b.WriteString("  " + it.String() + "\n")
	}
	if len(items) == 0 {
		b.WriteString("  " + none + "\n")
	}
}
