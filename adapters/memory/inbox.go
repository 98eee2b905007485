package memory

import (
	"context"
	"fmt"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/switchyard-go/switchyard/pkg/broker"
)

var _ broker.Inboxer = (*Broker)(nil)

// InboxBuffer is how many messages an in-memory inbox holds that its
// reader has not taken yet; SendToInbox fails while it is full.
const InboxBuffer = 1024

// inboxes are the broker's open inboxes by address.
type inboxes struct {
	mu   sync.Mutex
	open map[string]*inbox
}

// OpenInbox implements [broker.Inboxer] with a buffered channel: the
// address is a random id only this broker knows. The inbox is closed by
// its Close or the broker's.
func (b *Broker) OpenInbox(ctx context.Context) (broker.Inbox, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	in := &inbox{
		b:       b,
		address: "inbox." + uuid.NewString(),
		out:     make(chan *message.Message, InboxBuffer),
		done:    make(chan struct{}),
	}
	// Under b.mu, which Close takes to mark the broker closed: the wait
	// group is never added to while Close waits on it.
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed.Load() {
		return nil, fmt.Errorf("memory: open inbox: %w", broker.ErrClosed)
	}
	b.inboxes.mu.Lock()
	if b.inboxes.open == nil {
		b.inboxes.open = map[string]*inbox{}
	}
	b.inboxes.open[in.address] = in
	b.inboxes.mu.Unlock()
	b.wg.Add(1)
	go func() { // close it with the broker
		defer b.wg.Done()
		select {
		case <-b.closing:
			_ = in.Close()
		case <-in.done:
		}
	}()
	return in, nil
}

// SendToInbox implements [broker.Inboxer]: it copies msg into the inbox's
// buffer at once. An unknown or closed address gives an error wrapping
// [broker.ErrNoInbox]; a full buffer an error the sender may retry.
func (b *Broker) SendToInbox(ctx context.Context, address string, msg *message.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.closed.Load() {
		return fmt.Errorf("memory: send to inbox %q: %w", address, broker.ErrClosed)
	}
	b.inboxes.mu.Lock()
	in := b.inboxes.open[address]
	b.inboxes.mu.Unlock()
	if in == nil {
		return fmt.Errorf("memory: send to inbox %q: %w", address, broker.ErrNoInbox)
	}
	return in.put(msg.Copy())
}

type inbox struct {
	b       *Broker
	address string

	mu       sync.Mutex
	out      chan *message.Message
	isClosed bool
	done     chan struct{} // closed by Close
}

func (in *inbox) Address() string                   { return in.address }
func (in *inbox) Messages() <-chan *message.Message { return in.out }

// put hands m to the reader without blocking: the send happens under the
// lock that Close takes, so it never races the channel's close.
func (in *inbox) put(m *message.Message) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.isClosed {
		return fmt.Errorf("memory: send to inbox %q: %w", in.address, broker.ErrNoInbox)
	}
	select {
	case in.out <- m:
		return nil
	default:
		return fmt.Errorf("memory: send to inbox %q: full (%d messages not read)", in.address, InboxBuffer)
	}
}

// Close forgets the inbox and closes its channel. It is idempotent.
func (in *inbox) Close() error {
	in.b.inboxes.mu.Lock()
	delete(in.b.inboxes.open, in.address)
	in.b.inboxes.mu.Unlock()
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.isClosed {
		return nil
	}
	in.isClosed = true
	close(in.out)
	close(in.done)
	return nil
}
