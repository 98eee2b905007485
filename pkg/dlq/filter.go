package dlq

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pkg/header"
)

// Filter selects dead letters by their failure metadata. A zero field
// matches everything; a list matches any of its values.
type Filter struct {
	// Types are event types (header ce_type).
	Types []string `json:"types,omitempty"`
	// Reasons are failure reasons, e.g. retries_exhausted, decode,
	// permanent, key_parked (header sy_dlq_reason).
	Reasons []string `json:"reasons,omitempty"`
	// Handlers are the names of the handlers that gave up (sy_dlq_handler).
	Handlers []string `json:"handlers,omitempty"`
	// Groups are the consumer groups that gave up (sy_dlq_group).
	Groups []string `json:"groups,omitempty"`
	// Since keeps dead letters that failed at or after it.
	Since time.Time `json:"since,omitzero"`
	// Until keeps dead letters that failed before it.
	Until time.Time `json:"until,omitzero"`
}

// Validate reports a time range that selects nothing.
func (f Filter) Validate() error {
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return fmt.Errorf("dlq: filter.until (%s) must be after filter.since (%s)", f.Until.Format(time.RFC3339), f.Since.Format(time.RFC3339))
	}
	return nil
}

// Active reports whether f selects anything less than every dead letter.
func (f Filter) Active() bool {
	return len(f.Types)+len(f.Reasons)+len(f.Handlers)+len(f.Groups) > 0 || !f.Since.IsZero() || !f.Until.IsZero()
}

// Match reports whether dead letter m passes f.
func (f Filter) Match(m *message.Message) bool {
	md := m.Metadata
	if len(f.Types) > 0 && !slices.Contains(f.Types, md.Get(header.Type)) {
		return false
	}
	if len(f.Reasons) > 0 && !slices.Contains(f.Reasons, md.Get(header.DeadLetterReason)) {
		return false
	}
	if len(f.Handlers) > 0 && !slices.Contains(f.Handlers, md.Get(header.DeadLetterHandler)) {
		return false
	}
	if len(f.Groups) > 0 && !slices.Contains(f.Groups, md.Get(header.DeadLetterGroup)) {
		return false
	}
	if !f.Since.IsZero() || !f.Until.IsZero() {
		t := FailedAt(m)
		if t.IsZero() || (!f.Since.IsZero() && t.Before(f.Since)) || (!f.Until.IsZero() && !t.Before(f.Until)) {
			return false
		}
	}
	return true
}

// FailedAt is when m was dead-lettered: its last failure, else its event
// time, else zero.
func FailedAt(m *message.Message) time.Time {
	for _, k := range []string{header.DeadLetterLastFailure, header.Time} {
		if t, err := time.Parse(time.RFC3339Nano, m.Metadata.Get(k)); err == nil {
			return t
		}
	}
	return time.Time{}
}

// ErrInvalidOption wraps every invalid option or argument.
var ErrInvalidOption = errors.New("dlq: invalid option")
