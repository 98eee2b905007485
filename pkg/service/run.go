package service

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
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
	seed        maphash.Seed
	workers     []chan *message.Message
	nextWorker  int
	onNack      func(name string)
	inbound     func(topic string, msg *message.Message) error // Service.normalizeInbound
	handlerCtx  context.Context
	handlerStop context.CancelFunc
}

// Run subscribes every handler and processes messages until ctx is
// cancelled, then shuts down gracefully (see the package doc). It returns
// nil after a clean shutdown, or the error that stopped it.
func (s *Service) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return ErrAlreadyRunning
	}
	s.running = true
	consumers, err := s.plan()
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if err := s.honour(consumers); err != nil {
		return err
	}
	s.describe(consumers)
	s.warnCycles()
	if err := s.provisionDeadLetters(ctx, consumers); err != nil {
		return err
	}

	// Handlers run under their own context: cancelling Run's context stops
	// intake only. The handler context is cancelled when the shutdown
	// timeout passes (Watermill #446 is what this avoids).
	handlerCtx, stopHandlers := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHandlers()
	intakeCtx, stopIntake := context.WithCancel(ctx)
	defer stopIntake()

	var wg sync.WaitGroup
	for _, c := range consumers {
		c.handlerCtx, c.handlerStop = handlerCtx, stopHandlers
		sub, err := s.broker.Subscriber(c.key.group, c.opts)
		if err != nil {
			stopIntake()
			wg.Wait()
			closeAll(consumers) // the subscribers opened before this one
			return fmt.Errorf("service: subscriber for group %q: %w", c.key.group, err)
		}
		c.sub = sub
		msgs, err := sub.Subscribe(intakeCtx, c.key.topic)
		if err != nil {
			stopIntake()
			wg.Wait()
			closeAll(consumers)
			return fmt.Errorf("service: subscribe group %q to %q: %w", c.key.group, c.key.topic, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.run(intakeCtx, msgs)
		}()
	}
	close(s.ready)
	s.logger.Info("service running", slog.Int("subscriptions", len(consumers)), slog.String("broker", s.broker.Name()))

	<-ctx.Done()
	s.logger.Info("shutting down: intake stopped, waiting for in-flight handlers", slog.Duration("timeout", s.shutdownTimeout))
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	timer := time.NewTimer(s.shutdownTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		s.logger.Warn("shutdown timeout: cancelling in-flight handlers; their messages will be redelivered")
		stopHandlers()
		<-done
	}
	return closeAll(consumers)
}

func closeAll(consumers []*consumer) error {
	var err error
	for _, c := range consumers {
		if c.sub != nil {
			err = errors.Join(err, c.sub.Close())
		}
	}
	return err
}

// plan groups handlers into consumers, one per (group, topic).
func (s *Service) plan() ([]*consumer, error) {
	if len(s.handlers) == 0 {
		return nil, errors.New("service: no handlers registered")
	}
	var out []*consumer
	for _, h := range s.handlers {
		k := consumerKey{h.info.Group, h.info.Topic}
		c, ok := s.consumers[k]
		if !ok {
			c = &consumer{
				key:      k,
				byType:   map[string]*handler{},
				registry: s.registry,
				logger:   s.logger,
				seed:     maphash.MakeSeed(),
				onNack:   s.recorder.Nacked,
				inbound:  s.normalizeInbound,
			}
			reject := &handler{
				info:   middleware.Info{Name: h.info.Group + "/dispatch", Group: h.info.Group, Topic: h.info.Topic},
				policy: h.policy,
			}
			c.reject = reject
			c.rejectChain = func(cause error) middleware.Handler {
				return s.buildChain(reject, func(context.Context, *middleware.Delivery) error { return cause })
			}
			s.consumers[k] = c
			out = append(out, c)
		}
		c.byType[h.info.EventType] = h
		c.concurrency = max(c.concurrency, h.policy.Concurrency)
		c.opts.Prefetch = max(c.opts.Prefetch, h.policy.Prefetch)
		c.opts.Ordered = c.opts.Ordered || h.policy.Ordered
	}
	return out, nil
}

// honour refuses to start when a handler's policy asks for something the
// broker cannot do, rather than silently doing less.
func (s *Service) honour(consumers []*consumer) error {
	caps := s.broker.Capabilities()
	_, canDelay := s.broker.(broker.Delayer)
	var errs error
	for _, c := range consumers {
		for _, h := range c.byType {
			p := h.policy
			if p.Ordered && caps.Ordering == broker.OrderNone {
				errs = errors.Join(errs, fmt.Errorf("handlers.%s.ordered: true, but broker %s keeps no order", h.info.Name, s.broker.Name()))
			}
			if !canDelay && p.MaxInProcessWait > 0 && p.Retry.MaxAttempts > 1 && p.Retry.MaxInterval > p.MaxInProcessWait {
				errs = errors.Join(errs, fmt.Errorf(
					"handlers.%s: retry waits up to %s (retry.max_interval) but broker %s cannot delay redelivery beyond max_in_process_wait (%s); "+
						"lower retry.max_interval, or set max_in_process_wait: -1 to sleep in the consumer (holding its slot)",
					h.info.Name, p.Retry.MaxInterval, s.broker.Name(), p.MaxInProcessWait))
			}
		}
	}
	if errs != nil {
		return fmt.Errorf("service: a configured policy cannot be honoured on this broker:\n%w", errs)
	}
	return nil
}

