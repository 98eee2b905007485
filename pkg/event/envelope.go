package event

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/header"
)

// Envelope holds the attributes every Switchyard message carries, whatever
// the broker. Its fields map one to one onto the headers of package header.
type Envelope struct {
	ID            string
	Type          string
	Version       int
	Source        string
	Time          time.Time
	ContentType   string
	Key           string
	CorrelationID string
	CausationID   string
	HopCount      int
	TraceParent   string
	TraceState    string
}

// Write stores the envelope in md using the header contract. Empty fields
// are left out.
func (e *Envelope) Write(md message.Metadata) {
	md[header.SpecVersion] = header.SpecVersionValue
	set := func(k, v string) {
		if v != "" {
			md[k] = v
		}
	}
	set(header.ID, e.ID)
	set(header.Type, e.Type)
	if e.Version > 0 {
		md[header.Version] = strconv.Itoa(e.Version)
	}
	set(header.Source, e.Source)
	if !e.Time.IsZero() {
		md[header.Time] = e.Time.UTC().Format(time.RFC3339Nano)
	}
	set(header.ContentType, e.ContentType)
	set(header.Key, e.Key)
	set(header.CorrelationID, e.CorrelationID)
	set(header.CausationID, e.CausationID)
	md[header.HopCount] = strconv.Itoa(e.HopCount)
	set(header.TraceParent, e.TraceParent)
	set(header.TraceState, e.TraceState)
}

// ErrInvalidEnvelope is wrapped by every error of [ReadEnvelope].
var ErrInvalidEnvelope = errors.New("invalid envelope")

// ReadEnvelope reads the envelope of msg. It accepts messages from non-Go
// producers that only set CloudEvents attributes: a missing version means 1, a
// missing correlation id means the message starts its own chain (its id), a
// missing id falls back to the Watermill message UUID.
//
// A message without a type, or with a malformed version, hop count or time,
// is rejected with a permanent error of reason "invalid_envelope".
func ReadEnvelope(msg *message.Message) (Envelope, error) {
	md := msg.Metadata
	e := Envelope{
		ID:            md.Get(header.ID),
		Type:          md.Get(header.Type),
		Source:        md.Get(header.Source),
		ContentType:   md.Get(header.ContentType),
		Key:           md.Get(header.Key),
		CorrelationID: md.Get(header.CorrelationID),
		CausationID:   md.Get(header.CausationID),
		TraceParent:   md.Get(header.TraceParent),
		TraceState:    md.Get(header.TraceState),
		Version:       1,
	}
	if e.ID == "" {
		e.ID = msg.UUID
	}
	if e.CorrelationID == "" {
		e.CorrelationID = e.ID
	}
	var errs error
	if e.Type == "" {
		errs = errors.Join(errs, fmt.Errorf("header %s is missing", header.Type))
	}
	if v := md.Get(header.Version); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			errs = errors.Join(errs, fmt.Errorf("header %s: %q, want a positive integer", header.Version, v))
		}
		e.Version = n
	}
	if v := md.Get(header.HopCount); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			errs = errors.Join(errs, fmt.Errorf("header %s: %q, want a non-negative integer", header.HopCount, v))
		}
		e.HopCount = n
	}
	if v := md.Get(header.Time); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			errs = errors.Join(errs, fmt.Errorf("header %s: %q, want RFC 3339", header.Time, v))
		}
		e.Time = t
	}
	if errs != nil {
		return e, failure.WithReason(failure.ReasonInvalidEnvelope, fmt.Errorf("%w: %w", ErrInvalidEnvelope, errs))
	}
	return e, nil
}
