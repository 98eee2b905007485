// Package failure classifies handler errors for the failure path: which errors
// are worth retrying, which are permanent, and the short reason a dead letter
// carries.
//
// Retry and dead-letter middleware read these classifiers; handlers use them to
// say that retrying cannot help:
//
//	if order.Total < 0 {
//		return failure.Permanent(fmt.Errorf("order %s: negative total", order.ID))
//	}
package failure

import (
	"errors"
	"fmt"
	"runtime/debug"
)

// Reason is the short, machine-readable reason a message was dead-lettered.
// It is written to the header [github.com/switchyard-go/switchyard/pkg/header.DeadLetterReason].
type Reason string

// Reasons the framework gives. Handlers may use their own with [WithReason].
const (
	// ReasonPermanent: the handler said retrying cannot help.
	ReasonPermanent Reason = "permanent"
	// ReasonRetriesExhausted: every attempt the retry policy allows failed.
	ReasonRetriesExhausted Reason = "retries_exhausted"
	// ReasonDecode: the payload could not be decoded into the event type.
	ReasonDecode Reason = "decode"
	// ReasonInvalidEnvelope: required headers are missing or malformed.
	ReasonInvalidEnvelope Reason = "invalid_envelope"
	// ReasonInboundMapping: the topic's inbound mapping (see package
	// inbound) could not be applied: an attribute it names is missing or
	// malformed.
	ReasonInboundMapping Reason = "inbound_mapping"
	// ReasonUnknownType: no event type of that name is known to this service.
	ReasonUnknownType Reason = "unknown_type"
	// ReasonUnsupportedVersion: the event version is newer than the code knows,
	// or no upcaster leads from it to the current version.
	ReasonUnsupportedVersion Reason = "unsupported_version"
	// ReasonUnsupportedContentType: the payload's content type has no codec.
	ReasonUnsupportedContentType Reason = "unsupported_content_type"
	// ReasonHopLimit: the event chain passed more handlers than allowed,
	// which almost always means an event loop.
	ReasonHopLimit Reason = "hop_limit"
	// ReasonPanic: the handler panicked on every attempt, or code around it
	// in the stack panicked.
	ReasonPanic Reason = "panic"
	// ReasonUndeclaredPublish: the handler published an event type it did
	// not declare: a programming error, not worth retrying.
	ReasonUndeclaredPublish Reason = "undeclared_publish"
	// ReasonKeyParked: an earlier message of the same key was
	// dead-lettered and the handler keeps dead letters in key order
	// (dead_letter_order: key); this one follows it.
	ReasonKeyParked Reason = "key_parked"
)

// Error is a permanent failure with a reason: it skips retries and is
// dead-lettered at once.
type Error struct {
	Reason Reason
	Err    error
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %v", e.Reason, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// Permanent marks err so that retries are skipped and the message is
// dead-lettered at once with reason [ReasonPermanent]. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &Error{Reason: ReasonPermanent, Err: err}
}

// WithReason marks err permanent with the given reason. WithReason(_, nil) is nil.
func WithReason(reason Reason, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Reason: reason, Err: err}
}

// IsPermanent reports whether err, or any error it wraps, is permanent.
func IsPermanent(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

// ReasonOf returns the reason of the first permanent error in err's chain,
// [ReasonPanic] for a panic, or [ReasonRetriesExhausted] otherwise.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	var p *PanicError
	if errors.As(err, &p) {
		return ReasonPanic
	}
	return ReasonRetriesExhausted
}

// PanicError is a recovered handler panic with the goroutine's stack.
type PanicError struct {
	Value any
	Stack []byte
}

// NewPanicError captures the current stack; call it from the deferred recover.
func NewPanicError(v any) *PanicError { return &PanicError{Value: v, Stack: debug.Stack()} }

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v\n%s", e.Value, e.Stack) }

// Unwrap returns the panic value when it is an error.
func (e *PanicError) Unwrap() error {
	if err, ok := e.Value.(error); ok {
		return err
	}
	return nil
}