// provisionDeadLetters makes sure every dead-letter topic keeps its
// messages for operators before the first one is written.
func (s *Service) provisionDeadLetters(ctx context.Context, consumers []*consumer) error {
	p, ok := s.broker.(broker.Provisioner)
	if !ok {
		return nil
	}
	done := map[string]bool{}
	for _, c := range consumers {
		for _, h := range append(mapsValues(c.byType), c.reject) {
			topic := h.policy.DeadLetterTopic
			if done[topic] {
				continue
			}
			done[topic] = true
			if err := p.Provision(ctx, topic, broker.DeadLetterGroup); err != nil {
				return fmt.Errorf("service: provision dead-letter topic %q: %w", topic, err)
			}
		}
	}
	return nil
}

func mapsValues(m map[string]*handler) []*handler {
	out := make([]*handler, 0, len(m))
	for _, h := range m {
		out = append(out, h)
	}
	return out
}

// describe logs what each handler really gets on this broker.
func (s *Service) describe(consumers []*consumer) {
	caps := s.broker.Capabilities()
	for _, c := range consumers {
		for _, h := range c.byType {
			retryMode := "in-process"
			if caps.DelayedRedelivery && h.policy.MaxInProcessWait > 0 {
				retryMode = fmt.Sprintf("in-process up to %s, then broker-delayed", h.policy.MaxInProcessWait)
			}
			s.logger.Info("handler",
				slog.String("handler", h.info.Name),
				slog.String("group", h.info.Group),
				slog.String("topic", h.info.Topic),
				slog.String("event_type", h.info.EventType),
				slog.String("delivery", caps.Delivery),
				slog.String("ordering", string(caps.Ordering)),
				slog.String("retry", retryMode),
				slog.Int("max_attempts", h.policy.Retry.MaxAttempts),
				slog.String("dead_letter_topic", h.policy.DeadLetterTopic),
				slog.Int("concurrency", c.concurrency))
		}
	}
}

// run dispatches messages to workers: messages with the same key always go
// to the same worker, so they are handled in order; messages without a key
// are spread round-robin. A full worker blocks dispatch (backpressure).
//
// Once intake is cancelled, messages the broker already handed out but no
// worker started are nacked, so they go back to the group (another instance
// or the next start) instead of delaying shutdown.
func (c *consumer) run(intake context.Context, msgs <-chan *message.Message) {
	c.workers = make([]chan *message.Message, c.concurrency)
	var wg sync.WaitGroup
	for i := range c.workers {
		ch := make(chan *message.Message, 1)
		c.workers[i] = ch
		wg.Add(1)
		go func() {
			defer wg.Done()
			for msg := range ch {
				c.process(msg)
			}
		}()
	}
	// Each step first tries the channel operation alone, which is much
	// cheaper than a two-way select when it succeeds (the usual case under
	// load); intake's Err is one atomic load.
dispatch:
	for intake.Err() == nil {
		var msg *message.Message
		var ok bool
		select {
		case msg, ok = <-msgs:
		default:
			select {
			case <-intake.Done():
				break dispatch
			case msg, ok = <-msgs:
			}
		}
		if !ok {
			break dispatch
		}
		_ = c.inbound(c.key.topic, msg) // before pick, so a mapped key chooses the worker; process reports errors
		ch := c.workers[c.pick(msg.Metadata[header.Key])]
		select {
		case ch <- msg:
			continue
		default:
		}
		select {
		case ch <- msg:
		case <-intake.Done():
			msg.Nack()
			break dispatch
		}
	}
	go func() {
		for msg := range msgs { // the adapter closes msgs once intake stopped
			msg.Nack()
		}
	}()
	for _, ch := range c.workers {
		close(ch)
	}
	wg.Wait()
}

func (c *consumer) pick(key string) int {
	n := len(c.workers)
	if n == 1 {
		return 0
	}
	if key == "" {
		c.nextWorker = (c.nextWorker + 1) % n
		return c.nextWorker
	}
	return int(maphash.String(c.seed, key) % uint64(n))
}

// process runs one message through its handler's stack and acks or nacks it.
func (c *consumer) process(msg *message.Message) {
	inErr := c.inbound(c.key.topic, msg) // a no-op after dispatch's call, unless that one failed (WithInbound)
	env, envErr := event.ReadEnvelope(msg)
	if inErr != nil {
		envErr = inErr // dead-lettered, with the mapping's reason
	}
	if target := msg.Metadata[header.RetryTarget]; target != "" && target != c.key.group {
		msg.Ack() // a delayed retry or replay addressed to another group
		return
	}
	h := c.byType[env.Type]
	var rejectErr error
	switch {
	case envErr != nil:
		rejectErr = envErr
	case h == nil && c.registry.Known(env.Type):
		msg.Ack() // a type this group does not handle
		return
	case h == nil:
		rejectErr = failure.WithReason(failure.ReasonUnknownType,
			fmt.Errorf("event type %q is not handled by group %q on topic %q and not known to this service", env.Type, c.key.group, c.key.topic))
	}
	var chain middleware.Handler
	if rejectErr != nil {
		// Rare, so building a chain per rejected message is fine. h may be
		// nil here (unknown type, or no type at all): don't touch it.
		h, chain = c.reject, c.rejectChain(rejectErr)
	} else {
		chain = h.chain
	}
	d := &middleware.Delivery{Msg: msg, Envelope: env, Handler: &h.info, Attempt: attemptOf(msg), Received: time.Now()}
	if ff := msg.Metadata[header.FirstFailure]; ff != "" {
		d.FirstFailure, _ = time.Parse(time.RFC3339Nano, ff)
	}
	if err := chain(c.handlerCtx, d); err != nil {
		c.onNack(h.info.Name)
		msg.Nack()
		return
	}
	msg.Ack()
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
