package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
)

// A Companion runs for as long as [Service.Run] runs, such as the
// operations HTTP server of package ops: it starts before the handlers are
// subscribed and stops once the service has shut down.
type Companion interface {
	// Start is called by Run before it subscribes anything, with Run's
	// context. It must not block; an error ends Run before any handler
	// was subscribed.
	Start(ctx context.Context, s *Service) error
	// Stop is called once, when Run is about to return, after the service
	// shut down (or failed to start). It bounds its own wait; its error is
	// logged.
	Stop(ctx context.Context) error
}

// A FailingCompanion can fail while Run runs, such as a relay whose
// subscription the broker ended: Run then shuts the service down with its
// error, as when one of the service's own subscriptions dies, instead of
// running on, ready, without it. Run calls Failed once, after Start
// returned; the channel yields at most one error, and closing it without
// one reports nothing.
type FailingCompanion interface {
	Companion
	Failed() <-chan error
}

// WithCompanion runs c alongside the service; see [Companion].
func WithCompanion(c Companion) Option {
	return func(s *Service) { s.companions = append(s.companions, c) }
}

// WithStartError makes Run return err before it subscribes anything: the
// option of a constructor that could not build what it was asked for (an
// operations server on a bad address, an exporter it cannot make), so the
// error surfaces where the service starts rather than being lost.
func WithStartError(err error) Option { return WithCompanion(startError{err}) }

// startError is the companion of WithStartError.
type startError struct{ err error }

func (e startError) Start(context.Context, *Service) error { return e.err }
func (e startError) Stop(context.Context) error            { return nil }

// ShuttingDown reports whether Run is shutting down (intake stopped,
// in-flight handlers finishing) and why: the cause of Run's cancelled
// context, or the error of the subscription that died. It is false before
// Run, while running, and once Run returned.
func (s *Service) ShuttingDown() (bool, error) {
	if c := s.stopping.Load(); c != nil {
		return true, c.err
	}
	return false, nil
}

// stopCause is why Run shuts down.
type stopCause struct{ err error }

func (s *Service) setShuttingDown(ctx context.Context, died error) {
	cause := died
	if cause == nil {
		cause = context.Cause(ctx)
	}
	if cause == nil {
		cause = errors.New("service: shutting down")
	}
	s.stopping.Store(&stopCause{cause})
}

// startCompanions starts every companion; on an error it stops those it
// started.
func (s *Service) startCompanions(ctx context.Context) error {
	for i, c := range s.companions {
		if err := c.Start(ctx, s); err != nil {
			s.stopCompanions(ctx, s.companions[:i])
			return fmt.Errorf("service: start companion: %w", err)
		}
	}
	return nil
}

// watchCompanions returns the channel on which the first error of a
// [FailingCompanion] arrives, until stop is closed.
func (s *Service) watchCompanions(stop <-chan struct{}) <-chan error {
	died := make(chan error, 1)
	for _, c := range s.companions {
		fc, ok := c.(FailingCompanion)
		if !ok {
			continue
		}
		failed := fc.Failed()
		go func() {
			select {
			case err, ok := <-failed:
				if ok && err != nil {
					select {
					case died <- fmt.Errorf("service: companion failed: %w", err):
					default: // another one was first
					}
				}
			case <-stop:
			}
		}()
	}
	return died
}

// stopCompanions stops cs, last started first.
func (s *Service) stopCompanions(ctx context.Context, cs []Companion) {
	for i := len(cs) - 1; i >= 0; i-- {
		if err := cs[i].Stop(context.WithoutCancel(ctx)); err != nil {
			s.logger.Error("stopping a companion failed", slog.Any("error", err))
		}
	}
}
