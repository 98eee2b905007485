package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"golang.org/x/time/rate"

	"github.com/switchyard-go/switchyard/pkg/breaker"
	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/metrics"
	"github.com/switchyard-go/switchyard/pkg/middleware"
)

// flow decides when one handler's messages may go on: it holds the
// handler's pause switch ([Service.Pause]), its circuit breaker and its
// rate limit. Two places ask it:
//
//   - the subscription's reader, before it takes the next message from the
//     broker: while the handler is paused or its breaker open, the reader
//     takes nothing, so the backlog stays on the broker, unacknowledged
//     and undelivered;
//   - the handler's stack, before each attempt (inside Retry): an attempt
//     waits, in its worker and in its key's turn, until it may run. What
//     the subscription already held is neither nacked nor dead-lettered nor
//     counted as an attempt meanwhile.
//
// A half-open breaker lets HalfOpenProbes attempts run at once; a probe
// that fails reopens it and waits for the next half-open spell itself,
// without spending one of its message's retry attempts.
type flow struct {
	handler string
	now     func() time.Time
	limiter *rate.Limiter // nil: no rate limit
	notify  func(from, to breaker.State)

	// blocked is true while intake must stop: paused, or the breaker open.
	// Read without the lock on the hot path.
	blocked atomic.Bool

	mu       sync.Mutex
	br       *breaker.Breaker // nil: no breaker
	paused   bool
	reported breaker.State // the state last told to notify
	changed  chan struct{} // closed and replaced whenever a waiter may go on
}

func newFlow(name string, p Policy, now func() time.Time, notify func(from, to breaker.State)) *flow {
	f := &flow{handler: name, now: now, notify: notify, changed: make(chan struct{}), reported: breaker.Closed}
	if p.Breaker.Enabled() {
		f.br = breaker.New(p.Breaker)
	}
	if p.RateLimit > 0 {
		f.limiter = rate.NewLimiter(rate.Limit(p.RateLimit), max(p.RateBurst, 1))
	}
	return f
}

// FlowState is what lets one handler's messages through at a moment.
type FlowState struct {
	// Handler names the handler.
	Handler string
	// Breaker is "closed", "open" or "half_open", or "" when the handler
	// has no breaker.
	Breaker string
	// OpenUntil is when an open breaker lets probes through; zero otherwise.
	OpenUntil time.Time
	// Paused is true between [Service.Pause] and [Service.Resume].
	Paused bool
}

func (f *flow) state() FlowState {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := FlowState{Handler: f.handler, Paused: f.paused}
	if f.br != nil {
		f.observeLocked(f.now())
		st.Breaker = string(f.reported)
		if f.reported == breaker.Open {
			st.OpenUntil = f.br.OpenUntil()
		}
	}
	return st
}

// observeLocked brings blocked and the waiters up to date with the state at
// now and tells notify of a transition, reporting whether there was one. notify runs under the
// lock so that transitions reach the log and the metrics in the order they
// happened; they are rare.
func (f *flow) observeLocked(now time.Time) (changed bool) {
	to := breaker.Closed
	if f.br != nil {
		to = f.br.State(now)
	}
	blocked := f.paused || to == breaker.Open
	if f.blocked.Load() != blocked {
		f.blocked.Store(blocked)
		f.broadcastLocked()
	}
	if to == f.reported {
		return false
	}
	from := f.reported
	f.reported = to
	f.broadcastLocked()
	f.notify(from, to)
	return true
}

func (f *flow) broadcastLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// setPaused pauses or resumes the handler; onChange, if it changed
// anything, runs under the lock, so that pauses and resumes are reported in
// their order.
func (f *flow) setPaused(p bool, onChange func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.paused == p {
		return
	}
	f.paused = p
	f.broadcastLocked()
	f.observeLocked(f.now())
	onChange()
}

