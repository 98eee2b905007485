package broker

import (
	"context"
	"errors"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Inboxer is implemented by brokers that can give a process a private,
// temporary address that only it reads: where the replies of request-reply
// (package service's Request) are sent. An inbox is not a consumer group: nothing
// is kept for it once it is closed or its process is gone, and no other
// process ever receives what is sent to it.
//
// The adapters implement it with what fits the broker: an exclusive,
// auto-delete queue on RabbitMQ (addressed through the default exchange),
// a shared reply topic read without a consumer group and filtered by inbox
// id on Kafka, a channel in memory.
type Inboxer interface {
	// OpenInbox opens a new inbox. Everything sent to its address after
	// OpenInbox returned is handed to the inbox's Messages. It is closed by
	// [Inbox.Close] or when the broker is closed.
	OpenInbox(ctx context.Context) (Inbox, error)
	// SendToInbox sends msg to the inbox at address (an [Inbox.Address],
	// usually another process's) and returns once the broker stored it. An
	// address no inbox reads any more gives an error wrapping [ErrNoInbox]
	// where the broker can tell at once (RabbitMQ, memory); on Kafka the
	// message is stored and ignored by every reader.
	SendToInbox(ctx context.Context, address string, msg *message.Message) error
}

// Inbox is one open inbox of [Inboxer].
type Inbox interface {
	// Address is what a sender passes to [Inboxer.SendToInbox]. It stays
	// the same for the inbox's life, across reconnections.
	Address() string
	// Messages hands out what was sent to the inbox, in arrival order.
	// They need not be acked: an inbox is best effort by design (a message
	// sent while the broker connection is being repaired may be lost, and
	// whoever waits for it times out). The channel is closed by Close or
	// when the broker is closed.
	Messages() <-chan *message.Message
	// Close closes the inbox; what is sent to it afterwards is dropped.
	// It is idempotent.
	Close() error
}

// ErrNoInbox is wrapped by [Inboxer.SendToInbox] when no inbox reads
// address any more (its process closed it, or is gone).
var ErrNoInbox = errors.New("broker: no inbox at this address")
