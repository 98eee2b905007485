package command

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// DefaultTopic is the command topic when [Config.Topic] is empty.
const DefaultTopic = "commands"

// Errors.
var (
	// ErrDuplicateHandler is returned by [Handle] for a command type that
	// already has a handler on the bus.
	ErrDuplicateHandler = errors.New("command: command type already has a handler")
	// ErrNoHandler is returned by [Bus.Send] for a command type no handler
	// is registered for on the bus.
	ErrNoHandler = errors.New("command: no handler for command type")
)

// Config configures a [Bus].
type Config struct {
	// Topic is the topic every command is sent to and consumed from,
	// before the service's namespace. Default "commands".
	Topic string `yaml:"topic"`
	// Group is the consumer group of every command handler. Default: the
	// topic.
	Group string `yaml:"group"`
}

func (c *Config) setDefaults() {
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.Group == "" {
		c.Group = c.Topic
	}
}

// Bus sends commands through a service's broker and registers their
// handlers on it. Create it with [New] before the service runs; it is safe
// for concurrent use.
type Bus struct {
	svc    *service.Service
	cfg    Config
	logger *slog.Logger

	reasons []error // see RejectionReasons

	mu       sync.Mutex
	handlers map[string]string // command type -> handler name
	waiters  map[string]chan outcome
}

// Option configures a [Bus] with what only code can supply.
type Option func(*Bus)

// WithLogger sets the logger rejections are logged to; nil discards.
func WithLogger(l *slog.Logger) Option { return func(b *Bus) { b.logger = l } }

// RejectionReasons names the errors a [Reject] may wrap that a sender on
// another instance must still recognise with errors.Is: a rejection that
// travels back to [Bus.SendAndWait] through the broker carries its text
// and which of these errors it wraps, so that errors.Is(err, reason) holds
// for the sender as for the handler. Every instance must list the same
// reasons (they are matched by their text).
func RejectionReasons(errs ...error) Option {
	return func(b *Bus) { b.reasons = append(b.reasons, errs...) }
}

// New returns a bus sending commands through svc's broker.
func New(svc *service.Service, cfg Config, opts ...Option) (*Bus, error) {
	if svc == nil {
		return nil, errors.New("command: service: required")
	}
	cfg.setDefaults()
	b := &Bus{svc: svc, cfg: cfg, handlers: map[string]string{}, waiters: map[string]chan outcome{}}
	for _, o := range opts {
		o(b)
	}
	if b.logger == nil {
		b.logger = slog.New(slog.DiscardHandler)
	}
	return b, nil
}

// Topic returns the command topic, before the service's namespace.
func (b *Bus) Topic() string { return b.cfg.Topic }

// Group returns the consumer group of the command handlers, before the
// service's namespace.
func (b *Bus) Group() string { return b.cfg.Group }

// Handle registers fn as the one handler of command type C, named name
// (names key per-handler configuration, as for [service.Handle]). The
// handler consumes the bus's topic in the bus's group, whatever opts say
// about topic and group; opts set the rest (retry, timeout, concurrency,
// [service.Publishes]). A second handler for C is refused with
// [ErrDuplicateHandler]. An error wrapping [Reject]'s is acknowledged and
// reported to [Bus.SendAndWait]; other errors take the failure path.
func Handle[C event.Event](b *Bus, name string, fn func(ctx context.Context, c C) error, opts ...service.HandlerOption) error {
	var zero C
	typ := zero.EventType()
	b.mu.Lock()
	if other, ok := b.handlers[typ]; ok {
		b.mu.Unlock()
		return fmt.Errorf("%w: %s is handled by %q, refusing %q: a command has exactly one handler", ErrDuplicateHandler, typ, other, name)
	}
	b.handlers[typ] = name // reserved while service.Handle runs
	b.mu.Unlock()

	opts = append(opts, service.Topic(b.cfg.Topic), service.Group(b.cfg.Group), service.Publishes(outcomeReply{}),
		service.OnDuplicate(func(ctx context.Context) {
			// Its outcome is not kept: say so rather than let the sender wait.
			b.finish(ctx, middleware.DeliveryFrom(ctx), outcome{err: ErrAlreadyHandled})
		}))
	err := service.Handle(b.svc, name, func(ctx context.Context, c C) error {
		return b.handle(ctx, name, func(ctx context.Context) error { return fn(ctx, c) })
	}, opts...)
	if err != nil {
		b.mu.Lock()
		delete(b.handlers, typ)
		b.mu.Unlock()
		return err
	}
	return nil
}

