package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-go/switchyard/pkg/breaker"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/metrics"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/retry"
)

// Policy is the per-handler behaviour that configuration files can set.
// Zero fields mean "inherit": from the service defaults, then from the
// framework defaults documented on each field.
type Policy struct {
	// Group is the consumer group. Default: the handler's name.
	Group string `yaml:"group"`
	// Concurrency is how many messages of one subscription are handled at
	// once; messages with the same key are never handled concurrently.
	// Default 4.
	Concurrency int `yaml:"concurrency"`
	// Prefetch is how many unacknowledged messages the broker may hand out.
	// Default: the adapter's.
	Prefetch int `yaml:"prefetch"`
	// Ordered asks the broker for per-key ordering across consumers
	// (single-active-consumer queues on RabbitMQ). Default false. A pointer
	// so that `ordered: false` in a file can turn off what code or the
	// defaults turned on; in code use [On] and [Off].
	Ordered *bool `yaml:"ordered"`
	// OrderOnRetry says what a retry does to the order of its key:
	// [OrderKeep] retries in place (the key waits, other keys flow; every
	// wait is slept in the consumer without holding a concurrency slot, but
	// holding the message's prefetch slot or partition position), while
	// [OrderRelease] hands waits longer than MaxInProcessWait back to the
	// broker for delayed redelivery, so later messages of the key may
	// overtake the retried one. Default: keep for ordered handlers, release
	// otherwise. Ordered handlers refuse release.
	OrderOnRetry string `yaml:"order_on_retry"`
	// Timeout bounds each attempt. Default 30s; [NoTimeout] (-1ns, in a
	// file "-1ns") disables it.
	Timeout time.Duration `yaml:"timeout"`
	// Retry is the backoff policy. Default: see package retry.
	Retry retry.Policy `yaml:"retry"`
	// MaxInProcessWait is the longest retry wait slept inside the consumer;
	// longer waits hand the message back to the broker for delayed
	// redelivery. Default 5s; [NoMaxInProcessWait] (-1ns) means every wait
	// is slept in the consumer (holding its prefetch slot or partition
	// meanwhile), as OrderOnRetry keep does. A broker
	// that cannot delay redelivery refuses to start a handler whose retry
	// waits can exceed this.
	MaxInProcessWait time.Duration `yaml:"max_in_process_wait"`
	// HopLimit dead-letters events that passed more handlers than this.
	// Default 16; [NoHopLimit] (-1) disables the guard.
	HopLimit int `yaml:"hop_limit"`
	// DeadLetterTopic is where given-up messages go. Default "<group>.dead_letter".
	DeadLetterTopic string `yaml:"dead_letter_topic"`
	// DeadLetterOrder is [DeadLetterOrderNone] (default) or
	// [DeadLetterOrderKey]: later messages of a dead-lettered key follow it
	// to the dead-letter topic until it is replayed or released (see
	// [WithParkedKeys]), so that a replay restores the key's order.
	DeadLetterOrder string `yaml:"dead_letter_order"`
	// Breaker is the handler's circuit breaker, off unless
	// breaker.consecutive_failures or breaker.failure_rate is set. While it
	// is open the handler's subscription takes no messages and its held
	// messages wait; see docs/circuit-breaker.md.
	Breaker breaker.Policy `yaml:"breaker"`
	// RateLimit caps the handler's attempts per second (a token bucket,
	// retries included). Default 0: no limit.
	RateLimit float64 `yaml:"rate_limit"`
	// RateBurst is how many attempts may start at once above RateLimit.
	// Default 1.
	RateBurst int `yaml:"rate_burst"`
	// Batch is how a batch handler ([HandleBatch]) gathers messages into
	// batches. Only batch handlers may set it.
	Batch BatchPolicy `yaml:"batch"`
	// ExactlyOnce handles each message and publishes what the handler
	// publishes (dead letters included) in one broker transaction with the
	// consumed offset, so consumers that read committed data see each
	// output once even when the service crashes mid-way (Kafka only; see
	// docs/adapters.md). Default false. The handler must have no side
	// effect outside the broker: an aborted transaction runs it again.
	// It does not retry (retry.max_attempts 1, the default then): an
	// attempt's publishes cannot be taken out of the transaction, so a
	// failure dead-letters the message in the same transaction, and a
	// replay from the dead-letter topic is the retry. Requires
	// order_on_retry keep (the default then): a delayed redelivery cannot
	// join the transaction.
	ExactlyOnce *bool `yaml:"exactly_once"`
}

