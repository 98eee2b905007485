package service

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/inbound"
	"github.com/switchyard-go/switchyard/pkg/metrics"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/park"
)

// Errors.
var (
	// ErrUndeclaredPublish is returned when a handler publishes an event type
	// it did not declare with [Publishes]. The error is permanent (reason
	// undeclared_publish): a handler returning it is dead-lettered at once.
	ErrUndeclaredPublish = errors.New("service: handler published an undeclared event type")
	// ErrAlreadyRunning is returned by a second Run, or Handle after Run.
	ErrAlreadyRunning = errors.New("service: already running")
)

// Service runs handlers on one broker. Create it with [New], register
// handlers with [Handle], then call [Service.Run].
type Service struct {
	broker         broker.Broker
	publisher      message.Publisher
	registry       *event.Registry
	codec          event.Codec
	source         string
	namespace      string
	logger         *slog.Logger
	clock          middleware.Clock
	tracer         trace.TracerProvider
	stats          metrics.Stats
	recorders      []metrics.Recorder
	recorder       metrics.Recorder
	userMiddleware []middleware.Middleware
	// deliveryMiddleware runs once per delivery, outermost; see
	// WithDeliveryMiddleware.
	deliveryMiddleware []middleware.Middleware
	defaults           Policy
	overrides          map[string]Policy
	shutdownTimeout    time.Duration
	idem               *idempotencySettings // see WithIdempotency
	optErr             error                // what validate found
	// failurePathTimeout bounds each publish of the failure path (a dead
	// letter, a delayed retry), under the handler's context.
	failurePathTimeout time.Duration
	reuseMessages      bool // the broker's Publish copies: see publishPool
	parkStore          park.Store
	parkMu             sync.Mutex
	parkings           map[string]*parking // by consumer group
	// inbound holds WithInbound's mappings by topic, before the namespace.
	inbound map[string]*inbound.Mapping

	mu        sync.Mutex
	handlers  []*handler
	byName    atomic.Pointer[map[string]*handler] // copy of handlers by name, replaced by Handle
	running   bool
	ready     chan struct{}
	consumers []*consumer // of the current Run, for Health

	companions  []Companion               // see WithCompanion
	publishOnly bool                      // see PublishOnly
	scheduler   Scheduler                 // see WithScheduler
	stopping    atomic.Pointer[stopCause] // set while Run shuts down; see ShuttingDown

	requests       requester     // pending requests and their inbox; see Request
	requestTimeout time.Duration // see WithRequestTimeout
}

// New returns a service on broker b. Invalid options (every problem at
// once) are reported by [Handle], [Service.Run] and [Service.Err].
func New(b broker.Broker, opts ...Option) *Service {
	s := &Service{
		broker: b,
		codec:  event.JSON{},
		source: "switchyard",
		clock:  middleware.SystemClock{},
		ready:  make(chan struct{}),
	}
	if b != nil {
		s.publisher = b.Publisher() // before the options, which may wrap it
	}
	for _, o := range opts {
		o(s)
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.registry == nil {
		s.registry = event.NewRegistry()
	}
	s.recorder = &s.stats
	if len(s.recorders) > 0 {
		s.recorder = append(metrics.Multi{&s.stats}, s.recorders...)
	}
	if s.shutdownTimeout == 0 {
		s.shutdownTimeout = DefaultShutdownTimeout
	}
	if s.parkStore == nil {
		s.parkStore = park.NewMemory()
	}
	if s.failurePathTimeout == 0 {
		s.failurePathTimeout = DefaultFailurePathTimeout
	}
	if s.requestTimeout == 0 {
		s.requestTimeout = DefaultRequestTimeout
	}
	s.optErr = s.validate()
	// Only a publisher that says so is known to copy; a wrapper (content
	// mode, Watermill headers, a user's tap) might keep what it is given.
	if cp, ok := s.publisher.(broker.CopyingPublisher); ok {
		s.reuseMessages = cp.PublishCopies()
	}
	return s
}

// validate reports every invalid option at once.
func (s *Service) validate() error {
	var errs error
	if s.broker == nil {
		errs = errors.Join(errs, errors.New("broker: nil"))
	}
	if s.shutdownTimeout < 0 {
		errs = errors.Join(errs, fmt.Errorf("shutdown_timeout: %s, want > 0 (0 means the default %s)", s.shutdownTimeout, DefaultShutdownTimeout))
	}
	if s.failurePathTimeout < 0 {
		errs = errors.Join(errs, fmt.Errorf("failure_path_timeout: %s, want > 0 (0 means the default %s)", s.failurePathTimeout, DefaultFailurePathTimeout))
	}
	if s.requestTimeout < 0 {
		errs = errors.Join(errs, fmt.Errorf("request_timeout: %s, want > 0 (0 means the default %s)", s.requestTimeout, DefaultRequestTimeout))
	}
	errs = errors.Join(errs, s.defaults.Validate("defaults"))
	for _, name := range slices.Sorted(maps.Keys(s.overrides)) {
		errs = errors.Join(errs, s.overrides[name].Validate("handlers."+name))
	}
	if errs != nil {
		return fmt.Errorf("service: invalid options:\n%w", errs)
	}
	return nil
}

// Err reports the options [New] was given that are invalid, naming each
// field, its value and what is allowed; nil if they are all valid.
func (s *Service) Err() error { return s.optErr }

// Registry returns the service's event registry, for upcasters.
func (s *Service) Registry() *event.Registry { return s.registry }

// Broker returns the broker the service runs on.
func (s *Service) Broker() broker.Broker { return s.broker }

// Stats returns the service's running totals.
func (s *Service) Stats() metrics.Snapshot { return s.stats.Snapshot() }

// Ready is closed once Run has subscribed every handler: events published
// after that reach every consumer group. A Run that fails before that
// leaves it open; a new Run after a finished one gets a new channel.
func (s *Service) Ready() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ready
}

