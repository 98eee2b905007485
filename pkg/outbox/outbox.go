package outbox

import (
	"context"
	"errors"
	"fmt"

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
	// Attempts is how many publishes of this record have failed so far.
	Attempts int
}

// Key returns the record's ordering key, or "".
func (r Record) Key() string { return r.Message.Metadata.Get(header.Key) }

// Store is where the outbox keeps messages until they are published. The
// writing side (adding messages in the business transaction) is specific to
// each database and is not part of this interface.
type Store interface {
	// Fetch starts a batch of up to limit unpublished records in insertion
	// order, which this batch alone may publish until it ends. It leaves out
	// records locked by another batch and records whose key has an earlier
	// unpublished record outside this batch, so per-key order holds across
	// relays. An empty batch must still be ended.
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
	// error, for operators). The record stays unpublished.
	MarkFailed(ctx context.Context, id int64, cause error) error
	// Commit makes the marks durable and releases every record of the
	// batch; unmarked records are fetched again by a later batch.
	Commit(ctx context.Context) error
	// Rollback discards the marks and releases the records. It is a no-op
	// after Commit.
	Rollback(ctx context.Context) error
}

// Waker is implemented by stores that can tell a relay that records were
// added, so that it does not wait for its next poll.
type Waker interface {
	// Listen returns a channel that receives a value soon after records
	// are committed. The channel is closed once ctx is done. Wake-ups may
	// be lost or spurious; the relay still polls.
	Listen(ctx context.Context) (<-chan struct{}, error)
}