// Values of [Policy.OrderOnRetry].
const (
	OrderKeep    = "keep"
	OrderRelease = "release"
)

// On and Off are the values of a [Policy]'s tri-state switches, such as
// Ordered: nil inherits.
var (
	On  = ptr(true)
	Off = ptr(false)
)

func ptr[T any](v T) *T { return &v }

// IsOrdered reports whether the policy asks for per-key order.
func (p Policy) IsOrdered() bool { return p.Ordered != nil && *p.Ordered }

// IsExactlyOnce reports whether the policy asks for exactly-once handling.
func (p Policy) IsExactlyOnce() bool { return p.ExactlyOnce != nil && *p.ExactlyOnce }

// Framework defaults for [Policy].
const (
	DefaultConcurrency      = 4
	DefaultTimeout          = 30 * time.Second
	DefaultHopLimit         = 16
	DefaultMaxInProcessWait = 5 * time.Second
	DefaultShutdownTimeout  = 30 * time.Second
	// DefaultFailurePathTimeout bounds each dead-letter and delayed-retry
	// publish.
	DefaultFailurePathTimeout = 10 * time.Second
)

// The values that switch a [Policy] limit off. Other negative values are
// invalid.
const (
	NoTimeout          time.Duration = -1
	NoHopLimit                       = -1
	NoMaxInProcessWait time.Duration = -1
)

// DeadLetterTopicFor is the default dead-letter topic of a consumer group.
func DeadLetterTopicFor(group string) string { return group + ".dead_letter" }

// Inherit returns p with its zero fields taken from base.
func (p Policy) Inherit(base Policy) Policy {
	if p.Group == "" {
		p.Group = base.Group
	}
	if p.Concurrency == 0 {
		p.Concurrency = base.Concurrency
	}
	if p.Prefetch == 0 {
		p.Prefetch = base.Prefetch
	}
	if p.Ordered == nil {
		p.Ordered = base.Ordered
	}
	if p.OrderOnRetry == "" {
		p.OrderOnRetry = base.OrderOnRetry
	}
	if p.ExactlyOnce == nil {
		p.ExactlyOnce = base.ExactlyOnce
	}
	if p.Timeout == 0 {
		p.Timeout = base.Timeout
	}
	if p.MaxInProcessWait == 0 {
		p.MaxInProcessWait = base.MaxInProcessWait
	}
	if p.HopLimit == 0 {
		p.HopLimit = base.HopLimit
	}
	if p.DeadLetterTopic == "" {
		p.DeadLetterTopic = base.DeadLetterTopic
	}
	if p.DeadLetterOrder == "" {
		p.DeadLetterOrder = base.DeadLetterOrder
	}
	p.Breaker = p.Breaker.Inherit(base.Breaker)
	if p.RateLimit == 0 {
		p.RateLimit = base.RateLimit
	}
	if p.RateBurst == 0 {
		p.RateBurst = base.RateBurst
	}
	p.Batch = p.Batch.inherit(base.Batch)
	r, b := p.Retry, base.Retry
	if r.MaxAttempts == 0 {
		r.MaxAttempts = b.MaxAttempts
	}
	if r.InitialInterval == 0 {
		r.InitialInterval = b.InitialInterval
	}
	if r.MaxInterval == 0 {
		r.MaxInterval = b.MaxInterval
	}
	if r.Multiplier == 0 {
		r.Multiplier = b.Multiplier
	}
	if r.Jitter == 0 {
		r.Jitter = b.Jitter
	}
	if r.MaxElapsed == 0 {
		r.MaxElapsed = b.MaxElapsed
	}
	p.Retry = r
	return p
}

