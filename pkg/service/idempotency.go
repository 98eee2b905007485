package service

import (
	"context"
	"time"

	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/idempotency"
	"github.com/switchyard-go/switchyard/pkg/metrics"
	"github.com/switchyard-go/switchyard/pkg/middleware"
)

// IdempotencyOption adjusts [WithIdempotency].
type IdempotencyOption func(*middleware.IdempotencyConfig)

// IdempotencyKey replaces the default deduplication key (consumer group and
// message id), e.g. with a business key extracted from the envelope.
func IdempotencyKey(fn func(d *middleware.Delivery) string) IdempotencyOption {
	return func(c *middleware.IdempotencyConfig) { c.Key = fn }
}

// IdempotencyLease sets how long a claim holds a key. Default: long enough
// for every in-process attempt of the handler's policy (attempts × (timeout
// + max in-process wait) + 1m), at least [middleware.DefaultIdempotencyLease].
func IdempotencyLease(d time.Duration) IdempotencyOption {
	return func(c *middleware.IdempotencyConfig) { c.Lease = d }
}

// WithIdempotency makes every handler skip deliveries whose key the store
// has completed, counting them in [metrics.Recorder.Duplicate]; see
// [middleware.Idempotency] for what happens to a key in progress elsewhere
// or a failing store. It sits after HopLimit and before Retry in the stack.
//
// For exactly-once effects in PostgreSQL use the transactional middleware
// of adapters/postgres with [WithMiddleware] instead (or as well).
func WithIdempotency(store idempotency.Store, opts ...IdempotencyOption) Option {
	return func(s *Service) {
		if s.idem == nil {
			s.idem = &idempotencySettings{}
		}
		s.idem.store = store
		s.idem.opts = append(s.idem.opts, opts...)
	}
}

type idempotencySettings struct {
	store idempotency.Store
	opts  []IdempotencyOption
}

// idempotencyMiddleware returns the idempotency middleware of h, or nil when
// no store is configured.
func (s *Service) idempotencyMiddleware(h *handler) middleware.Middleware {
	if s.idem == nil || s.idem.store == nil {
		return nil
	}
	name := h.info.Name
	cfg := middleware.IdempotencyConfig{
		Store:            s.idem.store,
		Clock:            s.clock,
		MaxInProcessWait: h.policy.MaxInProcessWait,
		OnDuplicate: func(d *middleware.Delivery) {
			s.recorder.Duplicate(name)
			if h.onDuplicate != nil {
				h.onDuplicate(middleware.WithDelivery(context.Background(), d))
			}
		},
	}
	if d, ok := s.broker.(broker.Delayer); ok && h.policy.OrderOnRetry == OrderRelease {
		cfg.Requeue = func(ctx context.Context, del *middleware.Delivery, wait time.Duration) error {
			// Unchanged attempt headers: waiting for a busy key is no attempt.
			m := del.Msg.Copy()
			m.Metadata[header.RetryTarget] = del.Handler.Group
			return s.handBack(ctx, d, del, m, wait)
		}
	}
	for _, o := range s.idem.opts {
		o(&cfg)
	}
	if cfg.Lease <= 0 {
		p := h.policy
		per := max(p.Timeout, 0) + p.MaxInProcessWait
		if p.Timeout <= 0 {
			per += DefaultTimeout
		}
		cfg.Lease = max(middleware.DefaultIdempotencyLease, time.Duration(p.Retry.MaxAttempts)*per+time.Minute)
	}
	return middleware.Idempotency(cfg)
}

// Recorder returns the recorder the runtime reports to (its own totals and
// every [WithRecorder]), for middleware that reports too, e.g. duplicates
// skipped by a transactional idempotency middleware.
func (s *Service) Recorder() metrics.Recorder { return s.recorder }
