package middleware

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pkg/event"
)

// Info describes the handler a delivery is for.
type Info struct {
	// Name is the handler's unique name.
	Name string
	// Group is the consumer group.
	Group string
	// Topic is the topic consumed.
	Topic string
	// EventType is the type of event the handler consumes.
	EventType string
	// Publishes lists the event types the handler declared it may publish.
	Publishes []string
}

// Delivery is one message on its way through a handler's middleware stack.
// It is valid while its handler runs: the runtime reuses it afterwards, so
// neither it nor the context carrying it may be kept beyond the handler.
type Delivery struct {
	// Msg is the broker message. Middleware must not Ack or Nack it: the
	// runtime does, from the stack's result.
	Msg *message.Message
	// Envelope holds the message's attributes.
	Envelope event.Envelope
	// Handler describes the handler; shared, read-only.
	Handler *Info
	// Attempt is the number of the attempt in progress, starting at 1. It
	// counts attempts made before a delayed redelivery too.
	Attempt int
	// Received is when the runtime took the message from the broker.
	Received time.Time
	// FirstFailure and LastFailure are when attempts failed; zero if none did.
	FirstFailure, LastFailure time.Time
	// Slot, when the runtime sets it, is the concurrency slot the delivery
	// runs in. [Delivery.Wait] gives it up while the delivery waits (a
	// retry backoff, a busy idempotency key), so that other messages run
	// meanwhile, and takes it back before the delivery goes on.
	Slot Slot
	// Timer, when the runtime sets it, bounds each attempt for [Timeout]
	// without a new timer per attempt.
	Timer *AttemptTimer
	// DeadLettered is set by [DeadLetter] once the delivery's dead letter
	// was confirmed: the stack then returns nil, but the handler failed.
	DeadLettered bool

	base   *slog.Logger // set by Correlation; the logger is built on first use
	logger *slog.Logger
	ctx    deliveryContext // the context Correlation hands on, allocated with the delivery
}

// Logger returns a logger carrying the delivery's correlation id, causation
// id, message id, event type and handler. It is built on first use, so
// deliveries that log nothing cost nothing.
func (d *Delivery) Logger() *slog.Logger {
	if d.logger == nil {
		base := d.base
		if base == nil {
			base = discard
		}
		d.logger = base.With(
			slog.String(LogKeyCorrelationID, d.Envelope.CorrelationID),
			slog.String(LogKeyCausationID, d.Envelope.CausationID),
			slog.String(LogKeyMessageID, d.Envelope.ID),
			slog.String(LogKeyEventType, d.Envelope.Type),
			slog.String(LogKeyHandler, d.Handler.Name),
		)
	}
	return d.logger
}

// SetLogger sets the base logger the delivery's logger derives from.
func (d *Delivery) SetLogger(base *slog.Logger) {
	d.base, d.logger = base, nil
}

// Slot is a delivery's share of its subscription's concurrency.
type Slot interface {
	// Release gives the slot up; other messages may start.
	Release()
	// Acquire takes a slot back, waiting for one if needed.
	Acquire()
	// Stopping is closed when the subscription shuts down: a delivery
	// waiting to retry gives up its wait then, and is redelivered later.
	Stopping() <-chan struct{}
}

// ErrStopping is returned by [Delivery.Wait] when the subscription shuts
// down during the wait. The failure path passes it through: the message is
// nacked and redelivered, never dead-lettered for it.
var ErrStopping = errors.New("subscription stopping")

// Wait sleeps for wait on clock, or until ctx is done (returning its
// error), without holding the delivery's [Slot] meanwhile; it returns
// [ErrStopping] if the subscription shuts down first. Middleware that waits
// inside the stack uses it instead of clock.Sleep.
func (d *Delivery) Wait(ctx context.Context, clock Clock, wait time.Duration) error {
	if d.Slot == nil {
		return clock.Sleep(ctx, wait)
	}
	stopping := d.Slot.Stopping()
	select {
	case <-stopping:
		return ErrStopping
	default:
	}
	d.Slot.Release()
	defer d.Slot.Acquire()
	// Waits are the failure path, not the hot path: a goroutine per wait
	// is cheap enough to make the clock's Sleep see the shutdown.
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-stopping:
			cancel(ErrStopping)
		case <-done:
		}
	}()
	err := clock.Sleep(wctx, wait)
	if err != nil && errors.Is(context.Cause(wctx), ErrStopping) {
		return ErrStopping
	}
	return err
}

// Handler processes one delivery. nil means done (the message is acked).
type Handler func(ctx context.Context, d *Delivery) error

// Middleware wraps a Handler.
type Middleware func(next Handler) Handler

// Chain applies middlewares so that the first one given is the outermost.
func Chain(h Handler, mws ...Middleware) Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		if mws[i] != nil {
			h = mws[i](h)
		}
	}
	return h
}

type deliveryKey struct{}

// WithDelivery returns ctx carrying d, so that code called by a handler can
// find the message it is handling (publishing uses it for causation).
func WithDelivery(ctx context.Context, d *Delivery) context.Context {
	return context.WithValue(ctx, deliveryKey{}, d)
}

// deliveryContext is what [WithDelivery] returns, built into the Delivery
// so that the runtime's hot path does not allocate a context per message.
type deliveryContext struct {
	context.Context
	d *Delivery
}

func (c *deliveryContext) Value(key any) any {
	if key == (deliveryKey{}) {
		return c.d
	}
	return c.Context.Value(key)
}

func (c *deliveryContext) String() string { return "middleware.WithDelivery" }

// withContext is WithDelivery(parent, d) without an allocation the first
// time; a delivery bound to a context already (the same delivery through
// Correlation twice) gets an ordinary one.
func (d *Delivery) withContext(parent context.Context) context.Context {
	if d.ctx.d != nil {
		return WithDelivery(parent, d)
	}
	d.ctx = deliveryContext{Context: parent, d: d}
	return &d.ctx
}

// DeliveryFrom returns the delivery being handled, or nil outside a handler.
func DeliveryFrom(ctx context.Context) *Delivery {
	d, _ := ctx.Value(deliveryKey{}).(*Delivery)
	return d
}

// Clock is the time source of retry and dead-lettering; tests inject a fake.
type Clock interface {
	Now() time.Time
	// Sleep waits for d or until ctx is done, returning ctx.Err() then.
	Sleep(ctx context.Context, d time.Duration) error
}

// SystemClock is the real clock.
type SystemClock struct{}

func (SystemClock) Now() time.Time { return time.Now() }

func (SystemClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
