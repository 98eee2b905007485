package saga

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// ErrUnknown is wrapped by the error a saga's handler returns for an event
// that does not start the saga and finds no instance to advance: it is
// permanent, so the event is dead-lettered at once (nothing lost; replay it
// once the instance exists).
var ErrUnknown = errors.New("saga: no instance for this event")

// appliedKept is how many applied message ids an instance remembers to
// recognise redeliveries.
const appliedKept = 32

// Saga is a process manager with state S (JSON-encodable), one instance per
// correlation id. Register its steps with [Start] and [On] before the
// service runs.
type Saga[S any] struct {
	svc       *service.Service
	name      string
	store     Store
	publishes []event.Event
	handler   []service.HandlerOption
	logger    *slog.Logger
}

// Option configures a [Saga].
type Option func(*settings)

type settings struct {
	publishes []event.Event
	handler   []service.HandlerOption
	logger    *slog.Logger
}

// Publishes declares what the saga's steps may publish or schedule as
// timeouts (see [service.Publishes]), for every step.
func Publishes(events ...event.Event) Option {
	return func(s *settings) { s.publishes = append(s.publishes, events...) }
}

// HandlerOptions are given to the service handler of every step (a retry
// policy, concurrency, a timeout); a step's own options come after them.
// The consumer group is always the saga's name.
func HandlerOptions(opts ...service.HandlerOption) Option {
	return func(s *settings) { s.handler = append(s.handler, opts...) }
}

// WithLogger logs events ignored because their instance completed.
func WithLogger(l *slog.Logger) Option { return func(s *settings) { s.logger = l } }

// New returns the saga named name (its consumer group, the prefix of its
// handlers' names and its key in store) on svc.
func New[S any](svc *service.Service, name string, store Store, opts ...Option) *Saga[S] {
	var st settings
	for _, o := range opts {
		o(&st)
	}
	if st.logger == nil {
		st.logger = slog.New(slog.DiscardHandler)
	}
	return &Saga[S]{svc: svc, name: name, store: store, publishes: st.publishes, handler: st.handler, logger: st.logger}
}

// Name is the saga's name.
func (sg *Saga[S]) Name() string { return sg.name }

// Step is what a saga does with one event: read and change in.State,
// publish with in.Publish, schedule timeouts with in.Timeout, finish with
// in.Complete. An error saves nothing and publishes nothing: the delivery
// is retried (or dead-lettered) like any handler's.
type Step[S any, T event.Event] func(ctx context.Context, in *Instance[S], e T) error

// Start registers fn for events of type T that start an instance: the one
// with id correlate(e) is created if it does not exist (in.New() says so);
// an existing one is advanced as by [On].
func Start[T event.Event, S any](sg *Saga[S], correlate func(T) string, fn Step[S, T], opts ...service.HandlerOption) error {
	return handle(sg, true, correlate, fn, opts)
}

// On registers fn for events of type T that advance an instance: the one
// with id correlate(e). An event for an instance that completed is
// acknowledged and ignored (late replies and timeouts are normal); one
// for an instance that does not exist fails with [ErrUnknown] and is
// dead-lettered.
func On[T event.Event, S any](sg *Saga[S], correlate func(T) string, fn Step[S, T], opts ...service.HandlerOption) error {
	return handle(sg, false, correlate, fn, opts)
}

func handle[T event.Event, S any](sg *Saga[S], starts bool, correlate func(T) string, fn Step[S, T], opts []service.HandlerOption) error {
	if sg.store == nil {
		return fmt.Errorf("saga %s: store is nil", sg.name)
	}
	var zero T
	all := append([]service.HandlerOption{service.Publishes(sg.publishes...)}, sg.handler...)
	all = append(all, opts...)
	all = append(all, service.Group(sg.name))
	return service.Handle(sg.svc, sg.name+"."+zero.EventType(), func(ctx context.Context, e T) error {
		id := correlate(e)
		if id == "" {
			return failure.Permanent(fmt.Errorf("saga %s: %s has no correlation id", sg.name, e.EventType()))
		}
		return sg.apply(ctx, id, starts, func(ctx context.Context, in *Instance[S]) error { return fn(ctx, in, e) })
	}, all...)
}

