package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/header"
)

// A Scheduler keeps messages until they are due and then publishes them to
// their topic, so that every consumer group of the topic receives them. The
// runtime builds the message (envelope, correlation, causation) and hands
// it over; package schedule implements it on a store (memory, PostgreSQL).
type Scheduler interface {
	// Schedule stores msg so that it is published to topic no sooner than
	// at. It returns once msg is stored durably (as durable as the store
	// is). Scheduling a message id that is already scheduled is a no-op,
	// so a handler's retry does not schedule twice.
	Schedule(ctx context.Context, topic string, msg *message.Message, at time.Time) error
	// Cancel removes the scheduled message with id before it is published.
	// It returns an error wrapping [ErrScheduleNotFound] when no message
	// with id waits (never scheduled, already published or cancelled), and
	// one wrapping [ErrCancelUnsupported] when the store cannot cancel.
	Cancel(ctx context.Context, id string) error
}

var (
	// ErrNoScheduler is returned by [Service.PublishAt] and
	// [Service.PublishAfter] on a service built without [WithScheduler].
	ErrNoScheduler = errors.New("service: no scheduler: build the service WithScheduler")
	// ErrScheduleNotFound is wrapped by [Service.CancelScheduled] when no
	// scheduled message has the id (any more).
	ErrScheduleNotFound = errors.New("service: no scheduled message with this id")
	// ErrCancelUnsupported is wrapped by [Service.CancelScheduled] when the
	// scheduler cannot take a message back.
	ErrCancelUnsupported = errors.New("service: the scheduler cannot cancel")
)

// WithScheduler gives the service the store of [Service.PublishAt] and
// [Service.PublishAfter]. The scheduler usually also runs as a companion
// (it publishes what is due while the service runs): see package schedule.
func WithScheduler(sch Scheduler) Option { return func(s *Service) { s.scheduler = sch } }

// Scheduler returns the service's scheduler, nil without [WithScheduler].
func (s *Service) Scheduler() Scheduler { return s.scheduler }

// PublishAt is [Service.Publish] no sooner than at: it builds the message
// now, as Publish would (called with a handler's context it keeps the
// incoming correlation id, sets the causation id and counts the hop; a
// handler may schedule only what it declared with [Publishes]), stores it
// in the scheduler and returns its id, the id the event will have and the
// one [Service.CancelScheduled] takes. [WithID] makes the id (and so the
// schedule) deterministic: scheduling the same id twice stores it once.
// A time in the past publishes as soon as the scheduler runs.
func (s *Service) PublishAt(ctx context.Context, e event.Event, at time.Time, opts ...PublishOption) (string, error) {
	if s.scheduler == nil {
		return "", ErrNoScheduler
	}
	msg, topic, err := s.newMessage(ctx, e, nil, opts)
	if err != nil {
		return "", err
	}
	if err := s.scheduler.Schedule(ctx, topic, msg, at); err != nil {
		return "", fmt.Errorf("service: schedule %s to %q at %s: %w", e.EventType(), topic, at.Format(time.RFC3339Nano), err)
	}
	return msg.UUID, nil
}

// PublishAfter is [Service.PublishAt] at d from now (the service's clock).
func (s *Service) PublishAfter(ctx context.Context, e event.Event, d time.Duration, opts ...PublishOption) (string, error) {
	return s.PublishAt(ctx, e, s.clock.Now().Add(d), opts...)
}

// CancelScheduled takes back the message [Service.PublishAt] scheduled
// with id, if it is not published yet; see [Scheduler.Cancel] for errors.
func (s *Service) CancelScheduled(ctx context.Context, id string) error {
	if s.scheduler == nil {
		return ErrNoScheduler
	}
	return s.scheduler.Cancel(ctx, id)
}

// PublishMessage publishes msg, a message [Service.NewMessage] built
// earlier, to topic through the service's publisher: the topic's content
// mode and Watermill headers ([WithContentMode], [WithWatermillHeaders])
// apply and it counts as published, as if [Service.Publish] had sent it
// now. Relays of messages kept for later (a scheduler, a saga's pending
// messages) use it. It returns once the broker confirmed; ctx bounds the
// wait where the adapter watches the message's context.
func (s *Service) PublishMessage(ctx context.Context, topic string, msg *message.Message) error {
	msg.SetContext(ctx)
	if err := s.publisher.Publish(topic, msg); err != nil {
		return fmt.Errorf("service: publish %s to %q: %w", msg.Metadata.Get(header.Type), topic, err)
	}
	s.recorder.Published(topic, msg.Metadata.Get(header.Type))
	return nil
}