// Validate reports every invalid field at once; prefix names the policy's
// place in the configuration, e.g. "handlers.inventory".
func (p Policy) Validate(prefix string) error {
	var err error
	if p.Concurrency < 0 {
		err = errors.Join(err, fmt.Errorf("%s.concurrency: %d, want >= 1 (0 means the default %d)", prefix, p.Concurrency, DefaultConcurrency))
	}
	if p.Prefetch < 0 {
		err = errors.Join(err, fmt.Errorf("%s.prefetch: %d, want >= 0", prefix, p.Prefetch))
	}
	switch p.OrderOnRetry {
	case "", OrderKeep, OrderRelease:
	default:
		err = errors.Join(err, fmt.Errorf("%s.order_on_retry: %q, want %q or %q", prefix, p.OrderOnRetry, OrderKeep, OrderRelease))
	}
	switch p.DeadLetterOrder {
	case "", DeadLetterOrderNone, DeadLetterOrderKey:
	default:
		err = errors.Join(err, fmt.Errorf("%s.dead_letter_order: %q, want %q or %q", prefix, p.DeadLetterOrder, DeadLetterOrderNone, DeadLetterOrderKey))
	}
	if p.IsOrdered() && p.OrderOnRetry == OrderRelease {
		err = errors.Join(err, fmt.Errorf("%s.order_on_retry: %q, but the handler is ordered: a retry handed back to the broker lets later messages of its key overtake it; use %q",
			prefix, p.OrderOnRetry, OrderKeep))
	}
	if p.IsExactlyOnce() && p.Retry.MaxAttempts > 1 {
		err = errors.Join(err, fmt.Errorf("%s.retry.max_attempts: %d, but the handler is exactly_once: each attempt's publishes would commit in the one transaction; use 1 (a failure is dead-lettered in the transaction)",
			prefix, p.Retry.MaxAttempts))
	}
	if p.IsExactlyOnce() && p.OrderOnRetry == OrderRelease {
		err = errors.Join(err, fmt.Errorf("%s.order_on_retry: %q, but the handler is exactly_once: a retry handed back to the broker is published outside the transaction; use %q",
			prefix, p.OrderOnRetry, OrderKeep))
	}
	if p.Timeout < 0 && p.Timeout != NoTimeout {
		err = errors.Join(err, fmt.Errorf("%s.timeout: %s, want > 0, or -1ns (service.NoTimeout) for none", prefix, p.Timeout))
	}
	if p.HopLimit < 0 && p.HopLimit != NoHopLimit {
		err = errors.Join(err, fmt.Errorf("%s.hop_limit: %d, want >= 1, or -1 for no limit", prefix, p.HopLimit))
	}
	if p.MaxInProcessWait < 0 && p.MaxInProcessWait != NoMaxInProcessWait {
		err = errors.Join(err, fmt.Errorf("%s.max_in_process_wait: %s, want > 0, or -1ns for no limit (every wait in the consumer)", prefix, p.MaxInProcessWait))
	}
	if math.IsNaN(p.RateLimit) || math.IsInf(p.RateLimit, 0) || p.RateLimit < 0 {
		err = errors.Join(err, fmt.Errorf("%s.rate_limit: %v, want > 0 attempts per second (0 means no limit)", prefix, p.RateLimit))
	}
	if p.RateBurst < 0 {
		err = errors.Join(err, fmt.Errorf("%s.rate_burst: %d, want >= 1 (0 means the default 1)", prefix, p.RateBurst))
	}
	return errors.Join(err, p.Retry.Validate(prefix+".retry"), p.Breaker.Validate(prefix+".breaker"), p.Batch.validate(prefix+".batch"))
}

