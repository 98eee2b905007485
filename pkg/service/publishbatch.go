package service

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/event"
)

// PublishBatchError is what [Service.PublishBatch] returns when some events of
// the batch failed: which ones, and why.
type PublishBatchError struct {
	// Errs has one entry per event of the batch, in the batch's order:
	// nil for an event the broker confirmed, else what [Service.Publish]
	// would have returned for it.
	Errs []error
	// Sent is false when the batch was refused before anything was sent
	// (an event could not be encoded or is not allowed): then no event of
	// the batch was published, and the nil entries of Errs are events
	// that were fine.
	Sent bool
}

// Failed returns the indexes of the events that failed, in order.
func (e *PublishBatchError) Failed() []int {
	var idx []int
	for i, err := range e.Errs {
		if err != nil {
			idx = append(idx, i)
		}
	}
	return idx
}

func (e *PublishBatchError) Error() string {
	failed := e.Failed()
	var b strings.Builder
	if e.Sent {
		fmt.Fprintf(&b, "service: publish batch: %d of %d events failed", len(failed), len(e.Errs))
	} else {
		fmt.Fprintf(&b, "service: publish batch: refused before sending: %d of %d events invalid", len(failed), len(e.Errs))
	}
	if len(failed) > 0 {
		fmt.Fprintf(&b, "; first, #%d: %v", failed[0], e.Errs[failed[0]])
	}
	return b.String()
}

// Unwrap returns the errors of the failed events, so that errors.Is and
// errors.As see through the batch (errors.Is(err, broker.ErrClosed)).
func (e *PublishBatchError) Unwrap() []error {
	var errs []error
	for _, err := range e.Errs {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// errBatchRefused ends the producer spans of the valid events of a batch
// that was refused before sending because another event was invalid.
var errBatchRefused = errors.New("service: publish batch: not sent: another event of the batch is invalid")

// PublishBatch publishes events as [Service.Publish] does (envelope,
// correlation, key and topic of each event) and returns once the broker
// answered for every one of them: all are handed to the broker first, and
// their confirms are awaited together, once, instead of one round trip
// per event (RabbitMQ publisher confirms, Kafka produce acknowledgements,
// memory in one step). On a broker whose publisher cannot pipeline
// ([broker.AsyncPublisher]) the events are published one after another.
//
// It returns nil when every event was confirmed, or a [*PublishBatchError] that
// says which failed:
//   - before anything is sent, every event is encoded and checked; if one
//     cannot be (a codec error, an undeclared type from a handler), no
//     event is published (PublishBatchError.Sent is false);
//   - once sent, each event succeeds or fails on its own (a topic that
//     cannot be created, an unroutable RabbitMQ message, a nack, a lost
//     connection): the confirmed ones are stored, the failed ones may or
//     may not be, as for Publish. Retrying just the failed ones is safe
//     where consumers are idempotent.
//
// Events of one topic are sent in the batch's order, so per-key order
// holds as for consecutive Publish calls; there is no order across topics
// and no atomicity: a batch is a faster loop, not a transaction (use the
// outbox for that).
func (s *Service) PublishBatch(ctx context.Context, events ...event.Event) error {
	if len(events) == 0 {
		return nil
	}
	type entry struct {
		e     event.Event
		topic string
		msg   *message.Message
	}
	entries := make([]entry, len(events))
	errs := make([]error, len(events))
	// With tracing on, each event gets the producer span Publish would
	// give it: the message carries that span's context, so the
	// consumer's span is its child and the trace looks the same whichever
	// way the event was published.
	var spans []trace.Span
	if s.tracer != nil {
		spans = make([]trace.Span, len(events))
	}
	invalid := false
	for i, e := range events {
		ectx := ctx
		if spans != nil {
			ectx, spans[i] = s.startProducerSpan(ctx, e, nil)
		}
		msg, topic, err := s.newMessage(ectx, e, nil, nil)
		if err != nil {
			errs[i], invalid = err, true
			continue
		}
		if spans != nil {
			s.setProducerAttributes(spans[i], msg)
		}
		entries[i] = entry{e: e, topic: topic, msg: msg}
	}
	if invalid {
		for i, span := range spans {
			err := errs[i]
			if err == nil {
				err = errBatchRefused
			}
			endProducerSpan(span, err, true)
		}
		return &PublishBatchError{Errs: errs}
	}
	// Group by topic, keeping the batch's order within each topic.
	var topics []string
	byTopic := map[string][]*message.Message{}
	index := make(map[*message.Message]int, len(events))
	for i, en := range entries {
		if _, ok := byTopic[en.topic]; !ok {
			topics = append(topics, en.topic)
		}
		byTopic[en.topic] = append(byTopic[en.topic], en.msg)
		index[en.msg] = i
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed bool
	)
	wg.Add(len(events))
	for _, topic := range topics {
		broker.PublishAsync(ctx, s.publisher, topic, func(m *message.Message, err error) {
			i := index[m]
			if err != nil {
				mu.Lock()
				errs[i] = fmt.Errorf("service: publish %s to %q: %w", entries[i].e.EventType(), topic, err)
				failed = true
				mu.Unlock()
			} else {
				s.recorder.Published(topic, entries[i].e.EventType())
			}
			if spans != nil {
				endProducerSpan(spans[i], errs[i], true) // errs[i] is only ever written for i, above
			}
			wg.Done()
		}, byTopic[topic]...)
	}
	wg.Wait() // the one wait for every confirm
	if failed {
		return &PublishBatchError{Errs: errs, Sent: true}
	}
	return nil
}
