package eventstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/middleware"
)

// ErrConcurrencyConflict is returned (wrapped) by Append when the stream is
// not at the expected version: another writer appended first. Nothing was
// appended; reload the stream and decide again.
var ErrConcurrencyConflict = errors.New("eventstore: concurrency conflict")

// AnyVersion as the expected version appends whatever the stream's version.
const AnyVersion = -1

// Store is an append-only store of event streams.
type Store interface {
	// Append adds events to the end of the stream if it holds exactly
	// expectedVersion events (0 for a new stream), all or none. Otherwise
	// it returns an error wrapping [ErrConcurrencyConflict]. Of several
	// concurrent appends at one version exactly one succeeds.
	// [AnyVersion] skips the check.
	Append(ctx context.Context, streamID string, expectedVersion int, events ...event.Event) error
	// Load returns the stream's records in version order; an unknown
	// stream has none (and no error).
	Load(ctx context.Context, streamID string) ([]Record, error)
}

// Record is one stored event.
type Record struct {
	// StreamID is the stream (aggregate id) the event belongs to.
	StreamID string
	// Version is the event's position in its stream, from 1.
	Version int
	// Envelope holds the event's id, type, schema version
	// (Envelope.Version), source, time, content type, key and its
	// correlation and causation ids, as written when it was appended.
	Envelope event.Envelope
	// Data is the payload as stored, in the schema version of the envelope.
	Data []byte
	// Position is the record's place in the store-wide sequence of every
	// stream (see [AllReader]), from 1. Zero from a store without one.
	Position int64
}

// AllReader is implemented by stores that order the events of every stream
// in one sequence, the global position, as projections and catch-up
// subscriptions need.
type AllReader interface {
	// ReadAll returns up to limit records whose position is greater than
	// after, in position order (after 0 reads from the start), of the
	// given event types only (none: every type). Positions follow commit
	// order: an append that commits later has higher positions than every
	// append committed before it, so a reader that continues from the last
	// position it read never misses an event, however its appends
	// interleaved with others. Positions may have gaps (a rolled-back
	// append leaves one, and so does a type filter).
	ReadAll(ctx context.Context, after int64, limit int, types ...string) ([]Record, error)
	// Head returns the highest position committed so far (0 for an empty
	// store), to measure how far a reader lags.
	Head(ctx context.Context) (int64, error)
}

// StreamReader is implemented by stores that read a stream from a version,
// as [Repository] does after a snapshot.
type StreamReader interface {
	// LoadAfter returns the stream's records whose version is greater
	// than after, in version order (after 0 is the whole stream, like
	// Load).
	LoadAfter(ctx context.Context, streamID string, after int) ([]Record, error)
}

// Type returns the event type name.
func (r Record) Type() string { return r.Envelope.Type }

// Time returns when the event was appended.
func (r Record) Time() time.Time { return r.Envelope.Time }

// Message returns the broker message for the record: the same id, envelope
// and payload a service would publish.
func (r Record) Message() *message.Message {
	m := message.NewMessage(r.Envelope.ID, append([]byte(nil), r.Data...))
	r.Envelope.Write(m.Metadata)
	return m
}

// Encoder turns events into records. Stores use it on Append; its zero value
// is usable.
type Encoder struct {
	// Codec encodes payloads. Default event.JSON.
	Codec event.Codec
	// Source is the envelope's source (the service name). Default empty.
	Source string
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Encode builds the records of events appended to streamID after version
// from. The envelope of each continues the chain of the message being
// handled in ctx (correlation id, causation id, hop count), or takes the
// correlation id of [middleware.WithCorrelationID]. The key is the event's
// own key, or the stream id.
func (e Encoder) Encode(ctx context.Context, streamID string, from int, events []event.Event) ([]Record, error) {
	codec := e.Codec
	if codec == nil {
		codec = event.JSON{}
	}
	now := time.Now
	if e.Now != nil {
		now = e.Now
	}
	parent := middleware.DeliveryFrom(ctx)
	recs := make([]Record, len(events))
	t := now().UTC()
	for i, ev := range events {
		if ev == nil {
			return nil, fmt.Errorf("eventstore: append to %q: event %d is nil", streamID, i)
		}
		if ev.EventType() == "" || ev.EventVersion() < 1 {
			return nil, fmt.Errorf("eventstore: append to %q: %T has type %q version %d, want a name and version >= 1",
				streamID, ev, ev.EventType(), ev.EventVersion())
		}
		data, err := codec.Marshal(ev)
		if err != nil {
			return nil, fmt.Errorf("eventstore: encode %s for %q: %w", ev.EventType(), streamID, err)
		}
		id := newID()
		env := event.Envelope{
			ID: id, Type: ev.EventType(), Version: ev.EventVersion(), Source: e.Source, Time: t,
			ContentType: codec.ContentType(), Key: event.KeyOf(ev),
		}
		if env.Key == "" {
			env.Key = streamID
		}
		if parent != nil {
			env.CorrelationID = parent.Envelope.CorrelationID
			env.CausationID = parent.Envelope.ID
			env.HopCount = parent.Envelope.HopCount + 1
		} else if env.CorrelationID = middleware.CorrelationID(ctx); env.CorrelationID == "" {
			env.CorrelationID = id
		}
		recs[i] = Record{StreamID: streamID, Version: from + i + 1, Envelope: env, Data: data}
	}
	return recs, nil
}

// ConflictError builds the error of a failed version check, for Store
// implementations; actual < 0 means unknown (another append committed
// first).
func ConflictError(streamID string, expected, actual int) error {
	if actual < 0 {
		return fmt.Errorf("eventstore: append to %q at version %d: another append committed first: %w", streamID, expected, ErrConcurrencyConflict)
	}
	return fmt.Errorf("eventstore: append to %q at version %d: stream is at version %d: %w", streamID, expected, actual, ErrConcurrencyConflict)
}

func newID() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}
