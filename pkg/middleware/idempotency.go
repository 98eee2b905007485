package middleware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-go/switchyard/pkg/idempotency"
	"github.com/switchyard-go/switchyard/pkg/retry"
)

// IdempotencyConfig configures [Idempotency].
type IdempotencyConfig struct {
	// Store records claimed and completed keys. Required.
	Store idempotency.Store
	// Key returns the deduplication key of a delivery. Default
	// [IdempotencyKey]: consumer group and message id. Return a business
	// key (e.g. "orders:" + order id) to dedupe messages that carry the
	// same effect under different ids.
	Key func(d *Delivery) string
	// Lease is how long a claim holds a key while its handler runs,
	// in-process retries included. A claim outliving it is presumed dead
	// and may be taken over. On a store that implements
	// [idempotency.Extender] the lease is renewed at half its length while
	// the handler runs, so only a dead holder loses it. Default
	// [DefaultIdempotencyLease].
	Lease time.Duration
	// Clock sleeps between claim attempts; nil means the system clock.
	Clock Clock
	// Backoff paces claim attempts while the key is in progress elsewhere
	// or the store fails. Zero fields take their defaults (package retry);
	// MaxAttempts and MaxElapsed are ignored: nothing is given up on.
	Backoff retry.Policy
	// Requeue, when set, hands a delivery whose key stays busy (or whose
	// store keeps failing) longer than MaxInProcessWait back to the broker
	// for redelivery after the given wait (about MaxInProcessWait, at most
	// until the other holder's lease ends); this delivery is then acked.
	// Without it the delivery waits in-process until the key is free, the
	// store answers or the context is done (the message is then nacked).
	Requeue DelayFunc
	// MaxInProcessWait is how long to wait in-process before Requeue is
	// used. Default 5s.
	MaxInProcessWait time.Duration
	// OnDuplicate, if set, is called for each delivery skipped because its
	// key was completed before.
	OnDuplicate func(d *Delivery)
}

// Defaults for [IdempotencyConfig].
const (
	DefaultIdempotencyLease            = 5 * time.Minute
	DefaultIdempotencyMaxInProcessWait = 5 * time.Second
)

// IdempotencyKey is the default deduplication key: the consumer group and
// the message id, so that every group handles each message once.
func IdempotencyKey(d *Delivery) string {
	id := d.Envelope.ID
	if id == "" && d.Msg != nil {
		id = d.Msg.UUID
	}
	return d.Handler.Group + "/" + id
}

// Idempotency turns at-least-once delivery into handling at most once per
// key while the store remembers it:
//
//   - a key completed before: the delivery is a duplicate; it is acked
//     without running the handler and OnDuplicate is called;
//   - a key claimed elsewhere under an unexpired lease (the same message
//     being handled concurrently, by this or another instance): the
//     delivery waits, then is requeued (see Requeue); it never runs while
//     the other claim lasts and is never dropped;
//   - a store error: the same, since handling without a claim could
//     handle twice and dropping would lose the message;
//   - otherwise the key is claimed, the rest of the stack runs (retries
//     included) and the key is completed on success or released on
//     failure, so a redelivery or a dead-letter replay can handle it again.
//
// It sits outside Retry: one claim covers every in-process attempt. A
// delivery that Retry hands back to the broker for a delayed retry must
// release its key rather than complete it: wrap Retry's DelayFunc with
// [IdempotentDelay].
//
// The handler's effects and the completion are two steps: a crash between
// them runs the handler again after the lease ends. For exactly-once
// effects in a database, record the key in the handler's own transaction
// (adapters/postgres offers that).
func Idempotency(cfg IdempotencyConfig) Middleware {
	if cfg.Store == nil {
		panic("middleware: Idempotency needs a Store")
	}
	key := cfg.Key
	if key == nil {
		key = IdempotencyKey
	}
	lease := cfg.Lease
	if lease <= 0 {
		lease = DefaultIdempotencyLease
	}
	maxWait := cfg.MaxInProcessWait
	if maxWait <= 0 {
		maxWait = DefaultIdempotencyMaxInProcessWait
	}
	clock := cfg.Clock
	if clock == nil {
		clock = SystemClock{}
	}
	backoff := cfg.Backoff.WithDefaults()
	return func(next Handler) Handler {
		return func(ctx context.Context, d *Delivery) error {
			k := key(d)
			var waited time.Duration
			for n := 1; ; n++ {
				c, err := cfg.Store.Claim(ctx, k, lease)
				if err == nil && c.State == idempotency.Completed {
					d.Logger().LogAttrs(ctx, slog.LevelInfo, "duplicate skipped", slog.String(LogKeyIdempotencyKey, k))
					if cfg.OnDuplicate != nil {
						cfg.OnDuplicate(d)
					}
					return nil
				}
				if err == nil && c.State == idempotency.Claimed {
					return runClaimed(ctx, cfg.Store, k, c, lease, d, next)
				}
				wait := backoff.Backoff(n, nil)
				if err == nil { // in progress elsewhere
					if left := c.Until.Sub(clock.Now()); left < wait {
						wait = max(left, time.Millisecond)
					}
				} else {
					if ctx.Err() != nil {
						return fmt.Errorf("idempotency: claim %q: %w", k, err)
					}
					d.Logger().LogAttrs(ctx, slogLevelRetry, "idempotency store failed; waiting",
						attrErr(err), slog.String(LogKeyIdempotencyKey, k), attrWait(wait))
				}
				if cfg.Requeue != nil && waited+wait > maxWait {
					// Come back about as often as in-process waits would
					// look, but not after the other's lease has ended.
					later := max(wait, maxWait)
					if err == nil {
						later = max(min(later, c.Until.Sub(clock.Now())), wait)
					}
					rerr := cfg.Requeue(ctx, d, later)
					if rerr == nil {
						d.Logger().LogAttrs(ctx, slog.LevelInfo, "idempotency key busy; message handed back for later",
							slog.String(LogKeyIdempotencyKey, k), attrWait(later))
						return nil
					}
					d.Logger().LogAttrs(ctx, slogLevelRetry, "idempotency: requeue failed; waiting in-process", attrErr(rerr))
				}
				if serr := d.Wait(ctx, clock, wait); serr != nil {
					if err == nil {
						err = errors.New("key in progress elsewhere")
					}
					return fmt.Errorf("idempotency: waiting for key %q: %w (last: %w)", k, serr, err)
				}
				waited += wait
			}
		}
	}
}