// handler is one registered handler.
type handler struct {
	info     middleware.Info
	policy   Policy
	declared map[string]bool
	chain    middleware.Handler
	flow     *flow // pause, breaker, rate limit; nil for a consumer's reject stack
	// batch gathers the deliveries of a batch handler ([HandleBatch]) into
	// batches; nil for other handlers.
	batch batchRunner
	// onDeadLetter runs after one of its messages was dead-lettered (Reply
	// answers the requester then, so that it need not wait for its timeout).
	onDeadLetter func(d *middleware.Delivery, reason failure.Reason, err error)
	// onDuplicate runs after deduplication skipped one of its messages.
	onDuplicate func(ctx context.Context)
}

// Handle registers fn as the handler named name for events of type T.
// Names are unique within a service; they key per-handler configuration.
// A failed Handle changes nothing: neither the handlers nor the registry.
func Handle[T event.Event](s *Service, name string, fn func(ctx context.Context, e T) error, opts ...HandlerOption) error {
	recorder := s.recorder
	return register[T](s, name, opts, false, func(h *handler) middleware.Handler {
		decode := decoder[T](s)
		return func(ctx context.Context, d *middleware.Delivery) error {
			ev, err := decode(d)
			if err != nil {
				return err
			}
			if err := fn(ctx, ev); err != nil {
				return err
			}
			recorder.Handled(name, time.Since(d.Received))
			return nil
		}
	})
}

// decoder returns a function that decodes a delivery's payload into a T.
// Decoding into a pooled *T instead of a new one saves an allocation per
// message: the event is copied out before the handler runs.
func decoder[T event.Event](s *Service) func(d *middleware.Delivery) (T, error) {
	registry, codec := s.registry, s.codec
	var decoded sync.Pool
	return func(d *middleware.Delivery) (T, error) {
		var zero T
		p, _ := decoded.Get().(*T)
		if p == nil {
			p = new(T)
		}
		err := event.DecodeInto(registry, codec, &d.Envelope, d.Msg.Payload, p)
		ev := *p
		*p = zero
		decoded.Put(p)
		return ev, err
	}
}