// apply runs one step on instance id: load, make good what an earlier step
// left unpublished, decide, save (optimistically), publish.
func (sg *Saga[S]) apply(ctx context.Context, id string, starts bool, step func(context.Context, *Instance[S]) error) error {
	msgID := ""
	if d := middleware.DeliveryFrom(ctx); d != nil {
		msgID = d.Envelope.ID
	}
	rec, err := sg.store.Load(ctx, sg.name, id)
	if err != nil {
		return fmt.Errorf("saga %s %q: load: %w", sg.name, id, err)
	}
	if rec.Pending != nil {
		// A step saved but may have died before its publishes were
		// confirmed: publish them (again; their ids are fixed) first.
		if err := sg.flush(ctx, id, rec.Version, rec.Pending); err != nil {
			return err
		}
	}
	if msgID != "" && slices.Contains(rec.Applied, msgID) {
		return nil // a redelivery of a step that was saved
	}
	if rec.Completed {
		sg.logger.Debug("saga: event for a completed instance ignored", "saga", sg.name, "id", id, "message_id", msgID)
		return nil
	}
	in := &Instance[S]{ID: id, sg: sg.name, msgID: msgID, isNew: rec.Version == 0, svc: sg.svc}
	if rec.Version == 0 {
		if !starts {
			return failure.Permanent(fmt.Errorf("saga %s %q: %w", sg.name, id, ErrUnknown))
		}
	} else if err := json.Unmarshal(rec.State, &in.State); err != nil {
		return failure.Permanent(fmt.Errorf("saga %s %q: decode state: %w", sg.name, id, err))
	}
	if err := step(ctx, in); err != nil {
		return err
	}
	state, err := json.Marshal(in.State)
	if err != nil {
		return failure.Permanent(fmt.Errorf("saga %s %q: encode state: %w", sg.name, id, err))
	}
	next := Record{State: state, Version: rec.Version + 1, Completed: in.done, Applied: rec.Applied}
	if msgID != "" {
		next.Applied = append(next.Applied, msgID)
		if n := len(next.Applied); n > appliedKept {
			next.Applied = next.Applied[n-appliedKept:]
		}
	}
	if len(in.out) > 0 {
		if next.Pending, err = json.Marshal(in.out); err != nil {
			return fmt.Errorf("saga %s %q: encode pending: %w", sg.name, id, err)
		}
	}
	if err := sg.store.Save(ctx, sg.name, id, next); err != nil {
		return err // a conflict is transient: the retry decides on the new state
	}
	if next.Pending != nil {
		return sg.flush(ctx, id, next.Version, next.Pending)
	}
	return nil
}

// flush publishes and schedules what the save at version decided, then
// forgets it.
func (sg *Saga[S]) flush(ctx context.Context, id string, version int64, pending []byte) error {
	var out []outgoing
	if err := json.Unmarshal(pending, &out); err != nil {
		return failure.Permanent(fmt.Errorf("saga %s %q: decode pending: %w", sg.name, id, err))
	}
	for _, o := range out {
		msg := message.NewMessage(o.ID, o.Payload)
		msg.Metadata = o.Metadata
		if o.At != nil {
			sch := sg.svc.Scheduler()
			if sch == nil {
				return service.ErrNoScheduler
			}
			msg.SetContext(ctx)
			if err := sch.Schedule(ctx, o.Topic, msg, *o.At); err != nil {
				return fmt.Errorf("saga %s %q: schedule timeout: %w", sg.name, id, err)
			}
			continue
		}
		if err := sg.svc.PublishMessage(ctx, o.Topic, msg); err != nil {
			return fmt.Errorf("saga %s %q: publish to %q: %w", sg.name, id, o.Topic, err)
		}
	}
	if err := sg.store.ClearPending(ctx, sg.name, id, version); err != nil {
		// Harmless: the next step publishes them again, with the same ids.
		sg.logger.Warn("saga: clear pending", "saga", sg.name, "id", id, "error", err)
	}
	return nil
}

