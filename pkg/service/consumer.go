package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/middleware"
)

// consumerKey identifies one subscription: a consumer group on a topic.
type consumerKey struct{ group, topic string }

// consumer is one subscription and the handlers of its group on its topic,
// chosen by event type.
type consumer struct {
	key         consumerKey
	byType      map[string]*handler
	concurrency int
	opts        broker.SubscriberOptions
	// reject dead-letters what no handler can take (bad envelope, unknown
	// type) through the same stack, as if a handler had failed permanently.
	reject      *handler
	rejectChain func(error) middleware.Handler
	sub         message.Subscriber
	registry    *event.Registry
	logger      *slog.Logger
	disp        *dispatcher
	health      *pathHealth
	// lastResort dead-letters a message whose stack panicked outside the
	// handler; see recovered.
	lastResort func(ctx context.Context, d *middleware.Delivery, err error) error
	onNack     func(name string)
	// inbound is Service.normalizeInbound: a foreign message into the
	// header contract, before its key is read.
	inbound    func(topic string, msg *message.Message) error
	handlerCtx context.Context
	// revoked holds, per revocation context of the broker (a Kafka
	// partition's), the handler context its deliveries share; see run.
	revMu   sync.Mutex
	revoked map[context.Context]context.Context
	// parking is the group's parked keys when a handler of c keeps dead
	// letters in key order; parkedChain dead-letters behind a parked key.
	parking     *parking
	parkedChain func(h *handler, key, first string) middleware.Handler
	// flows are the handlers' gates: intake stops while any of them is
	// paused or has its breaker open.
	flows []*flow
}

// plan groups handlers into consumers, one per (group, topic), and refuses
// what one subscription cannot honour for several handlers, and overrides
// for handlers that do not exist.
func (s *Service) plan() ([]*consumer, error) {
	// No handlers is a forgotten registration unless the process said it
	// only publishes: companions alone (the tracing provider, a database
	// pool) are no sign of that, since most services have them.
	switch {
	case len(s.handlers) == 0 && !s.publishOnly:
		return nil, ErrNothingToRun
	case len(s.handlers) > 0 && s.publishOnly:
		return nil, fmt.Errorf("service: PublishOnly, but %d handlers are registered", len(s.handlers))
	}
	var errs error
	byName := map[string]*handler{}
	if p := s.byName.Load(); p != nil {
		byName = *p
	}
	for _, name := range slices.Sorted(maps.Keys(s.overrides)) {
		if byName[name] == nil {
			names := make([]string, 0, len(s.handlers))
			for _, h := range s.handlers {
				names = append(names, h.info.Name)
			}
			slices.Sort(names)
			errs = errors.Join(errs, fmt.Errorf("handlers.%s: no handler of that name is registered (registered: %v)", name, names))
		}
	}
	byKey := map[consumerKey]*consumer{}
	var out []*consumer
	for _, h := range s.handlers {
		k := consumerKey{h.info.Group, h.info.Topic}
		c, ok := byKey[k]
		if !ok {
			c = &consumer{
				key:         k,
				byType:      map[string]*handler{},
				registry:    s.registry,
				logger:      s.logger,
				onNack:      s.recorder.Nacked,
				inbound:     s.normalizeInbound,
				health:      newPathHealth(),
				concurrency: h.policy.Concurrency,
				opts:        broker.SubscriberOptions{Prefetch: h.policy.Prefetch, Ordered: h.policy.IsOrdered(), ExactlyOnce: h.policy.IsExactlyOnce()},
			}
			if h.batch != nil {
				c.concurrency, c.opts.Prefetch = batchSubscription(h.policy)
			}
			byKey[k] = c
			out = append(out, c)
		} else {
			errs = errors.Join(errs, sharedSubscription(c, h))
		}
		c.byType[h.info.EventType] = h
		c.flows = append(c.flows, h.flow)
		if h.policy.DeadLetterOrder == DeadLetterOrderKey {
			c.parking, c.parkedChain = s.parkingFor(h.info.Group), s.parkedChain
		}
	}
	if errs != nil {
		return nil, fmt.Errorf("service: configuration cannot be honoured:\n%w", errs)
	}
	for _, c := range out {
		s.prepareReject(c)
	}
	return out, nil
}

