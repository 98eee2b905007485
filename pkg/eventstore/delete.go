package eventstore

import (
	"context"
	"errors"
	"fmt"
)

// ErrStreamDeleted is returned (wrapped) by Append to a stream that was
// deleted with [Delete], and by [Repository.Load] of one.
var ErrStreamDeleted = errors.New("eventstore: stream deleted")

// StreamDeleted is the tombstone [Delete] appends: the last event of a
// deleted stream. Projections that keep rows per stream can handle it
// (projection.Handle) and find the stream in the envelope's key.
type StreamDeleted struct {
	// Reason says why, for the audit trail.
	Reason string `json:"reason,omitempty"`
}

// EventType implements event.Event.
func (StreamDeleted) EventType() string { return StreamDeletedType }

// EventVersion implements event.Event.
func (StreamDeleted) EventVersion() int { return 1 }

// StreamDeletedType is the type name of [StreamDeleted].
const StreamDeletedType = "switchyard.stream_deleted"

// Delete soft-deletes a stream that is at expectedVersion: it appends a
// [StreamDeleted] tombstone, with the same optimistic concurrency as any
// append, after which the stores refuse appends to the stream
// ([ErrStreamDeleted]) and [Repository.Load] fails with it. Nothing is
// erased: Load and ReadAll still return the stream's events and the
// tombstone, so history, rebuilds and audits keep them.
func Delete(ctx context.Context, s Store, streamID string, expectedVersion int, reason string) error {
	if expectedVersion == AnyVersion || expectedVersion < 1 {
		return fmt.Errorf("eventstore: delete %q: expected version %d, want the stream's version (>= 1)", streamID, expectedVersion)
	}
	return s.Append(ctx, streamID, expectedVersion, StreamDeleted{Reason: reason})
}

// DeletedError builds the error of an append to a deleted stream, for
// Store implementations.
func DeletedError(streamID string) error {
	return fmt.Errorf("eventstore: append to %q: %w", streamID, ErrStreamDeleted)
}