// handle runs one attempt of a command handler and reports its outcome to
// the SendAndWait waiting for it once the outcome is final.
func (b *Bus) handle(ctx context.Context, name string, fn func(context.Context) error) error {
	res := &result{}
	err := fn(context.WithValue(ctx, resultKey{}, res))
	d := middleware.DeliveryFrom(ctx)
	if d == nil {
		return err
	}
	var rej *RejectedError
	switch {
	case err == nil:
		b.finish(ctx, d, outcome{version: res.version})
		return nil
	case errors.As(err, &rej):
		b.logger.LogAttrs(ctx, slog.LevelInfo, "command rejected",
			slog.String("handler", name), slog.String("command", d.Envelope.Type),
			slog.String("id", d.Envelope.ID), slog.String("reason", rej.Err.Error()))
		b.finish(ctx, d, outcome{version: res.version, err: err})
		return nil
	case failure.IsPermanent(err) || b.lastAttempt(name, d):
		b.finish(ctx, d, outcome{err: fmt.Errorf("%w: %w", ErrFailed, err), cause: err})
	}
	return err
}

// finish hands a command's final outcome to the SendAndWait waiting for
// it: in this process directly, with the handler's own error, or else
// through the broker to the sender's inbox, if the command came with one
// (it was sent with SendAndWait, not Send). Both, when a SendAndWait here
// waits for the id but this message came from another instance's (one
// idempotency key sent through two instances at once).
func (b *Bus) finish(ctx context.Context, d *middleware.Delivery, o outcome) {
	replyTo := d.Msg.Metadata[header.ReplyTo]
	if b.resolve(d.Envelope.ID, o) && (replyTo == "" || replyTo == b.svc.ReplyAddress()) {
		return
	}
	reply, rerr := b.encode(o)
	if err := service.Answer(ctx, b.svc, reply, rerr); err != nil {
		d.Logger().Warn("the sender of a command was not told its outcome; it will time out", slog.Any("error", err))
	}
}

// lastAttempt reports whether the failed attempt of d is the handler's
// last before its message is dead-lettered, as the retry middleware
// decides: by attempts, or by the time since the first failure.
func (b *Bus) lastAttempt(name string, d *middleware.Delivery) bool {
	p, ok := b.svc.PolicyOf(name)
	if !ok {
		return true
	}
	r := p.Retry.WithDefaults()
	if d.Attempt >= r.MaxAttempts {
		return true
	}
	return r.MaxElapsed > 0 && !d.FirstFailure.IsZero() && time.Since(d.FirstFailure) >= r.MaxElapsed
}

// SendOption adjusts one send.
type SendOption func(*sendSpec)

type sendSpec struct{ id string }

// WithID sets the command's message id instead of a generated UUIDv7. With
// deduplication on (service.WithIdempotency), a client's idempotency key
// as the id makes a command sent twice be handled once.
func WithID(id string) SendOption { return func(s *sendSpec) { s.id = id } }

// Send publishes cmd to the command topic and returns its message id once
// the broker confirmed it. From a handler's context it keeps the chain
// (correlation id, causation id = the handled message, hop count) and the
// handler must declare cmd with [service.Publishes]. Its key is cmd's
// EventKey, if it has one: commands to one aggregate keep their order. A
// command type without a handler on the bus is refused with
// [ErrNoHandler].
func (b *Bus) Send(ctx context.Context, cmd event.Event, opts ...SendOption) (string, error) {
	spec, err := b.spec(cmd, opts)
	if err != nil {
		return "", err
	}
	return spec.id, b.publish(ctx, cmd, spec)
}

func (b *Bus) spec(cmd event.Event, opts []SendOption) (sendSpec, error) {
	var spec sendSpec
	for _, o := range opts {
		o(&spec)
	}
	if cmd == nil {
		return spec, errors.New("command: send: command is nil")
	}
	b.mu.Lock()
	_, ok := b.handlers[cmd.EventType()]
	b.mu.Unlock()
	if !ok {
		return spec, fmt.Errorf("%w: %s (register one with command.Handle)", ErrNoHandler, cmd.EventType())
	}
	if spec.id == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return spec, fmt.Errorf("command: send %s: %w", cmd.EventType(), err)
		}
		spec.id = id.String()
	}
	return spec, nil
}

func (b *Bus) publish(ctx context.Context, cmd event.Event, spec sendSpec) error {
	if err := b.svc.Publish(ctx, cmd, service.ToTopic(b.cfg.Topic), service.WithID(spec.id)); err != nil {
		return fmt.Errorf("command: send %s: %w", cmd.EventType(), err)
	}
	return nil
}