func (p Policy) withFrameworkDefaults(handlerName string) Policy {
	p = p.Inherit(Policy{
		Group:            handlerName,
		Concurrency:      DefaultConcurrency,
		Timeout:          DefaultTimeout,
		HopLimit:         DefaultHopLimit,
		MaxInProcessWait: DefaultMaxInProcessWait,
	})
	if p.DeadLetterTopic == "" {
		p.DeadLetterTopic = DeadLetterTopicFor(p.Group)
	}
	if p.IsExactlyOnce() && p.Retry.MaxAttempts == 0 {
		p.Retry.MaxAttempts = 1
	}
	p.Retry = p.Retry.WithDefaults()
	p.Breaker = p.Breaker.WithDefaults()
	if p.RateLimit > 0 && p.RateBurst == 0 {
		p.RateBurst = 1
	}
	if p.Ordered == nil {
		p.Ordered = Off
	}
	if p.DeadLetterOrder == "" {
		p.DeadLetterOrder = DeadLetterOrderNone
	}
	if p.ExactlyOnce == nil {
		p.ExactlyOnce = Off
	}
	if p.OrderOnRetry == "" {
		p.OrderOnRetry = OrderRelease
		if p.IsOrdered() || p.IsExactlyOnce() {
			p.OrderOnRetry = OrderKeep
		}
	}
	return p
}

// Option configures a [Service] with what only code can supply.
type Option func(*Service)

// WithSource sets the CloudEvents source of published events, usually the
// service name. Default "switchyard".
func WithSource(source string) Option { return func(s *Service) { s.source = source } }

// PublishOnly makes a service that registers no handlers: its Run serves
// its companions (the operations server's /readyz and /metrics, a
// scheduler's relay) until the context is cancelled. Without it, Run with
// no handlers returns [ErrNothingToRun], and with it a registered handler
// is an error: both catch a registration that went astray.
func PublishOnly() Option { return func(s *Service) { s.publishOnly = true } }

// WithLogger sets the logger; nil discards.
func WithLogger(l *slog.Logger) Option { return func(s *Service) { s.logger = l } }

// WithCodec replaces the JSON codec.
func WithCodec(c event.Codec) Option { return func(s *Service) { s.codec = c } }

// WithClock replaces the clock used by retries and dead-lettering (tests).
func WithClock(c middleware.Clock) Option { return func(s *Service) { s.clock = c } }

// WithRecorder adds a metrics recorder (e.g. metrics.NewPrometheus); the
// service always keeps its own totals too, see [Service.Stats].
func WithRecorder(r metrics.Recorder) Option {
	return func(s *Service) { s.recorders = append(s.recorders, r) }
}

// WithTracerProvider enables OpenTelemetry tracing: a producer span
// ("send <topic>") per [Service.Publish], whose context the message carries
// in ce_traceparent, and a consumer span ("process <topic>") per delivery,
// its child. See docs/observability.md for the attributes. Without it
// (nil), tracing costs nothing.
func WithTracerProvider(tp trace.TracerProvider) Option { return func(s *Service) { s.tracer = tp } }

// WithDeliveryMiddleware adds middleware that runs once per delivery of
// every handler, outermost: outside tracing, dead-lettering and retries.
// What it sees returned is the delivery's outcome: nil when the delivery is
// acked (handled, dead-lettered, which [middleware.Delivery].DeadLettered
// says, or handed back for delayed redelivery), an error when it is
// nacked. Package otelmetrics uses it for per-delivery metrics.
func WithDeliveryMiddleware(mws ...middleware.Middleware) Option {
	return func(s *Service) { s.deliveryMiddleware = append(s.deliveryMiddleware, mws...) }
}

