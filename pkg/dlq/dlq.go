package dlq

import (
	"context"
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/park"
)

// Operations are the dead-letter operations. [Client] runs them on a
// broker; the admin package's client runs them on a running service over
// HTTP, so that the operator CLI works the same through either.
type Operations interface {
	List(ctx context.Context, topic string, f Filter, letters bool) (Summary, error)
	Show(ctx context.Context, topic, id string) (Letter, error)
	Replay(ctx context.Context, topic string, o DrainOptions) (Result, error)
	Purge(ctx context.Context, topic string, o DrainOptions) (Result, error)
	Release(ctx context.Context, group, key string) error
	Parked(ctx context.Context, group string) ([]park.Key, error)
}

// Errors the operations return, to test with [errors.Is].
var (
	// ErrNoBrowser: the broker cannot read messages without consuming them
	// (no [broker.Browser]); List, Show and dry runs need it.
	ErrNoBrowser = errors.New("dlq: broker cannot browse messages without consuming them (no broker.Browser); list, show and dry runs need it")
	// ErrNotFound: no dead letter with that id on the topic.
	ErrNotFound = errors.New("dlq: no such dead letter")
	// ErrNoKeys: parked keys live in a running service; this client was
	// given none ([WithKeys]).
	ErrNoKeys = errors.New("dlq: parked keys are kept by the running service; release them through its admin API")
)

// Keys is where parked keys are released and listed: a running
// *service.Service satisfies it.
type Keys interface {
	ReleaseKey(ctx context.Context, group, key string) error
	ParkedKeys(ctx context.Context, group string) ([]park.Key, error)
}

// Client runs the dead-letter operations on one broker. It is safe for
// concurrent use; it does not own the broker.
type Client struct {
	b    broker.Broker
	keys Keys
	move bool // hand dead letters back by moving them to the topic's end
}

var _ Operations = (*Client)(nil)

// Option configures a [Client].
type Option func(*Client)

// WithKeys gives the client the parked keys of a running service, for
// [Client.Release] and [Client.Parked].
func WithKeys(k Keys) Option { return func(c *Client) { c.keys = k } }

// WithMoveSkipped says how a replay or purge hands back a dead letter it
// leaves (not matching, or without an original topic). false: nack it,
// so it stays where it is. true: publish it again to the end of the
// dead-letter topic and ack the original once the broker confirmed the
// copy. Kafka needs true, and it is the default there: a dead-letter
// topic is a log, and the group's committed offset cannot pass a nacked
// record, so a dead letter replayed or purged behind it would be handed
// out again by the next run. Default false on every other broker.
func WithMoveSkipped(move bool) Option { return func(c *Client) { c.move = move } }

// New returns a client over b.
func New(b broker.Broker, opts ...Option) *Client {
	c := &Client{b: b, move: b.Name() == "kafka"}
	for _, o := range opts {
		o(c)
	}
	return c
}

// browse reads topic's dead letters without consuming them.
func (c *Client) browse(ctx context.Context, topic string, fn func(*message.Message) bool) error {
	if topic == "" {
		return fmt.Errorf("%w: topic is empty, want a dead-letter topic such as inventory.dead_letter", ErrInvalidOption)
	}
	br, ok := c.b.(broker.Browser)
	if !ok {
		return fmt.Errorf("%s: %w", c.b.Name(), ErrNoBrowser)
	}
	if err := br.Browse(ctx, topic, broker.DeadLetterGroup, fn); err != nil {
		return fmt.Errorf("dlq: browse %q: %w", topic, err)
	}
	return nil
}

// List counts the dead letters of topic that pass f, per handler, group
// and reason, without consuming them; with letters it returns each one
// too.
func (c *Client) List(ctx context.Context, topic string, f Filter, letters bool) (Summary, error) {
	if err := f.Validate(); err != nil {
		return Summary{Topic: topic}, fmt.Errorf("%w: %w", ErrInvalidOption, err)
	}
	var ls []Letter
	err := c.browse(ctx, topic, func(m *message.Message) bool {
		if f.Match(m) {
			ls = append(ls, NewLetter(topic, m))
		}
		return true
	})
	if err != nil {
		return Summary{Topic: topic, Groups: []Count{}}, err
	}
	return summarize(topic, ls, letters), nil
}

// Show returns the dead letter of topic whose message id (or event id) is
// id, without consuming it; [ErrNotFound] if there is none.
func (c *Client) Show(ctx context.Context, topic, id string) (Letter, error) {
	if id == "" {
		return Letter{}, fmt.Errorf("%w: id is empty", ErrInvalidOption)
	}
	var found *Letter
	err := c.browse(ctx, topic, func(m *message.Message) bool {
		if m.UUID == id || m.Metadata.Get(header.ID) == id {
			l := NewLetter(topic, m)
			found = &l
			return false
		}
		return true
	})
	if err != nil {
		return Letter{}, err
	}
	if found == nil {
		return Letter{}, fmt.Errorf("%w: %q on %q", ErrNotFound, id, topic)
	}
	return *found, nil
}

// Release unparks key of group (dead_letter_order: key): its later
// messages are handled again instead of following its dead letters.
func (c *Client) Release(ctx context.Context, group, key string) error {
	if c.keys == nil {
		return ErrNoKeys
	}
	if group == "" || key == "" {
		return fmt.Errorf("%w: group %q, key %q: both are required", ErrInvalidOption, group, key)
	}
	return c.keys.ReleaseKey(ctx, group, key)
}

// Parked lists the parked keys of group ("" for every group).
func (c *Client) Parked(ctx context.Context, group string) ([]park.Key, error) {
	if c.keys == nil {
		return nil, ErrNoKeys
	}
	return c.keys.ParkedKeys(ctx, group)
}
