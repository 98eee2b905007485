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
// are left out, and so are version 1 and hop count 0: [ReadEnvelope]
// restores them.
func (e *Envelope) Write(md message.Metadata) {
	md[header.SpecVersion] = header.SpecVersionValue
	if e.ID != "" {
		md[header.ID] = e.ID
	}
	if e.Type != "" {
		md[header.Type] = e.Type
	}
	// Version 1 and hop count 0 are left out, as readers default to them:
	// it keeps a chain's first event within eight headers, which Go maps
	// hold without growing.
	if e.Version > 1 {
		md[header.Version] = strconv.Itoa(e.Version)
	}
	if e.Source != "" {
		md[header.Source] = e.Source
	}
	if !e.Time.IsZero() {
		var buf [len(TimeLayout) + 8]byte
		md[header.Time] = string(AppendTime(buf[:0], e.Time))
	}
	if e.ContentType != "" {
		md[header.ContentType] = e.ContentType
	}
	if e.Key != "" {
		md[header.Key] = e.Key
	}
	if e.CorrelationID != "" {
		md[header.CorrelationID] = e.CorrelationID
	}
	if e.CausationID != "" {
		md[header.CausationID] = e.CausationID
	}
	if e.HopCount != 0 {
		md[header.HopCount] = strconv.Itoa(e.HopCount)
	}
	if e.TraceParent != "" {
		md[header.TraceParent] = e.TraceParent
	}
	if e.TraceState != "" {
		md[header.TraceState] = e.TraceState
	}
}

// TimeLayout is the layout of the ce_time header: RFC 3339 with nanoseconds
// (trailing zeros dropped), always in UTC.
const TimeLayout = time.RFC3339Nano

// AppendTime appends t as the ce_time header writes it (see [TimeLayout]),
// for callers that format it into a buffer of their own.
func AppendTime(dst []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(dst, TimeLayout)
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
