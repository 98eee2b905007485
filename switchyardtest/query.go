package switchyardtest

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/header"
)

// Message is an event of type T with the envelope it travelled in.
type Message[T event.Event] struct {
	Event    T
	Envelope event.Envelope
	// Topic is the topic it was published to, or consumed from.
	Topic string
	// Metadata holds every header, the envelope's included.
	Metadata map[string]string
}

// Published returns the events of type T the service published (from
// handlers or [service.Service.Publish], the harness's [Harness.Publish]
// included, dead letters and [Harness.Send] not), in publish order.
func Published[T event.Event](h *Harness) []Message[T] {
	h.tb.Helper()
	out, err := published[T](h)
	if err != nil {
		h.tb.Fatalf("switchyardtest: %v\n%s", err, h.Journal())
	}
	return out
}

func published[T event.Event](h *Harness) ([]Message[T], error) {
	var zero T
	var out []Message[T]
	for _, r := range h.log.all(kindPublished) {
		if r.deadLetter() || r.env.Type != zero.EventType() {
			continue
		}
		m, err := decode[T](h, r.topic, r.env, r.metadata, r.payload)
		if err != nil {
			return nil, fmt.Errorf("published %s id=%s cannot be decoded: %w", r.env.Type, r.uuid, err)
		}
		out = append(out, m)
	}
	return out, nil
}

func decode[T event.Event](h *Harness, topic string, env event.Envelope, md map[string]string, payload []byte) (Message[T], error) {
	v, err := event.Decode[T](h.Service().Registry(), h.set.codec, &env, payload)
	return Message[T]{Event: v, Envelope: env, Topic: topic, Metadata: md}, err
}

// Handled returns the events of type T that handler ("" for any handler)
// handled successfully, in the order the attempts started. An event
// handled twice (a redelivery) is there twice. It does not wait: an
// attempt still running is not there, and a handler's follow-up is
// published before the handler returns, so after [WaitFor] call
// [Harness.WaitIdle] first.
func Handled[T event.Event](h *Harness, handler string) []Message[T] {
	h.tb.Helper()
	var zero T
	var out []Message[T]
	for _, a := range h.probe.Attempts(handler) {
		if !a.Done || a.Err != nil || a.Envelope.Type != zero.EventType() {
			continue
		}
		m, err := decode[T](h, a.Topic, a.Envelope, a.Metadata, a.Payload)
		if err != nil {
			h.tb.Fatalf("switchyardtest: handled %s id=%s cannot be decoded: %v", a.Envelope.Type, a.Envelope.ID, err)
		}
		out = append(out, m)
	}
	return out
}

// WaitFor waits until the service has published an event of type T for
// which match returns true (nil matches any) and returns the first such. It
// fails the test after the harness timeout, listing what was published.
func WaitFor[T event.Event](h *Harness, match func(Message[T]) bool) Message[T] {
	h.tb.Helper()
	var found Message[T]
	var derr error
	h.until(func() bool {
		ms, err := published[T](h)
		if err != nil {
			derr = err
			return true
		}
		for _, m := range ms {
			if match == nil || match(m) {
				found = m
				return true
			}
		}
		return false
	}, func() string {
		var zero T
		return fmt.Sprintf("a published %s that matches", zero.EventType())
	})
	if derr != nil {
		h.tb.Fatalf("switchyardtest: %v\n%s", derr, h.Journal())
	}
	return found
}

// ExpectNone fails the test if the service published an event of type T
// for which match returns true (nil matches any). Call it after
// [Harness.WaitIdle]: it does not wait.
func ExpectNone[T event.Event](h *Harness, match func(Message[T]) bool) {
	h.tb.Helper()
	var bad []string
	for _, m := range Published[T](h) {
		if match == nil || match(m) {
			bad = append(bad, fmt.Sprintf("  %+v (id=%s key=%s)", m.Event, m.Envelope.ID, m.Envelope.Key))
		}
	}
	if len(bad) > 0 {
		var zero T
		h.tb.Fatalf("switchyardtest: want no %s published, got %d:\n%s\n%s", zero.EventType(), len(bad), strings.Join(bad, "\n"), h.Journal())
	}
}

// until waits for cond like Eventually, describing the wait with what().
func (h *Harness) until(cond func() bool, what func() string) {
	h.tb.Helper()
	deadline := time.NewTimer(h.set.timeout)
	defer deadline.Stop()
	for !cond() {
		if !h.waitChange(deadline.C) {
			h.tb.Fatalf("switchyardtest: timed out after %s waiting for %s\n%s", h.set.timeout, what(), h.Journal())
		}
	}
}

// DeadLetter is a message the service gave up on, as it was published to
// a dead-letter topic.
type DeadLetter struct {
	// Topic is the dead-letter topic.
	Topic string
	// Reason is why, e.g. [failure.ReasonPermanent].
	Reason failure.Reason
	// Error is the handler's error chain, as text.
	Error string
	// Handler, Group and OriginalTopic say where it failed.
	Handler, Group, OriginalTopic string
	// Attempts is how many attempts were made.
	Attempts int
	// FirstFailure and LastFailure are on the harness clock.
	FirstFailure, LastFailure time.Time
	// Envelope is the original message's; EnvelopeErr says why it could
	// not be read (a malformed message).
	Envelope    event.Envelope
	EnvelopeErr error
	// Payload is the original payload, unchanged.
	Payload []byte
	// Metadata holds every header.
	Metadata map[string]string
}

// DeadLetters returns every dead letter the broker took, in order.
func (h *Harness) DeadLetters() []DeadLetter {
	var out []DeadLetter
	for _, r := range h.log.all(kindPublished) {
		if r.deadLetter() {
			out = append(out, toDeadLetter(r.topic, r.env, r.envErr, r.metadata, r.payload))
		}
	}
	return out
}

func toDeadLetter(topic string, env event.Envelope, envErr error, md map[string]string, payload []byte) DeadLetter {
	dl := DeadLetter{
		Topic:         topic,
		Reason:        failure.Reason(md[header.DeadLetterReason]),
		Error:         md[header.DeadLetterError],
		Handler:       md[header.DeadLetterHandler],
		Group:         md[header.DeadLetterGroup],
		OriginalTopic: md[header.DeadLetterTopic],
		Envelope:      env,
		EnvelopeErr:   envErr,
		Payload:       payload,
		Metadata:      md,
	}
	dl.Attempts, _ = strconv.Atoi(md[header.DeadLetterAttempts])
	dl.FirstFailure, _ = time.Parse(time.RFC3339Nano, md[header.DeadLetterFirstFailure])
	dl.LastFailure, _ = time.Parse(time.RFC3339Nano, md[header.DeadLetterLastFailure])
	return dl
}

// WaitDeadLetter waits until a dead letter for which match returns true
// (nil matches any) was published and returns it; it fails the test after
// the harness timeout, listing what happened.
func (h *Harness) WaitDeadLetter(match func(DeadLetter) bool) DeadLetter {
	h.tb.Helper()
	var found DeadLetter
	h.until(func() bool {
		for _, dl := range h.DeadLetters() {
			if match == nil || match(dl) {
				found = dl
				return true
			}
		}
		return false
	}, func() string { return "a dead letter that matches" })
	return found
}

// DeadLettered returns a matcher of dead letters of one handler with one
// reason, for [Harness.WaitDeadLetter].
func DeadLettered(handler string, reason failure.Reason) func(DeadLetter) bool {
	return func(dl DeadLetter) bool { return dl.Handler == handler && dl.Reason == reason }
}