// wait blocks until the state may have changed: a broadcast, an open
// breaker's time being up, ctx or stopping, or msg's context: the adapter
// cancels it when it takes the message back (Kafka: its partition was
// revoked and did not drain in time), and then the message is handled
// elsewhere. It is asked for only here, off the hot path, as watching it
// costs on some adapters.
func (f *flow) wait(ctx context.Context, stopping <-chan struct{}, msg *message.Message, ch <-chan struct{}, wake time.Duration) error {
	var taken <-chan struct{}
	if msg != nil {
		taken = msg.Context().Done()
	}
	var timer <-chan time.Time
	if wake >= 0 {
		t := time.NewTimer(wake)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-ch:
	case <-timer:
	case <-ctx.Done():
		return ctx.Err()
	case <-stopping:
		return middleware.ErrStopping
	case <-taken:
		return fmt.Errorf("%w: the broker adapter took the message back", middleware.ErrStopping)
	}
	return nil
}

// wakeLocked is how long until an open breaker turns half-open, or -1.
func (f *flow) wakeLocked(now time.Time) time.Duration {
	if f.br == nil || f.reported != breaker.Open {
		return -1
	}
	return max(f.br.OpenUntil().Sub(now), 0)
}

// waitIntake blocks the reader while the handler is paused or its breaker
// open; false means intake ended.
func (f *flow) waitIntake(intake context.Context) bool {
	for f.blocked.Load() {
		f.mu.Lock()
		now := f.now()
		f.observeLocked(now)
		blocked, ch, wake := f.blocked.Load(), f.changed, f.wakeLocked(now)
		f.mu.Unlock()
		if !blocked {
			return true
		}
		if f.wait(intake, nil, nil, ch, wake) != nil {
			return false
		}
	}
	return true
}

// admit blocks until an attempt may start, and reports whether it is a
// half-open probe and how long it waited.
func (f *flow) admit(ctx context.Context, stopping <-chan struct{}, msg *message.Message) (probe bool, waited time.Duration, err error) {
	var start time.Time
	for {
		f.mu.Lock()
		now := f.now()
		ok := false
		if !f.paused {
			ok = true
			if f.br != nil {
				ok, probe = f.br.Allow(now)
			}
		}
		f.observeLocked(now)
		ch, wake := f.changed, f.wakeLocked(now)
		f.mu.Unlock()
		if ok {
			if !start.IsZero() {
				waited = now.Sub(start)
			}
			return probe, waited, nil
		}
		if start.IsZero() {
			start = now
		}
		if err := f.wait(ctx, stopping, msg, ch, wake); err != nil {
			return false, 0, err
		}
	}
}

// record tells the breaker an attempt's outcome.
func (f *flow) record(probe bool, o breaker.Outcome) {
	if f.br == nil {
		return
	}
	f.mu.Lock()
	now := f.now()
	f.br.Record(now, probe, o)
	if !f.observeLocked(now) && probe {
		f.broadcastLocked() // a probe's place is free
	}
	f.mu.Unlock()
}

// limit waits for the rate limit's token.
func (f *flow) limit(ctx context.Context, stopping <-chan struct{}) error {
	if f.limiter == nil {
		return nil
	}
	r := f.limiter.Reserve() // never refused: one token, burst >= 1
	delay := r.Delay()
	if delay <= 0 {
		return nil
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		r.Cancel()
		return ctx.Err()
	case <-stopping:
		r.Cancel()
		return middleware.ErrStopping
	}
}

// outcomeOf is what an attempt's error tells the breaker: a permanent error
// (bad payload, a bug) or a shutdown says nothing about what the handler
// depends on.
func outcomeOf(ctx context.Context, err error) breaker.Outcome {
	switch {
	case err == nil:
		return breaker.Success
	case ctx.Err() != nil, errors.Is(err, middleware.ErrStopping), failure.IsPermanent(err):
		return breaker.Ignored
	default:
		return breaker.Failure
	}
}