// register registers a handler of T named name whose innermost step
// terminal(h) returns; batch says whether it is a batch handler
// ([HandleBatch]), the only kind that may set a [BatchPolicy].
func register[T event.Event](s *Service, name string, opts []HandlerOption, batch bool, terminal func(h *handler) middleware.Handler) error {
	if s.optErr != nil {
		return s.optErr
	}
	var zero T
	spec := handlerSpec{}
	for _, o := range opts {
		o(&spec)
	}
	if name == "" {
		return errors.New("service: handler name is empty")
	}
	if !batch {
		if err := noBatchPolicy(name, spec.policy, s.overrides[name]); err != nil {
			return err
		}
	}
	policy := spec.policy
	if o, ok := s.overrides[name]; ok {
		policy = o.Inherit(policy)
	}
	policy = policy.Inherit(s.defaults)
	if policy.Group == "" {
		policy.Group = name
	}
	policy.Group = s.namespace + policy.Group
	if policy.DeadLetterTopic != "" {
		policy.DeadLetterTopic = s.namespace + policy.DeadLetterTopic
	}
	policy = policy.withFrameworkDefaults(name)
	if batch {
		policy.Batch = policy.Batch.withDefaults()
	} else {
		policy.Batch = BatchPolicy{} // the service defaults' batch is for batch handlers
	}
	if err := policy.Validate("handlers." + name); err != nil {
		return err
	}
	if batch {
		if err := checkBatchHeld("handlers."+name, policy); err != nil {
			return err
		}
	}
	topic := spec.topic
	if topic == "" {
		topic = event.TopicOf(zero)
	}
	topic = s.namespace + topic
	h := &handler{
		info: middleware.Info{
			Name:      name,
			Group:     policy.Group,
			Topic:     topic,
			EventType: zero.EventType(),
		},
		policy:       policy,
		declared:     map[string]bool{},
		onDeadLetter: spec.onDeadLetter,
		onDuplicate:  spec.onDuplicate,
	}
	for _, e := range spec.publishes {
		h.info.Publishes = append(h.info.Publishes, e.EventType())
		h.declared[e.EventType()] = true
	}
	h.flow = newFlow(name, policy, s.clock.Now, s.notifyFor(name))
	term := terminal(h) // sets h.batch, which buildChain reads
	h.chain = s.buildChain(h, term)

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return ErrAlreadyRunning
	}
	for _, other := range s.handlers {
		if other.info.Name == name {
			return fmt.Errorf("service: handler %q registered twice", name)
		}
		if other.info.Group == h.info.Group && other.info.Topic == topic && other.info.EventType == h.info.EventType {
			return fmt.Errorf("service: handlers %q and %q both handle %s in group %q: one message would go to only one of them",
				other.info.Name, name, h.info.EventType, h.info.Group)
		}
	}
	if err := s.registry.RegisterAll(append([]event.Event{zero}, spec.publishes...)...); err != nil {
		return err
	}
	s.handlers = append(s.handlers, h)
	byName := make(map[string]*handler, len(s.handlers))
	for _, h := range s.handlers {
		byName[h.info.Name] = h
	}
	s.byName.Store(&byName)
	return nil
}

// buildChain assembles the default middleware stack around terminal in the
// documented order.
func (s *Service) buildChain(h *handler, terminal middleware.Handler) middleware.Handler {
	name := h.info.Name
	dlTopic := h.policy.DeadLetterTopic
	var delay middleware.DelayFunc
	if d, ok := s.broker.(broker.Delayer); ok && h.policy.OrderOnRetry == OrderRelease {
		delay = func(ctx context.Context, del *middleware.Delivery, wait time.Duration) error {
			m := del.Msg.Copy()
			m.Metadata[header.Attempt] = strconv.Itoa(del.Attempt)
			m.Metadata[header.RetryTarget] = del.Handler.Group
			m.Metadata[header.FirstFailure] = del.FirstFailure.UTC().Format(time.RFC3339Nano)
			return s.handBack(ctx, d, del, m, wait)
		}
	}
	stack := append([]middleware.Middleware(nil), s.deliveryMiddleware...)
	stack = append(stack,
		middleware.Tracing(s.tracer, middleware.WithMessagingSystem(middleware.MessagingSystem(s.broker.Name()))),
		middleware.Correlation(s.logger),
		middleware.DeadLetter(middleware.DeadLetterConfig{
			Publisher: s.publisher,
			Topic:     func(*middleware.Delivery) string { return dlTopic },
			Clock:     s.clock,
			Timeout:   s.failurePathTimeout,
			OnDeadLetter: func(d *middleware.Delivery, reason failure.Reason, err error) {
				s.recorder.DeadLettered(name, string(reason))
				if h.onDeadLetter != nil {
					h.onDeadLetter(d, reason, err)
				}
			},
			BeforePublish: s.beforeDeadLetter(h),
		}),
		middleware.HopLimit(h.policy.HopLimit),
		s.idempotencyMiddleware(h),
		middleware.Retry(middleware.RetryConfig{
			Policy:           h.policy.Retry,
			Clock:            s.clock,
			Delay:            middleware.IdempotentDelay(delay), // a handed-back delivery releases its claim
			MaxInProcessWait: h.policy.MaxInProcessWait,
			OnRetry: func(*middleware.Delivery, time.Duration, error) {
				s.recorder.Retried(name)
			},
		}),
	)
	if h.flow != nil {
		// Inside Retry, so that each attempt asks, and a wait at an open
		// breaker or a pause spends no attempt.
		stack = append(stack, h.flow.middleware())
	}
	stack = append(stack, s.userMiddleware...)
	timeout := h.policy.Timeout
	if h.batch != nil {
		timeout = 0 // the batch's call is bounded instead: waiting for a batch to fill is no attempt's time
	}
	stack = append(stack, middleware.Timeout(timeout), middleware.Recover())
	return middleware.Chain(terminal, stack...)
}