// sharedSubscription refuses a handler whose subscription settings differ
// from those of another handler of the same group and topic: they share one
// subscription, which has one setting, and merging would silently change
// what one of them asked for.
func sharedSubscription(c *consumer, h *handler) error {
	var first *handler
	for _, o := range c.byType {
		if first == nil || o.info.Name < first.info.Name {
			first = o
		}
	}
	if h.batch != nil || first.batch != nil {
		batch, other := h, first
		if h.batch == nil {
			batch, other = first, h
		}
		return fmt.Errorf("handlers.%s: a batch handler, but handler %q shares its subscription (group %q on %q): "+
			"a batch handler's subscription is sized by its batches; give one of them another group",
			batch.info.Name, other.info.Name, c.key.group, c.key.topic)
	}
	var errs error
	differ := func(field string, a, b any) {
		errs = errors.Join(errs, fmt.Errorf(
			"handlers.%s.%s: %v, but handler %q, which shares the subscription of group %q to %q, has %v: "+
				"one subscription has one setting; make them equal or give one handler another group",
			h.info.Name, field, b, first.info.Name, c.key.group, c.key.topic, a))
	}
	if h.policy.Concurrency != c.concurrency {
		differ("concurrency", c.concurrency, h.policy.Concurrency)
	}
	if h.policy.Prefetch != c.opts.Prefetch {
		differ("prefetch", c.opts.Prefetch, h.policy.Prefetch)
	}
	if h.policy.IsOrdered() != c.opts.Ordered {
		differ("ordered", c.opts.Ordered, h.policy.IsOrdered())
	}
	if h.policy.IsExactlyOnce() != c.opts.ExactlyOnce {
		differ("exactly_once", c.opts.ExactlyOnce, h.policy.IsExactlyOnce())
	}
	return errs
}

// prepareReject builds the stack that dead-letters what no handler of c
// can take. Its dead-letter topic is the one every handler of c shares, or
// the group's default when they differ.
func (s *Service) prepareReject(c *consumer) {
	var policy Policy
	topics := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(c.byType)) {
		h := c.byType[name]
		if len(topics) == 0 {
			policy = h.policy
		}
		topics[h.policy.DeadLetterTopic] = true
	}
	if len(topics) > 1 {
		policy.DeadLetterTopic = DeadLetterTopicFor(c.key.group)
	}
	reject := &handler{
		info:   middleware.Info{Name: c.key.group + "/dispatch", Group: c.key.group, Topic: c.key.topic},
		policy: policy,
	}
	c.reject = reject
	c.rejectChain = func(cause error) middleware.Handler {
		return s.buildChain(reject, func(context.Context, *middleware.Delivery) error { return cause })
	}
	dlTopic := policy.DeadLetterTopic
	c.lastResort = func(ctx context.Context, d *middleware.Delivery, err error) error {
		return middleware.DeadLetter(middleware.DeadLetterConfig{
			Publisher: s.publisher,
			Topic:     func(*middleware.Delivery) string { return dlTopic },
			Clock:     s.clock,
			Timeout:   s.failurePathTimeout,
			OnDeadLetter: func(_ *middleware.Delivery, reason failure.Reason, _ error) {
				s.recorder.DeadLettered(d.Handler.Name, string(reason))
			},
		})(func(context.Context, *middleware.Delivery) error { return err })(ctx, d)
	}
}

// errSubscriptionEnded is wrapped by Run's error when a subscription's
// channel closes while the service runs.
var errSubscriptionEnded = errors.New("subscription ended")

// read hands the subscription's messages to the dispatcher until intake is
// cancelled or the channel closes. It returns an error when the channel
// closed while intake was still on: the subscription died.
func (c *consumer) read(intake context.Context, msgs <-chan *message.Message) error {
	for intake.Err() == nil {
		if wait := c.health.backoff(); wait > 0 {
			if (middleware.SystemClock{}).Sleep(intake, wait) != nil {
				break
			}
		}
		if !c.intakeOpen(intake) {
			break
		}
		// The plain receive first: much cheaper than a two-way select when
		// it succeeds, the usual case under load.
		var msg *message.Message
		var ok bool
		select {
		case msg, ok = <-msgs:
		default:
			select {
			case <-intake.Done():
				return nil
			case msg, ok = <-msgs:
			}
		}
		if !ok {
			if intake.Err() != nil {
				return nil
			}
			if f, ok := c.sub.(broker.Failer); ok && f.Failure() != nil {
				return fmt.Errorf("service: group %q on topic %q: %w: %w", c.key.group, c.key.topic, errSubscriptionEnded, f.Failure())
			}
			return fmt.Errorf("service: group %q on topic %q: %w: the broker adapter closed its channel", c.key.group, c.key.topic, errSubscriptionEnded)
		}
		// Before the key is read, so that a key a mapping gives orders
		// handling; process reports the mapping's errors.
		c.normalize(msg)
		if room := c.disp.add(msg, msg.Metadata[header.Key]); room != nil {
			select {
			case <-room:
			case <-intake.Done():
				return nil
			}
		}
	}
	return nil
}

