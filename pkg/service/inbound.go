package service

import (
	"fmt"
	"maps"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/inbound"
)

// WithInbound tells the service how to read the messages of topic (as
// handlers name it, before [WithNamespace]) that producers which do not
// write the header contract publish: where the event type, id, key,
// correlation id, time and content type are found (see package inbound).
// Mapped messages then go through the same middleware as any other.
// Messages of the topic that carry the contract are read as usual, so
// Switchyard and foreign producers can share it. A message the mapping
// cannot be applied to is dead-lettered with reason "inbound_mapping" and an
// error naming the topic and every attribute that was missing.
//
// WithInbound panics when m is invalid (see [inbound.Mapping.Validate]), as
// a programming error: mappings from configuration files are validated by
// package config before they get here. A later WithInbound for the same
// topic replaces the earlier one.
func WithInbound(topic string, m inbound.Mapping) Option {
	if err := m.Validate("inbound[" + topic + "]"); err != nil {
		panic(fmt.Sprintf("service.WithInbound(%q): %v", topic, err))
	}
	m = m.Resolved()
	m.Types = maps.Clone(m.Types)
	return func(s *Service) {
		if s.inbound == nil {
			s.inbound = map[string]*inbound.Mapping{}
		}
		s.inbound[topic] = &m
	}
}

// normalizeInbound brings msg, consumed from topic (namespaced), into the
// header contract before its envelope is read: a CloudEvent in structured
// content mode is turned into binary mode (on every topic), and other
// messages go through the topic's inbound mapping, if any. A non-nil error
// is permanent: the message must be dead-lettered with it, not handled.
//
// The dispatcher calls it before it chooses a message's worker by key, so
// that a key the mapping (or a structured event) gives orders handling.
// It is idempotent: a message it rewrote carries the contract and is left
// alone by a second call, and one it refused is unchanged and refused
// again, so the worker may call it again to get the error.
func (s *Service) normalizeInbound(topic string, msg *message.Message) error {
	if event.IsStructured(msg.Metadata) {
		return event.FromStructured(msg)
	}
	if len(s.inbound) == 0 {
		return nil
	}
	m := s.inbound[strings.TrimPrefix(topic, s.namespace)]
	if m == nil {
		return nil
	}
	if err := m.Apply(msg); err != nil {
		return failure.WithReason(failure.ReasonInboundMapping, fmt.Errorf("inbound mapping of topic %q: %w", topic, err))
	}
	return nil
}
