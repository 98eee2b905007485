package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/park"
)

// HandlerReport says what one handler really gets on the service's broker:
// the startup log prints one per handler, from [Service.Report].
type HandlerReport struct {
	Handler, Group, Topic, EventType string
	// Concurrency is how many messages of the subscription run at once.
	Concurrency int
	// Delivery is the broker's delivery guarantee, e.g. "at-least-once".
	Delivery string
	// Order says what order the handler sees messages of one key in.
	Order string
	// OrderOnRetry is "keep" or "release" (see [Policy.OrderOnRetry]).
	OrderOnRetry string
	// Retry says how waits between attempts are spent.
	Retry string
	// MaxAttempts is the retry policy's attempts, the first included.
	MaxAttempts int
	// DeadLetter says where given-up messages go and who keeps them.
	DeadLetter string
	// Breaker describes the circuit breaker, "off" when there is none,
	// and its state now.
	Breaker string
	// RateLimit is the attempts-per-second cap, "none" when there is none.
	RateLimit string
	// Batch says how a batch handler ([HandleBatch]) gathers its batches;
	// "none" for other handlers.
	Batch string
}

// Report describes every registered handler on this broker.
func (s *Service) Report() []HandlerReport {
	s.mu.Lock()
	handlers := slices.Clone(s.handlers)
	s.mu.Unlock()
	caps := s.broker.Capabilities()
	_, canDelay := s.broker.(broker.Delayer)
	_, provisions := s.broker.(broker.Provisioner)
	out := make([]HandlerReport, 0, len(handlers))
	for _, h := range handlers {
		p := h.policy
		r := HandlerReport{
			Handler: h.info.Name, Group: h.info.Group, Topic: h.info.Topic, EventType: h.info.EventType,
			Concurrency: p.Concurrency, Delivery: caps.Delivery, OrderOnRetry: p.OrderOnRetry,
			MaxAttempts: p.Retry.MaxAttempts,
		}
		r.Order = "per key within this consumer; across consumers of the group: none"
		if p.IsOrdered() {
			r.Order = "per key within this consumer; across consumers of the group: " + string(caps.Ordering)
		}
		switch {
		case p.Retry.MaxAttempts <= 1:
			r.Retry = "none"
		case p.OrderOnRetry == OrderKeep || !canDelay || p.MaxInProcessWait < 0:
			r.Retry = fmt.Sprintf("in place, up to %s a wait: the key waits, other keys flow; the message keeps its prefetch slot or partition position meanwhile", p.Retry.MaxInterval)
		case p.Retry.MaxInterval <= p.MaxInProcessWait:
			r.Retry = fmt.Sprintf("in place (every wait is at most %s, within max_in_process_wait %s)", p.Retry.MaxInterval, p.MaxInProcessWait)
		default:
			r.Retry = fmt.Sprintf("in place up to %s, longer waits handed back to the broker for delayed redelivery: later messages of the key may overtake the retried one", p.MaxInProcessWait)
		}
		r.DeadLetter = p.DeadLetterTopic
		if provisions {
			r.DeadLetter += fmt.Sprintf(" (kept for operators as group %q)", broker.DeadLetterGroup)
		}
		if p.DeadLetterOrder == DeadLetterOrderKey {
			where := "in process memory: a restart releases them"
			if _, mem := s.parkStore.(*park.Memory); !mem {
				where = fmt.Sprintf("in %T", s.parkStore)
			}
			r.DeadLetter += "; in key order: later messages of a dead-lettered key follow it (key_parked) until it is replayed or released; parked keys kept " + where
		}
		r.Breaker, r.RateLimit = describeFlow(h)
		r.Batch = describeBatch(h)
		out = append(out, r)
	}
	return out
}

// describe logs what each handler really gets on this broker.
func (s *Service) describe() {
	for _, r := range s.Report() {
		s.logger.Info("handler",
			slog.String("handler", r.Handler),
			slog.String("group", r.Group),
			slog.String("topic", r.Topic),
			slog.String("event_type", r.EventType),
			slog.Int("concurrency", r.Concurrency),
			slog.String("delivery", r.Delivery),
			slog.String("order", r.Order),
			slog.String("order_on_retry", r.OrderOnRetry),
			slog.String("retry", r.Retry),
			slog.Int("max_attempts", r.MaxAttempts),
			slog.String("dead_letter", r.DeadLetter),
			slog.String("breaker", r.Breaker),
			slog.String("rate_limit", r.RateLimit),
			slog.String("batch", r.Batch))
	}
}

// honour refuses to start when a handler's policy asks for something the
// broker cannot do, rather than silently doing less.
func (s *Service) honour(consumers []*consumer) error {
	caps := s.broker.Capabilities()
	_, canDelay := s.broker.(broker.Delayer)
	var errs error
	for _, c := range consumers {
		for _, typ := range slices.Sorted(maps.Keys(c.byType)) {
			h := c.byType[typ]
			p := h.policy
			if p.IsOrdered() && caps.Ordering == broker.OrderNone {
				errs = errors.Join(errs, fmt.Errorf("handlers.%s.ordered: true, but broker %s keeps no order", h.info.Name, s.broker.Name()))
			}
			if p.IsExactlyOnce() && !caps.ExactlyOnce {
				errs = errors.Join(errs, fmt.Errorf("handlers.%s.exactly_once: true, but broker %s has no transactions (only kafka has)", h.info.Name, s.broker.Name()))
			}
			if p.IsExactlyOnce() && s.idem != nil && s.idem.store != nil {
				// A side effect outside the transaction the runtime can see:
				// after an abort the redelivery would be skipped as done.
				errs = errors.Join(errs, fmt.Errorf("handlers.%s.exactly_once: true, but the service deduplicates with WithIdempotency, whose store records a delivery outside the Kafka transaction: "+
					"a delivery whose transaction aborted would be skipped as a duplicate and its output lost; drop one of them", h.info.Name))
			}
			if !canDelay && p.OrderOnRetry == OrderRelease && p.MaxInProcessWait > 0 && p.Retry.MaxAttempts > 1 && p.Retry.MaxInterval > p.MaxInProcessWait {
				errs = errors.Join(errs, fmt.Errorf(
					"handlers.%s: retry waits up to %s (retry.max_interval) but broker %s cannot delay redelivery beyond max_in_process_wait (%s); "+
						"lower retry.max_interval, or set order_on_retry: keep to wait in the consumer (holding the message's prefetch slot)",
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
		for _, h := range append(slices.Collect(maps.Values(c.byType)), c.reject) {
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

// describeFlow says what the handler's breaker and rate limit do.
func describeFlow(h *handler) (brk, limit string) {
	p := h.policy
	brk, limit = "off", "none"
	if b := p.Breaker; b.Enabled() {
		var trips []string
		if b.ConsecutiveFailures > 0 {
			trips = append(trips, fmt.Sprintf("%d consecutive failures", b.ConsecutiveFailures))
		}
		if b.FailureRate > 0 {
			trips = append(trips, fmt.Sprintf("%g%% of at least %d attempts within %s failing", b.FailureRate*100, b.MinRequests, b.Window))
		}
		st := h.flow.state()
		brk = fmt.Sprintf("opens on %s; pauses intake for %s, then %d probe(s) at a time close it; now %s",
			strings.Join(trips, " or "), b.OpenFor, b.HalfOpenProbes, st.Breaker)
	}
	if p.RateLimit > 0 {
		limit = fmt.Sprintf("%g attempts/s, burst %d", p.RateLimit, p.RateBurst)
	}
	if h.flow.state().Paused {
		brk += "; handler paused"
	}
	return brk, limit
}