// handBack publishes m through the broker's Delayer with the failure path's
// deadline.
func (s *Service) handBack(ctx context.Context, d broker.Delayer, del *middleware.Delivery, m *message.Message, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, s.failurePathTimeout)
	defer cancel()
	m.SetContext(ctx)
	return d.Delay(ctx, del.Handler.Topic, del.Handler.Group, m, wait)
}

// PublishOption adjusts one publish. It is a value, not a closure, so that
// passing options costs no allocation.
type PublishOption struct {
	field publishField
	value string
}

type publishField uint8

const (
	publishKey publishField = iota + 1
	publishTopic
	publishID
)

type publishSpec struct {
	key, topic, id string
}

func (o PublishOption) apply(p *publishSpec) {
	switch o.field {
	case publishKey:
		p.key = o.value
	case publishTopic:
		p.topic = o.value
	case publishID:
		p.id = o.value
	}
}

// WithKey sets the event's key (aggregate id), overriding EventKey.
func WithKey(key string) PublishOption { return PublishOption{publishKey, key} }

// ToTopic publishes to topic instead of the event's own.
func ToTopic(topic string) PublishOption { return PublishOption{publishTopic, topic} }

// WithID sets the event id instead of a generated UUIDv7 (for producers
// that need deterministic ids, e.g. an outbox relay).
func WithID(id string) PublishOption { return PublishOption{publishID, id} }

// Publish encodes e, fills its envelope and publishes it, returning once
// the broker has confirmed it. Called with a handler's context it continues
// that message's chain (correlation, causation, hop count); elsewhere it
// starts a chain, taking the correlation id from
// [middleware.WithCorrelationID] if set.
func (s *Service) Publish(ctx context.Context, e event.Event, opts ...PublishOption) error {
	if s.tracer != nil {
		return s.publishTraced(ctx, e, opts)
	}
	return s.send(ctx, e, opts, nil)
}

// PublishAsync is Publish without waiting for the broker: it encodes e,
// fills its envelope as Publish does, hands the message to the broker and
// returns; done is called exactly once with what Publish would have
// returned. On brokers whose publisher implements [broker.AsyncPublisher]
// (memory, RabbitMQ, Kafka) one goroutine can so keep many publishes in
// flight, the broker's window giving back-pressure (PublishAsync blocks
// while it is full, or until ctx is done); on others it waits, as
// Publish. done may run on another goroutine, before PublishAsync returns,
// concurrently with other dones; it must be quick and must not block.
// With tracing on, the producer span ends when done is called.
func (s *Service) PublishAsync(ctx context.Context, e event.Event, done func(error), opts ...PublishOption) {
	var span trace.Span
	if s.tracer != nil {
		ctx, span = s.startProducerSpan(ctx, e, opts)
	}
	msg, topic, err := s.newMessage(ctx, e, nil, opts)
	if err != nil {
		if span != nil {
			endProducerSpan(span, err, true)
		}
		done(err)
		return
	}
	if span != nil {
		s.setProducerAttributes(span, msg)
	}
	broker.PublishAsync(ctx, s.publisher, topic, func(_ *message.Message, err error) {
		if err != nil {
			err = fmt.Errorf("service: publish %s to %q: %w", e.EventType(), topic, err)
		} else {
			s.recorder.Published(topic, e.EventType())
		}
		if span != nil {
			endProducerSpan(span, err, true)
		}
		done(err)
	}, msg)
}

