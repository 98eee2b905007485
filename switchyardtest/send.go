package switchyardtest

import (
	"context"
	"maps"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/switchyard-go/switchyard/pkg/event"
)

// SendOption adjusts [Harness.Send].
type SendOption func(*sendSpec)

type sendSpec struct {
	env     event.Envelope
	topic   string
	headers map[string]string
	drop    []string
}

// From sets the source (ce_source) of a sent event. Default "other-service".
func From(source string) SendOption { return func(s *sendSpec) { s.env.Source = source } }

// WithID sets the event id. Default: a new UUIDv7. Sending the same id
// twice is what a broker's redelivery looks like.
func WithID(id string) SendOption { return func(s *sendSpec) { s.env.ID = id } }

// WithCorrelationID sets the correlation id. Default: the event id (the
// event starts its own chain).
func WithCorrelationID(id string) SendOption { return func(s *sendSpec) { s.env.CorrelationID = id } }

// WithCausationID sets the causation id.
func WithCausationID(id string) SendOption { return func(s *sendSpec) { s.env.CausationID = id } }

// WithKey sets the key (ce_partitionkey). Default: the event's EventKey.
func WithKey(key string) SendOption { return func(s *sendSpec) { s.env.Key = key } }

// WithVersion sets the event version (ce_eventversion), e.g. an old one
// for an upcaster, or one newer than the service knows. Default: the
// event's EventVersion.
func WithVersion(v int) SendOption { return func(s *sendSpec) { s.env.Version = v } }

// WithHopCount sets the hop count, e.g. to test the hop limit.
func WithHopCount(n int) SendOption { return func(s *sendSpec) { s.env.HopCount = n } }

// ToTopic sends to topic instead of the event's own.
func ToTopic(topic string) SendOption { return func(s *sendSpec) { s.topic = topic } }

// WithHeader sets one more header, or replaces one the envelope wrote.
func WithHeader(key, value string) SendOption {
	return func(s *sendSpec) {
		if s.headers == nil {
			s.headers = map[string]string{}
		}
		s.headers[key] = value
	}
}

// WithoutHeader removes a header the envelope wrote, e.g. ce_eventversion
// as a producer that does not know it would.
func WithoutHeader(key string) SendOption {
	return func(s *sendSpec) { s.drop = append(s.drop, key) }
}

// Send publishes e straight to the broker as another service would: with
// an envelope of its own (source "other-service", a new id, correlation
// id = id, no causation, hop count 0, unless options say otherwise),
// encoded with the harness codec. It returns the envelope sent. What is
// sent is not among [Published]: the service did not publish it.
func (h *Harness) Send(e event.Event, opts ...SendOption) event.Envelope {
	h.tb.Helper()
	s := sendSpec{env: event.Envelope{
		Type:        e.EventType(),
		Version:     e.EventVersion(),
		Source:      "other-service",
		ContentType: h.set.codec.ContentType(),
		Key:         event.KeyOf(e),
		Time:        h.clock.Now(),
	}}
	for _, o := range opts {
		o(&s)
	}
	if s.env.ID == "" {
		s.env.ID = uuid.Must(uuid.NewV7()).String()
	}
	if s.env.CorrelationID == "" {
		s.env.CorrelationID = s.env.ID
	}
	if s.topic == "" {
		s.topic = event.TopicOf(e)
	}
	payload, err := h.set.codec.Marshal(e)
	if err != nil {
		h.tb.Fatalf("switchyardtest: send %s: encode: %v", e.EventType(), err)
	}
	md := message.Metadata{}
	s.env.Write(md)
	maps.Copy(md, s.headers)
	for _, k := range s.drop {
		delete(md, k)
	}
	h.sendMessage(s.topic, s.env.ID, payload, md)
	return s.env
}

// SendRaw publishes a message with exactly the given payload and headers
// to topic, and returns its id (the Watermill UUID; a ce_id header is not
// added). Use it for malformed messages: no ce_type, a bad version, a
// payload that does not decode, or a producer's own header scheme.
func (h *Harness) SendRaw(topic string, payload []byte, headers map[string]string) string {
	h.tb.Helper()
	id := uuid.Must(uuid.NewV7()).String()
	h.sendMessage(topic, id, payload, maps.Clone(headers))
	return id
}

func (h *Harness) sendMessage(topic, id string, payload []byte, md message.Metadata) {
	h.tb.Helper()
	m := message.NewMessage(id, payload)
	if md != nil {
		m.Metadata = md
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.set.timeout)
	defer cancel()
	m.SetContext(ctx)
	p := &recordingPublisher{next: h.broker.Broker.Publisher(), log: h.log, kind: kindSent}
	if err := p.Publish(topic, m); err != nil {
		h.tb.Fatalf("switchyardtest: send to %q: %v", topic, err)
	}
}