// intakeOpen waits while a handler of c is paused or has its breaker open,
// so that the broker keeps the backlog; false means intake ended.
func (c *consumer) intakeOpen(intake context.Context) bool {
	for again := true; again; {
		again = false
		for _, f := range c.flows {
			if f.blocked.Load() {
				if !f.waitIntake(intake) {
					return false
				}
				again = true // another may have closed meanwhile
			}
		}
	}
	return true
}

// process runs one message through its handler's stack and acks or nacks
// it, reporting whether it acked. No panic gets out of it: a panic outside
// the handler (middleware, a store, the key function, a recorder, the
// dead-letter publisher) is dead-lettered with reason panic, or the message
// is nacked if even that fails.
func (c *consumer) process(w *worker, msg *message.Message) (acked bool) {
	var d *middleware.Delivery
	defer func() {
		if r := recover(); r != nil {
			acked = c.recovered(w, msg, d, failure.NewPanicError(r))
		}
	}()
	inErr := c.inbound(c.key.topic, msg) // a no-op after read's call, unless that one failed
	env, envErr := event.ReadEnvelope(msg)
	if inErr != nil {
		envErr = inErr // dead-lettered, with the mapping's reason
	}
	if target := msg.Metadata[header.RetryTarget]; target != "" && target != c.key.group {
		msg.Ack() // a delayed retry or replay addressed to another group
		return true
	}
	h := c.byType[env.Type]
	var rejectErr error
	switch {
	case envErr != nil:
		rejectErr = envErr
	case h == nil && c.registry.Known(env.Type):
		msg.Ack() // a type this group does not handle
		return true
	case h == nil:
		rejectErr = failure.WithReason(failure.ReasonUnknownType,
			fmt.Errorf("event type %q is not handled by group %q on topic %q and not known to this service", env.Type, c.key.group, c.key.topic))
	}
	var chain middleware.Handler
	head := false // the first dead letter of a parked key, coming back
	switch {
	case rejectErr != nil:
		// Rare, so building a chain per rejected message is fine. h may be
		// nil here (unknown type, or no type at all): don't touch it.
		h, chain = c.reject, c.rejectChain(rejectErr)
	case h.policy.DeadLetterOrder == DeadLetterOrderKey && env.Key != "":
		first, parked, isHead, err := c.parking.check(c.handlerCtx, env.Key, msg.UUID)
		if err != nil {
			// Handling it could overtake a dead letter of its key.
			c.health.failed(err)
			c.logger.Error("cannot tell whether the message's key is parked; nacking", slog.String(middleware.LogKeyMessageID, msg.UUID), slog.Any("error", err))
			c.onNack(h.info.Name)
			msg.Nack()
			return false
		}
		head, chain = isHead, h.chain
		if parked {
			chain = c.parkedChain(h, env.Key, first)
		}
	default:
		chain = h.chain
	}
	w.current.Store(&h.info.Name)
	d = &w.delivery
	*d = middleware.Delivery{Msg: msg, Envelope: env, Handler: &h.info, Attempt: attemptOf(msg), Received: time.Now(), Slot: w, Timer: &w.timer}
	if ff := msg.Metadata[header.FirstFailure]; ff != "" {
		d.FirstFailure, _ = time.Parse(time.RFC3339Nano, ff)
	}
	err := c.run(chain, msg, d)
	c.health.observe(err)
	if err != nil {
		c.onNack(h.info.Name)
		msg.Nack()
		return false
	}
	if head && !d.DeadLettered {
		// The key's first dead letter was handled: its order is restored.
		c.releaseParked(env.Key)
	}
	msg.Ack()
	return true
}

// errRevoked cancels a handler whose message the broker took back.
var errRevoked = errors.New("the broker took the message back (partition revoked in a rebalance)")

