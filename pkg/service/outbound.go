package service

import (
	"fmt"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/header"
)

// WithContentMode sets how events published to topic (as handlers name it,
// before [WithNamespace]) carry their CloudEvents attributes:
// [event.ContentModeBinary], the default, as headers with the data as the
// payload; or [event.ContentModeStructured], the whole event as one
// application/cloudevents+json document, for consumers that expect it
// (see [event.ToStructured]). It applies to [Service.Publish], from
// handlers or not, and to dead letters published to topic (one that lacks
// an id, type or source, as a foreign message may, is published as it
// is); messages the outbox relays and delayed retries stay in binary mode.
// Consumers read both modes on every topic whatever this says.
func WithContentMode(topic string, mode event.ContentMode) Option {
	switch mode {
	case event.ContentModeBinary, event.ContentModeStructured:
	default:
		panic(fmt.Sprintf("service.WithContentMode(%q, %q): want %q or %q", topic, mode, event.ContentModeBinary, event.ContentModeStructured))
	}
	return outboundOption(topic, func(o *outbound) { o.structured = mode == event.ContentModeStructured })
}

// WithWatermillHeaders makes events published to topic (before
// [WithNamespace]) readable by services on plain watermill-kafka and
// watermill-amqp with their default marshalers: it adds the Watermill
// message UUID header ([header.WatermillUUID], the event id), which their
// unmarshalers take the message UUID from, and the correlation id under
// the key of Watermill's correlation middleware
// ([header.WatermillCorrelationID]). Every other header, and the payload,
// stay as they are: Watermill hands them to its handlers as metadata and
// payload. It applies where [WithContentMode] does.
func WithWatermillHeaders(topic string) Option {
	return outboundOption(topic, func(o *outbound) { o.watermill = true })
}

// outbound is how one topic's messages are published.
type outbound struct {
	structured bool // structured content mode
	watermill  bool // Watermill's UUID and correlation headers
}

// outboundOption wraps the service's publisher, once, in an
// outboundPublisher and records topic's settings.
func outboundOption(topic string, set func(*outbound)) Option {
	return func(s *Service) {
		p, ok := s.publisher.(*outboundPublisher)
		if !ok {
			p = &outboundPublisher{next: s.publisher, s: s, topics: map[string]outbound{}}
			s.publisher = p
		}
		o := p.topics[topic]
		set(&o)
		p.topics[topic] = o
	}
}

// outboundPublisher publishes to the topics given outbound settings as
// they say, and to others unchanged.
type outboundPublisher struct {
	next   message.Publisher
	s      *Service
	topics map[string]outbound // by topic before the namespace; read-only once New returned
}

func (p *outboundPublisher) Publish(topic string, msgs ...*message.Message) error {
	o := p.topics[strings.TrimPrefix(topic, p.s.namespace)]
	if o == (outbound{}) {
		return p.next.Publish(topic, msgs...)
	}
	out := make([]*message.Message, len(msgs))
	for i, m := range msgs {
		out[i] = o.apply(m)
	}
	return p.next.Publish(topic, out...)
}

// apply returns m as o says to publish it, leaving m itself unchanged.
func (o outbound) apply(m *message.Message) *message.Message {
	out := m
	if o.structured {
		// A message that is not an event (a dead letter of a foreign
		// message without a source) is published as it is rather than
		// failing the failure path.
		if sm, err := event.ToStructured(m); err == nil {
			sm.SetContext(m.Context())
			out = sm
		}
	}
	if o.watermill {
		if out == m {
			out = m.Copy()
			out.SetContext(m.Context())
		}
		out.Metadata[header.WatermillUUID] = m.UUID
		if c := m.Metadata[header.CorrelationID]; c != "" {
			out.Metadata[header.WatermillCorrelationID] = c
		}
	}
	return out
}

func (p *outboundPublisher) Close() error { return p.next.Close() }