// WithMiddleware adds middleware that runs on every attempt of every
// handler, inside Retry and outside Timeout (see package middleware).
func WithMiddleware(mws ...middleware.Middleware) Option {
	return func(s *Service) { s.userMiddleware = append(s.userMiddleware, mws...) }
}

// WithDefaults sets the policy every handler inherits.
func WithDefaults(p Policy) Option { return func(s *Service) { s.defaults = p } }

// WithOverrides sets per-handler policies by handler name, typically from
// a configuration file; they win over what the code says.
func WithOverrides(byHandler map[string]Policy) Option {
	return func(s *Service) { s.overrides = byHandler }
}

// WithShutdownTimeout bounds how long Run waits for in-flight handlers after
// its context is cancelled; then their context is cancelled. Default 30s
// (also for 0, as in a configuration file); negative is invalid.
func WithShutdownTimeout(d time.Duration) Option { return func(s *Service) { s.shutdownTimeout = d } }

// WithFailurePathTimeout bounds each publish of the failure path, a dead
// letter or a delayed retry handed back to the broker. A publish that takes
// longer fails: the message is nacked and redelivered, and the consumer
// goes on. Default [DefaultFailurePathTimeout] (also for 0); negative is
// invalid.
func WithFailurePathTimeout(d time.Duration) Option {
	return func(s *Service) { s.failurePathTimeout = d }
}

// WithNamespace prefixes every topic, consumer group and dead-letter topic
// of the service, e.g. "staging." — to share one broker between
// environments or test runs.
func WithNamespace(ns string) Option { return func(s *Service) { s.namespace = ns } }

// WithRegistry shares an event registry (for upcasters) with the service.
func WithRegistry(r *event.Registry) Option { return func(s *Service) { s.registry = r } }

// HandlerOption configures one handler in code.
type HandlerOption func(*handlerSpec)

type handlerSpec struct {
	policy       Policy
	topic        string
	publishes    []event.Event
	onDeadLetter func(d *middleware.Delivery, reason failure.Reason, err error) // see Reply
	onDuplicate  func(ctx context.Context)                                      // see OnDuplicate
}

// Group sets the handler's consumer group.
func Group(name string) HandlerOption { return func(h *handlerSpec) { h.policy.Group = name } }

// Topic overrides the topic consumed (default: the event type's topic).
func Topic(name string) HandlerOption { return func(h *handlerSpec) { h.topic = name } }

// Publishes declares the event types the handler may publish; pass zero
// values: Publishes(InventoryReserved{}, InventoryRejected{}).
func Publishes(events ...event.Event) HandlerOption {
	return func(h *handlerSpec) { h.publishes = append(h.publishes, events...) }
}

// WithPolicy sets the handler's policy in code; zero fields inherit.
func WithPolicy(p Policy) HandlerOption {
	return func(h *handlerSpec) { h.policy = p.Inherit(h.policy) }
}

// Concurrency sets how many messages the handler's subscription handles at once.
func Concurrency(n int) HandlerOption { return func(h *handlerSpec) { h.policy.Concurrency = n } }

// Retry sets the handler's retry policy.
func Retry(p retry.Policy) HandlerOption { return func(h *handlerSpec) { h.policy.Retry = p } }

// Timeout bounds each attempt of the handler.
func Timeout(d time.Duration) HandlerOption { return func(h *handlerSpec) { h.policy.Timeout = d } }

// Breaker gives the handler a circuit breaker (see [Policy.Breaker]).
func Breaker(p breaker.Policy) HandlerOption {
	return func(h *handlerSpec) { h.policy.Breaker = p }
}

// RateLimit caps the handler's attempts per second, with burst attempts
// allowed at once (0 means 1); see [Policy.RateLimit].
func RateLimit(perSecond float64, burst int) HandlerOption {
	return func(h *handlerSpec) { h.policy.RateLimit, h.policy.RateBurst = perSecond, burst }
}
