package service

import (
	"fmt"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pkg/event"
)

// WithContentMode sets how events published to topic (as handlers name it,
// before [WithNamespace]) carry their CloudEvents attributes:
// [event.ContentModeBinary], the default, as headers with the data as the
// payload; or [event.ContentModeStructured], the whole event as one
// application/cloudevents+json document, for consumers that expect it
// (see [event.ToStructured]). It applies to [Service.Publish], from
// handlers or not, and to dead letters published to topic (one that lacks
// an id, type or source, as a foreign message may, is published as it
// is); messages the outbox relays and delayed retries stay in binary mode. Consumers read
// both modes on every topic whatever this says.
func WithContentMode(topic string, mode event.ContentMode) Option {
	switch mode {
	case event.ContentModeBinary, event.ContentModeStructured:
	default:
		panic(fmt.Sprintf("service.WithContentMode(%q, %q): want %q or %q", topic, mode, event.ContentModeBinary, event.ContentModeStructured))
	}
	return func(s *Service) {
		p, ok := s.publisher.(*contentModePublisher)
		if !ok {
			p = &contentModePublisher{next: s.publisher, s: s, structured: map[string]bool{}}
			s.publisher = p
		}
		if mode == event.ContentModeStructured {
			p.structured[topic] = true
		} else {
			delete(p.structured, topic)
		}
	}
}

// contentModePublisher publishes to the topics set to structured mode in
// structured mode and to others unchanged.
type contentModePublisher struct {
	next       message.Publisher
	s          *Service
	structured map[string]bool // by topic before the namespace; read-only once New returned
}

func (p *contentModePublisher) Publish(topic string, msgs ...*message.Message) error {
	if !p.structured[strings.TrimPrefix(topic, p.s.namespace)] {
		return p.next.Publish(topic, msgs...)
	}
	out := make([]*message.Message, len(msgs))
	for i, m := range msgs {
		sm, err := event.ToStructured(m)
		if err != nil {
			// Not an event (a dead letter of a foreign message without a
			// source): publish it as it is rather than fail the failure path.
			out[i] = m
			continue
		}
		sm.SetContext(m.Context())
		out[i] = sm
	}
	return p.next.Publish(topic, out...)
}

func (p *contentModePublisher) Close() error { return p.next.Close() }