// middleware is the flow's gate in the handler's stack, inside Retry.
func (f *flow) middleware() middleware.Middleware {
	return func(next middleware.Handler) middleware.Handler {
		return func(ctx context.Context, d *middleware.Delivery) error {
			if f.br == nil && f.limiter == nil && !f.blocked.Load() {
				return next(ctx, d)
			}
			var stopping <-chan struct{}
			if d.Slot != nil {
				stopping = d.Slot.Stopping()
			}
			for {
				probe, waited, err := f.admit(ctx, stopping, d.Msg)
				if err != nil {
					return gateErr(f.handler, err)
				}
				// Time spent waiting for the breaker or the pause does not
				// count against retry.max_elapsed: the message is not given
				// up on because the handler was held.
				if waited > 0 && !d.FirstFailure.IsZero() {
					d.FirstFailure = d.FirstFailure.Add(waited)
				}
				if err := f.limit(ctx, stopping); err != nil {
					f.record(probe, breaker.Ignored)
					return gateErr(f.handler, err)
				}
				err = next(ctx, d)
				o := outcomeOf(ctx, err)
				f.record(probe, o)
				if probe && o == breaker.Failure {
					// The breaker reopened: this attempt waits for the
					// next half-open spell instead of spending a retry.
					d.Logger().LogAttrs(ctx, slog.LevelWarn, "circuit breaker probe failed; the breaker is open again",
						slog.Any("error", err))
					continue
				}
				return err
			}
		}
	}
}

// gateErr wraps a wait at the gate that ended with the shutdown: the
// message is nacked and redelivered, not retried or dead-lettered.
func gateErr(handler string, err error) error {
	err = fmt.Errorf("handler %q waiting to be let through: %w", handler, err)
	if errors.Is(err, middleware.ErrStopping) {
		return failure.Permanent(err) // Retry returns it at once; DeadLetter passes ErrStopping through
	}
	return err
}

// reportFlow gives the recorders every handler's breaker state and pause
// switch at start, so that the gauges exist before the first transition.
func (s *Service) reportFlow() {
	r, ok := s.recorder.(metrics.FlowRecorder)
	if !ok {
		return
	}
	for _, st := range s.Flow() {
		if st.Breaker != "" {
			r.BreakerState(st.Handler, st.Breaker)
		}
		r.Paused(st.Handler, st.Paused)
	}
}

// notifyFor logs a breaker transition and reports it to the recorders.
func (s *Service) notifyFor(name string) func(from, to breaker.State) {
	return func(from, to breaker.State) {
		level := slog.LevelInfo
		if to == breaker.Open {
			level = slog.LevelWarn
		}
		s.logger.Log(context.Background(), level, "circuit breaker "+string(to),
			slog.String(middleware.LogKeyHandler, name), slog.String("from", string(from)), slog.String("to", string(to)))
		if r, ok := s.recorder.(metrics.FlowRecorder); ok {
			r.BreakerState(name, string(to))
		}
	}
}

// Pause stops the named handler taking messages: its subscription takes no
// more from the broker, and attempts not yet started wait (in-flight ones
// finish). Nothing is nacked, retried or dead-lettered for the pause. It
// works before and during Run, and lasts until [Service.Resume]. Handlers
// sharing the subscription (same group and topic) wait with it.
func (s *Service) Pause(name string) error { return s.setPaused(name, true) }

// Resume lets a paused handler take messages again.
func (s *Service) Resume(name string) error { return s.setPaused(name, false) }

func (s *Service) setPaused(name string, paused bool) error {
	h := s.handlerNamed(name)
	if h == nil {
		var names []string
		if m := s.byName.Load(); m != nil {
			names = slices.Sorted(maps.Keys(*m))
		}
		return fmt.Errorf("service: no handler named %q (registered: %v)", name, names)
	}
	h.flow.setPaused(paused, func() {
		verb := "handler resumed"
		if paused {
			verb = "handler paused"
		}
		s.logger.Info(verb, slog.String(middleware.LogKeyHandler, name))
		if r, ok := s.recorder.(metrics.FlowRecorder); ok {
			r.Paused(name, paused)
		}
	})
	return nil
}

func (s *Service) handlerNamed(name string) *handler {
	m := s.byName.Load()
	if m == nil {
		return nil
	}
	return (*m)[name]
}

// Flow reports the pause switch and breaker of every registered handler,
// sorted by name.
func (s *Service) Flow() []FlowState {
	s.mu.Lock()
	handlers := slices.Clone(s.handlers)
	s.mu.Unlock()
	out := make([]FlowState, 0, len(handlers))
	for _, h := range handlers {
		out = append(out, h.flow.state())
	}
	slices.SortFunc(out, func(a, b FlowState) int {
		if a.Handler < b.Handler {
			return -1
		}
		if a.Handler > b.Handler {
			return 1
		}
		return 0
	})
	return out
}