// runClaimed runs next under a claim and completes or releases it. On a
// store that can extend claims, the lease is renewed while next runs.
func runClaimed(ctx context.Context, store idempotency.Store, k string, c idempotency.Claim, lease time.Duration, d *Delivery, next Handler) error {
	token := c.Token
	mark := &handBack{}
	hctx := context.WithValue(ctx, handBackKey{}, mark)
	var r *renewal
	if ext, ok := store.(idempotency.Extender); ok {
		hctx, r = renew(hctx, ext, k, c, lease, d)
	}
	err := next(hctx, d)
	if r != nil {
		r.stop()
	}
	// Settle the claim even when shutdown cancelled ctx: the handler is done.
	sctx := context.WithoutCancel(ctx)
	if err != nil || mark.handedBack.Load() {
		if rerr := store.Release(sctx, k, token); rerr != nil {
			// The lease ends by itself; the redelivery waits for it.
			d.Logger().LogAttrs(ctx, slogLevelRetry, "idempotency: release failed", attrErr(rerr), slog.String(LogKeyIdempotencyKey, k))
		}
		return err
	}
	if cerr := store.Complete(sctx, k, token); cerr != nil {
		// The handler succeeded and the message is acked; only a later
		// redelivery of it could run it again.
		d.Logger().LogAttrs(ctx, slog.LevelError, "idempotency: complete failed; a redelivery may be handled again",
			attrErr(cerr), slog.String(LogKeyIdempotencyKey, k))
	}
	return nil
}

// ErrLeaseLost is the cause of a handler's context when its idempotency
// claim could not be kept: another copy of the message may run now.
var ErrLeaseLost = errors.New("idempotency: claim lost while the handler ran")

// renewal extends one claim's lease while its handler runs: at half the
// lease, and sooner again after a failed attempt. If the claim is lost
// (taken over, or not renewed before it ended), the handler's context is
// cancelled with [ErrLeaseLost].
type renewal struct {
	ext      idempotency.Extender
	ctx      context.Context
	key      string
	token    string
	lease    time.Duration
	d        *Delivery
	cancel   context.CancelCauseFunc
	mu       sync.Mutex
	timer    *time.Timer
	until    time.Time
	finished bool
}

func renew(ctx context.Context, ext idempotency.Extender, key string, c idempotency.Claim, lease time.Duration, d *Delivery) (context.Context, *renewal) {
	hctx, cancel := context.WithCancelCause(ctx)
	r := &renewal{ext: ext, ctx: ctx, key: key, token: c.Token, lease: lease, d: d, cancel: cancel, until: c.Until}
	if r.until.IsZero() {
		r.until = time.Now().Add(lease)
	}
	r.mu.Lock()
	r.timer = time.AfterFunc(lease/2, r.extend)
	r.mu.Unlock()
	return hctx, r
}

func (r *renewal) extend() {
	r.mu.Lock()
	if r.finished {
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), max(r.lease/4, time.Second))
	until, err := r.ext.Extend(ctx, r.key, r.token, r.lease)
	cancel()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.finished {
		return
	}
	switch {
	case err == nil:
		r.until = until
		r.timer.Reset(r.lease / 2)
	case errors.Is(err, idempotency.ErrLeaseLost) || !time.Now().Add(r.lease/8).Before(r.until):
		r.d.Logger().LogAttrs(r.ctx, slog.LevelError, "idempotency: claim lost while the handler runs; cancelling it",
			attrErr(err), slog.String(LogKeyIdempotencyKey, r.key))
		r.cancel(ErrLeaseLost)
	default:
		r.d.Logger().LogAttrs(r.ctx, slogLevelRetry, "idempotency: lease renewal failed; trying again",
			attrErr(err), slog.String(LogKeyIdempotencyKey, r.key))
		r.timer.Reset(r.lease / 8)
	}
}

// stop ends the renewal; the claim is completed or released next.
func (r *renewal) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.finished {
		r.finished = true
		r.timer.Stop()
		r.cancel(nil)
	}
}

type handBackKey struct{}

type handBack struct{ handedBack atomic.Bool }

// IdempotentDelay wraps Retry's DelayFunc so that a delivery handed back to
// the broker for a delayed retry releases its idempotency claim instead of
// completing it (its redelivery must run). A nil delay stays nil; without
// [Idempotency] in the stack the wrapper only calls delay.
func IdempotentDelay(delay DelayFunc) DelayFunc {
	if delay == nil {
		return nil
	}
	return func(ctx context.Context, d *Delivery, wait time.Duration) error {
		err := delay(ctx, d, wait)
		if err == nil {
			if m, ok := ctx.Value(handBackKey{}).(*handBack); ok {
				m.handedBack.Store(true)
			}
		}
		return err
	}
}

// LogKeyIdempotencyKey is the log attribute of a deduplication key.
const LogKeyIdempotencyKey = "idempotency_key"