// run runs chain for d. A message the broker can take back while it is
// handled (broker.Revocable: a Kafka partition revoked in a rebalance) gets
// a handler context that ends when its revocation context does, shared by
// every message of that revocation context; other messages get the
// service's handler context as it is, at no cost.
func (c *consumer) run(chain middleware.Handler, msg *message.Message, d *middleware.Delivery) error {
	if sc, ok := msg.Context().(broker.Scoped); ok {
		// A transaction's message: what the handler publishes joins it.
		return chain(sc.Scope(c.handlerCtx), d)
	}
	r, ok := msg.Context().(broker.Revocable)
	if !ok {
		return chain(c.handlerCtx, d)
	}
	return chain(c.revocable(r.Revocation()), d)
}

// revocable returns the handler context of the deliveries whose revocation
// context is rev: made once per rev (a partition assignment), not per
// message, so that a Kafka delivery allocates no context and no AfterFunc;
// forgotten once rev is done.
func (c *consumer) revocable(rev context.Context) context.Context {
	c.revMu.Lock()
	defer c.revMu.Unlock()
	if ctx, ok := c.revoked[rev]; ok {
		return ctx
	}
	if c.revoked == nil {
		c.revoked = map[context.Context]context.Context{}
	}
	ctx, cancel := context.WithCancelCause(c.handlerCtx)
	c.revoked[rev] = ctx
	context.AfterFunc(rev, func() {
		cancel(errRevoked)
		c.revMu.Lock()
		delete(c.revoked, rev)
		c.revMu.Unlock()
	})
	return ctx
}

// recovered settles a message whose stack panicked outside the handler:
// the panic is dead-lettered like a handler's, so a panic that recurs on
// every delivery cannot loop; if that fails too, the message is nacked.
func (c *consumer) recovered(w *worker, msg *message.Message, d *middleware.Delivery, perr *failure.PanicError) (acked bool) {
	// Everything here may panic again (the envelope reader, a logger's
	// handler, the publisher): then the message is nacked, never lost.
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("dead-lettering the panic panicked too: %v", r)
			}
		}()
		c.logger.Error("panic outside the handler; dead-lettering the message",
			slog.String("group", c.key.group), slog.String("topic", c.key.topic),
			slog.String(middleware.LogKeyMessageID, msg.UUID), slog.Any("panic", perr.Value))
		if d == nil {
			env, _ := event.ReadEnvelope(msg)
			d = &w.delivery
			*d = middleware.Delivery{Msg: msg, Envelope: env, Handler: &c.reject.info, Attempt: attemptOf(msg), Received: time.Now(), Slot: w}
		}
		return c.lastResort(c.handlerCtx, d, failure.WithReason(failure.ReasonPanic, perr))
	}()
	if err != nil {
		c.health.failed(err)
		func() {
			defer func() { _ = recover() }()
			c.logger.Error("could not dead-letter after a panic; nacking", slog.String(middleware.LogKeyMessageID, msg.UUID), slog.Any("error", err))
		}()
		msg.Nack()
		return false
	}
	msg.Ack()
	return true
}

// releaseParked releases a parked key after its first dead letter was
// handled. The message is handled already: a failure (or a panic in the
// store) is logged, never turned into a dead letter of a handled message.
func (c *consumer) releaseParked(key string) {
	var rerr error
	func() {
		defer func() {
			if r := recover(); r != nil {
				rerr = fmt.Errorf("panic: %v", r)
			}
		}()
		rerr = c.parking.release(c.handlerCtx, key)
	}()
	if rerr != nil {
		c.logger.Error("could not release a parked key after its first dead letter was handled; release it by hand",
			slog.String("group", c.key.group), slog.String("key", key), slog.Any("error", rerr))
	}
}

// normalize is c.inbound for the reader: a panic in a mapping (a malformed
// foreign message) must not take the reader down; process, which recovers,
// meets the same message again and dead-letters it.
func (c *consumer) normalize(msg *message.Message) {
	defer func() { _ = recover() }()
	_ = c.inbound(c.key.topic, msg)
}

// attemptOf is the number of the attempt about to start: one more than the
// attempts a delayed redelivery says were made.
func attemptOf(msg *message.Message) int {
	v := msg.Metadata[header.Attempt]
	if v == "" {
		return 1
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		n = 0
		fmt.Sscan(v, &n) // what a plain decimal is not, read as leniently as ever
	}
	return n + 1
}