// send builds and publishes e; span, if not nil, is the producer span
// whose context ctx carries, and gets the message's attributes.
func (s *Service) send(ctx context.Context, e event.Event, opts []PublishOption, span trace.Span) error {
	if !s.reuseMessages {
		msg, topic, err := s.newMessage(ctx, e, nil, opts)
		if err != nil {
			return err
		}
		if span != nil {
			s.setProducerAttributes(span, msg)
		}
		return s.publish(topic, e, msg)
	}
	r, _ := publishPool.Get().(*reusable)
	if r == nil {
		r = &reusable{}
	}
	msg, topic, err := s.newMessage(ctx, e, r.msg, opts)
	if err != nil {
		return err
	}
	if span != nil {
		s.setProducerAttributes(span, msg)
	}
	r.msgs[0] = msg
	if err := s.publish(topic, e, r.msgs[:]...); err != nil {
		return err
	}
	clear(msg.Metadata)
	msg.Payload = nil
	msg.SetContext(context.Background())
	r.msg = msg
	publishPool.Put(r)
	return nil
}

func (s *Service) publish(topic string, e event.Event, msgs ...*message.Message) error {
	if err := s.publisher.Publish(topic, msgs...); err != nil {
		return fmt.Errorf("service: publish %s to %q: %w", e.EventType(), topic, err)
	}
	s.recorder.Published(topic, e.EventType())
	return nil
}

// publishPool holds what Publish reuses on brokers whose Publish copies
// (see [broker.Capabilities]): a publish then allocates no message,
// metadata map, ack channels or argument slice. A published message is
// never acked or nacked, so its channels stay usable.
var publishPool sync.Pool

// reusable is one entry of publishPool.
type reusable struct {
	msg  *message.Message
	msgs [1]*message.Message
}

// NewMessage builds the broker message Publish would send, and its topic.
// The outbox uses it to store messages that are published later.
func (s *Service) NewMessage(ctx context.Context, e event.Event, opts ...PublishOption) (*message.Message, string, error) {
	return s.newMessage(ctx, e, nil, opts)
}

// newMessage builds the message into reuse, or a new one if reuse is nil.
func (s *Service) newMessage(ctx context.Context, e event.Event, reuse *message.Message, opts []PublishOption) (*message.Message, string, error) {
	var spec publishSpec
	for _, o := range opts {
		o.apply(&spec)
	}
	typ := e.EventType()
	parent := middleware.DeliveryFrom(ctx)
	if parent != nil && !s.declares(parent.Handler.Name, typ) {
		return nil, "", failure.WithReason(failure.ReasonUndeclaredPublish,
			fmt.Errorf("%w: %q publishes %s but declares %v", ErrUndeclaredPublish, parent.Handler.Name, typ, parent.Handler.Publishes))
	}
	if !s.registry.Known(typ) {
		if err := s.registry.Register(e); err != nil {
			return nil, "", err
		}
	}
	payload, err := s.codec.Marshal(e)
	if err != nil {
		return nil, "", fmt.Errorf("service: encode %s: %w", typ, err)
	}
	// The generated id and the ce_time header share one allocation.
	var buf [idLen + len(event.TimeLayout) + 8]byte
	b := buf[:0]
	if spec.id == "" {
		b = appendNewID(b)
	}
	n := len(b)
	b = event.AppendTime(b, s.clock.Now())
	text := string(b)
	id, timeText := spec.id, text[n:]
	if id == "" {
		id = text[:n]
	}
	env := event.Envelope{
		ID:          id,
		Type:        typ,
		Version:     e.EventVersion(),
		Source:      s.source,
		ContentType: s.codec.ContentType(),
		Key:         spec.key,
	}
	if env.Key == "" {
		env.Key = event.KeyOf(e)
	}
	if parent != nil {
		env.CorrelationID = parent.Envelope.CorrelationID
		env.CausationID = parent.Envelope.ID
		env.HopCount = parent.Envelope.HopCount + 1
	} else if env.CorrelationID = middleware.CorrelationID(ctx); env.CorrelationID == "" {
		env.CorrelationID = id
	}
	injectTrace(ctx, &env)
	msg := reuse
	if msg == nil {
		msg = message.NewMessage(id, payload)
		// NewMessage's map holds eight headers without growing, which is
		// what a chain's first event has; a map made for more costs more
		// allocations than one that grows once.
		if n := headerCount(&env); n > 8 {
			msg.Metadata = make(message.Metadata, n+adapterHeaders)
		}
	} else {
		msg.UUID, msg.Payload = id, payload
	}
	// Adapters watch the message's context: a publish blocked on a full
	// buffer or an unreachable broker gives up when ctx does.
	msg.SetContext(ctx)
	env.Write(msg.Metadata) // env.Time is zero: the header was formatted above
	msg.Metadata[header.Time] = timeText
	return msg, s.topicOf(e, &spec), nil
}

