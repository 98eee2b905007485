package outbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// Message is one message to publish later: the topic and the broker message
// as [service.Service.NewMessage] builds it.
type Message struct {
	Topic   string
	Message *message.Message
}

// Key returns the message's ordering key ([header.Key]), or "".
func (m Message) Key() string {
	if m.Message == nil {
		return ""
	}
	return m.Message.Metadata.Get(header.Key)
}

// Validate reports a message that cannot be stored.
func (m Message) Validate() error {
	var err error
	if m.Topic == "" {
		err = errors.Join(err, errors.New("outbox: message topic is empty"))
	}
	if m.Message == nil {
		err = errors.Join(err, errors.New("outbox: message is nil"))
	} else if m.Message.UUID == "" {
		err = errors.Join(err, fmt.Errorf("outbox: message to %q has no UUID", m.Topic))
	}
	return err
}

// New builds the message svc.Publish would send for e, for storing in an
// outbox. Called with a handler's context it continues that message's chain
// (correlation, causation, hop count) like Publish does.
func New(ctx context.Context, svc *service.Service, e event.Event, opts ...service.PublishOption) (Message, error) {
	msg, topic, err := svc.NewMessage(ctx, e, opts...)
	if err != nil {
		return Message{}, err
	}
	return Message{Topic: topic, Message: msg}, nil
}

// Record is a stored message read back by a relay.
type Record struct {
	// ID orders records: a later insert has a higher id.
	ID int64
	// Topic and Message as they were added. Message.Metadata is a fresh copy.
	Topic   string
	Message *message.Message
	// Attempts is how many publishes of this record have failed so far
	// (since it was last unparked).
	Attempts int
}

// Key returns the record's ordering key, or "".
func (r Record) Key() string { return r.Message.Metadata.Get(header.Key) }

// Store is where the outbox keeps messages until they are published. The
// writing side (adding messages in the business transaction) is specific to
// each database and is not part of this interface.
type Store interface {
	// Fetch starts a batch of up to limit unpublished records in insertion
	// order, which this batch alone may publish until it ends. It leaves
	// out records that are parked or not due yet (a failed publish waits
	// for its retry time), records locked by another batch, and records
	// whose key has an earlier unpublished record outside this batch, so
	// per-key order holds across relays and a failing record holds back
	// only the records of its own key. An empty batch must still be ended.
	Fetch(ctx context.Context, limit int) (Batch, error)
}

// Batch is a set of records locked for publishing. Its marks take effect
// together when it is committed.
type Batch interface {
	// Records returns the batch's records in insertion order.
	Records() []Record
	// MarkPublished marks records as published: once committed they are
	// never fetched again.
	MarkPublished(ctx context.Context, ids ...int64) error
	// MarkFailed records a failed publish of a record (attempt count and
	// error, for operators). The record stays unpublished and is not
	// fetched again, nor are later records of its key, before retryIn has
	// passed (on the store's clock).
	MarkFailed(ctx context.Context, id int64, cause error, retryIn time.Duration) error
	// Park records a failed publish of a record and parks it: it is kept,
	// unpublished, with its attempts and last error, and it is not fetched
	// again, nor are later records of its key, until an operator unparks
	// it ([Parker]).
	Park(ctx context.Context, id int64, cause error) error
	// Commit makes the marks durable and releases every record of the
	// batch; unmarked records are fetched again by a later batch.
	Commit(ctx context.Context) error
	// Rollback discards the marks and releases the records. It is a no-op
	// after Commit.
	Rollback(ctx context.Context) error
}

// Parked is a record the relay gave up on after [Relay.MaxAttempts]
// failed publishes.
type Parked struct {
	ID        int64
	Topic     string
	Key       string
	MessageID string
	// Attempts is how many publishes failed before it was parked.
	Attempts int
	// LastError is the error of the last failed publish.
	LastError string
	CreatedAt time.Time
	ParkedAt  time.Time
	// Held is how many unpublished records of the same key wait behind
	// it (0 for a record without a key).
	Held int
}

// Parker is implemented by stores whose parked records an operator can
// list and unpark (the CLI's "switchyard outbox list" and "retry").
type Parker interface {
	// Parked returns up to limit parked records, oldest first.
	Parked(ctx context.Context, limit int) ([]Parked, error)
	// Unpark makes the given parked records due again with a fresh count
	// of attempts, and returns how many it unparked. Unknown or not
	// parked ids are ignored. Records of their keys follow them in order.
	Unpark(ctx context.Context, ids ...int64) (int, error)
	// UnparkAll unparks every parked record, after an outage or once the
	// cause is fixed, and returns how many.
	UnparkAll(ctx context.Context) (int, error)
}

// Waker is implemented by stores that can tell a relay that records were
// added, so that it does not wait for its next poll.
type Waker interface {
	// Listen returns a channel that receives a value soon after records
	// are committed. The channel is closed once ctx is done. Wake-ups may
	// be lost or spurious; the relay still polls.
	Listen(ctx context.Context) (<-chan struct{}, error)
}