// Snapshot is an instance as stored.
type Snapshot[S any] struct {
	State     S
	Version   int64 // 0: no such instance
	Completed bool
}

// Get reads instance id.
func (sg *Saga[S]) Get(ctx context.Context, id string) (Snapshot[S], error) {
	rec, err := sg.store.Load(ctx, sg.name, id)
	if err != nil {
		return Snapshot[S]{}, err
	}
	snap := Snapshot[S]{Version: rec.Version, Completed: rec.Completed}
	if rec.Version > 0 {
		if err := json.Unmarshal(rec.State, &snap.State); err != nil {
			return snap, fmt.Errorf("saga %s %q: decode state: %w", sg.name, id, err)
		}
	}
	return snap, nil
}

// outgoing is one message a step publishes (At nil) or schedules.
type outgoing struct {
	Topic    string            `json:"topic"`
	ID       string            `json:"id"`
	Metadata map[string]string `json:"metadata"`
	Payload  []byte            `json:"payload"`
	At       *time.Time        `json:"at,omitempty"`
}

// Instance is one saga instance during a step.
type Instance[S any] struct {
	// ID is the correlation id.
	ID string
	// State is the instance's state; the step changes it in place.
	State S

	sg    string
	msgID string
	isNew bool
	done  bool
	out   []outgoing
	svc   *service.Service
}

// New reports whether this step creates the instance.
func (in *Instance[S]) New() bool { return in.isNew }

// Complete marks the instance complete once the step is saved: later
// events for it are ignored.
func (in *Instance[S]) Complete() { in.done = true }

// Publish publishes e once the step is saved, as [service.Service.Publish]
// would from the handler (correlation and causation from the event being
// handled). Its id is derived from the instance and the event being
// handled, so that a retried step publishes the same ids and idempotent
// consumers see it once.
func (in *Instance[S]) Publish(ctx context.Context, e event.Event, opts ...service.PublishOption) error {
	return in.add(ctx, e, nil, opts)
}

// Timeout schedules e for after d from now, once the step is saved, with
// the service's scheduler ([service.WithScheduler]); register a step for
// e's type with [On] to handle it. A timeout for an instance completed by
// then is ignored, so a step that finishes need not cancel it.
func (in *Instance[S]) Timeout(ctx context.Context, d time.Duration, e event.Event, opts ...service.PublishOption) error {
	if in.svc.Scheduler() == nil {
		return service.ErrNoScheduler
	}
	at := time.Now().Add(d)
	return in.add(ctx, e, &at, opts)
}

func (in *Instance[S]) add(ctx context.Context, e event.Event, at *time.Time, opts []service.PublishOption) error {
	id := in.nextID()
	msg, topic, err := in.svc.NewMessage(ctx, e, append([]service.PublishOption{service.WithID(id)}, opts...)...)
	if err != nil {
		return err
	}
	in.out = append(in.out, outgoing{Topic: topic, ID: msg.UUID, Metadata: msg.Metadata, Payload: msg.Payload, At: at})
	return nil
}

// nextID derives the id of the step's next message from the saga, the
// instance, the message being handled and the message's place in the step.
func (in *Instance[S]) nextID() string {
	h := sha256.Sum256([]byte(in.sg + "\x00" + in.ID + "\x00" + in.msgID + "\x00" + strconv.Itoa(len(in.out))))
	h[6] = h[6]&0x0f | 0x80 // UUID version 8 (custom), variant RFC 4122
	h[8] = h[8]&0x3f | 0x80
	s := hex.EncodeToString(h[:16])
	return s[:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
}