// topicOf is the topic a publish of e with spec goes to.
func (s *Service) topicOf(e event.Event, spec *publishSpec) string {
	topic := spec.topic
	if topic == "" {
		topic = event.TopicOf(e)
	}
	return s.namespace + topic
}

// headerCount is how many headers env.Write writes, plus ce_time.
func headerCount(env *event.Envelope) int {
	n := 5 // spec version, id, type, source, content type
	for _, v := range []string{env.Key, env.CorrelationID, env.CausationID, env.TraceParent, env.TraceState} {
		if v != "" {
			n++
		}
	}
	if env.Version > 1 {
		n++
	}
	if env.HopCount != 0 {
		n++
	}
	return n + 1
}

// adapterHeaders is room for headers an adapter may add to a message.
const adapterHeaders = 2

// declares reports whether the registered handler named handlerName
// declared eventType. It takes no lock: publishing from handlers is hot.
func (s *Service) declares(handlerName, eventType string) bool {
	byName := s.byName.Load()
	if byName == nil {
		return false
	}
	h := (*byName)[handlerName]
	return h != nil && h.declared[eventType]
}

// Handlers describes every registered handler, for graphs and reports.
func (s *Service) Handlers() []middleware.Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]middleware.Info, 0, len(s.handlers))
	for _, h := range s.handlers {
		info := h.info
		info.Publishes = slices.Clone(info.Publishes)
		out = append(out, info)
	}
	return out
}

// PolicyOf returns the effective policy of a registered handler.
func (s *Service) PolicyOf(handlerName string) (Policy, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, h := range s.handlers {
		if h.info.Name == handlerName {
			return h.policy, true
		}
	}
	return Policy{}, false
}

// idLen is the length of a UUID in text form.
const idLen = 36

// lastV7 is the last UUIDv7 timestamp handed out: milliseconds << 12 |
// a 12-bit sub-millisecond sequence, as google/uuid computes it.
var lastV7 atomic.Int64

// appendNewID appends a new UUIDv7 in text form. Ids generated in this
// process are strictly increasing, like uuid.NewV7's, without its
// allocation.
func appendNewID(dst []byte) []byte {
	var u uuid.UUID
	_, _ = rand.Read(u[:]) // never fails (Go 1.24+: it crashes the program instead)
	nano := time.Now().UnixNano()
	milli := nano / 1e6
	now := milli<<12 | (nano-milli*1e6)>>8
	for {
		last := lastV7.Load()
		if now <= last {
			now = last + 1
		}
		if lastV7.CompareAndSwap(last, now) {
			break
		}
	}
	milli, seq := now>>12, now&0xfff
	u[0], u[1], u[2], u[3], u[4], u[5] = byte(milli>>40), byte(milli>>32), byte(milli>>24), byte(milli>>16), byte(milli>>8), byte(milli)
	u[6] = 0x70 | byte(seq>>8)&0x0f // version 7
	u[7] = byte(seq)
	u[8] = u[8]&0x3f | 0x80 // variant 10
	var text [idLen]byte
	hex.Encode(text[0:8], u[0:4])
	text[8] = '-'
	hex.Encode(text[9:13], u[4:6])
	text[13] = '-'
	hex.Encode(text[14:18], u[6:8])
	text[18] = '-'
	hex.Encode(text[19:23], u[8:10])
	text[23] = '-'
	hex.Encode(text[24:], u[10:])
	return append(dst, text[:]...)
}
