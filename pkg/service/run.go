package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// ErrShutdownTimeout is wrapped by Run's error when handlers were still
// running after the shutdown timeout and did not return once their context
// was cancelled.
var ErrShutdownTimeout = errors.New("service: shutdown timeout")

// ErrNothingToRun is Run's error for a service with no handlers that was
// not made with [PublishOnly]: usually a handler that was never registered.
var ErrNothingToRun = errors.New("service: nothing to run: no handlers registered (a process that only publishes says so with service.PublishOnly)")

// cancelGrace is how long Run waits, after the shutdown timeout cancelled
// the handlers' context, for them to return before it gives up on them.
const cancelGrace = 2 * time.Second

// defaultBuffer bounds the messages a subscription holds (queued and in
// flight) when its policy sets no prefetch.
const defaultBuffer = 256

// Run subscribes every handler and processes messages until ctx is
// cancelled, then shuts down gracefully (see the package doc). It returns
// nil after a clean shutdown, or an error:
//
//   - the configuration cannot be honoured (the error names every problem);
//   - a subscription could not be opened, or died while running: its
//     adapter closed the channel (after whatever reconnection it allows).
//     The other subscriptions are shut down gracefully first; the error
//     names the group and topic;
//   - a companion failed to start, or, being a [FailingCompanion], failed
//     while running (shut down gracefully as above);
//   - handlers did not finish within the shutdown timeout, nor within a
//     short grace after their context was cancelled: the error wraps
//     [ErrShutdownTimeout] and names them. Their messages were not acked,
//     so the broker redelivers them.
//
// A Run that failed can be called again; so can one that ended.
func (s *Service) Run(ctx context.Context) error {
	if s.optErr != nil {
		return s.optErr
	}
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return ErrAlreadyRunning
	}
	consumers, err := s.plan()
	if err != nil {
		s.mu.Unlock()
		return err
	}
	s.running = true
	ready := s.ready
	s.mu.Unlock()
	wasReady := false
	defer func() {
		s.mu.Lock()
		s.running = false
		s.consumers = nil
		if wasReady {
			s.ready = make(chan struct{})
		}
		s.mu.Unlock()
		s.stopping.Store(nil)
	}()
	if err := s.startCompanions(ctx); err != nil {
		return err
	}
	defer s.stopCompanions(ctx, s.companions)
	watching := make(chan struct{})
	defer close(watching)
	companionDied := s.watchCompanions(watching)

	if err := s.honour(consumers); err != nil {
		return err
	}
	if err := s.provisionDeadLetters(ctx, consumers); err != nil {
		return err
	}
	s.describe()
	s.reportFlow()
	s.warnCycles()

	// Handlers run under their own context: cancelling Run's context stops
	// intake only. The handler context is cancelled when the shutdown
	// timeout passes (Watermill #446 is what this avoids).
	handlerCtx, stopHandlers := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHandlers()
	intakeCtx, stopIntake := context.WithCancel(ctx)
	defer stopIntake()

	ended := make(chan error, len(consumers))
	var readers sync.WaitGroup
	opened := consumers[:0:0]
	for _, c := range consumers {
		if err := s.open(intakeCtx, handlerCtx, c, &readers, ended); err != nil {
			stopIntake()
			readers.Wait()
			s.drain(opened, stopHandlers)
			return errors.Join(err, closeAll(opened))
		}
		opened = append(opened, c)
	}
	s.mu.Lock()
	s.consumers = consumers
	s.mu.Unlock()
	close(ready)
	wasReady = true
	s.logger.Info("service running", slog.Int("subscriptions", len(consumers)), slog.String("broker", s.broker.Name()))

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-ended:
		s.logger.Error("a subscription died; shutting the service down", slog.Any("error", runErr))
	case runErr = <-companionDied:
		s.logger.Error("a companion failed; shutting the service down", slog.Any("error", runErr))
	}
	s.setShuttingDown(ctx, runErr)
	s.logger.Info("shutting down: intake stopped, waiting for in-flight handlers", slog.Duration("timeout", s.shutdownTimeout))
	stopIntake()
	readers.Wait()
	runErr = errors.Join(runErr, s.drain(consumers, stopHandlers))
	return errors.Join(runErr, closeAll(consumers))
}

// open subscribes c and starts its dispatcher and reader.
func (s *Service) open(intake, handlerCtx context.Context, c *consumer, readers *sync.WaitGroup, ended chan<- error) error {
	sub, err := s.broker.Subscriber(c.key.group, c.opts)
	if err != nil {
		return fmt.Errorf("service: subscriber for group %q: %w", c.key.group, err)
	}
	// Parked keys first: nothing is subscribed yet if they cannot be read.
	if c.parking != nil {
		if err := c.parking.load(intake); err != nil {
			_ = sub.Close()
			return err
		}
	}
	msgs, err := sub.Subscribe(intake, c.key.topic)
	if err != nil {
		_ = sub.Close()
		return fmt.Errorf("service: subscribe group %q to %q: %w", c.key.group, c.key.topic, err)
	}
	c.sub = sub
	c.handlerCtx = handlerCtx
	for _, h := range c.byType {
		if h.batch != nil {
			h.batch.start(handlerCtx)
		}
	}
	if c.parking != nil {
		readers.Add(1)
		go func() {
			defer readers.Done()
			c.parking.refresh(intake)
		}()
	}
	limit := c.opts.Prefetch
	if limit <= 0 {
		limit = defaultBuffer
	}
	c.disp = newDispatcher(c.concurrency, limit, c.process)
	// Where a nack rewinds (Kafka), handing a held message back at shutdown
	// would make the next owner handle again every message of its
	// partition acked after it: finish it instead.
	c.disp.finish = s.broker.Capabilities().NackRewinds
	readers.Add(1)
	go func() {
		defer readers.Done()
		if err := c.read(intake, msgs); err != nil {
			ended <- err
		}
		c.disp.close() // what is queued goes back to the broker, or is finished
		go func() {
			for msg := range msgs { // the adapter closes msgs once intake stopped
				msg.Nack()
			}
		}()
	}()
	return nil
}

// drain waits for the in-flight handlers of consumers (and, where a nack
// rewinds, for the queued messages to be handled), bounded by the shutdown
// timeout; then it hands back what is still queued, cancels the handlers'
// context (stop) and waits a short grace. It returns an error naming the
// handlers still running after that.
func (s *Service) drain(consumers []*consumer, stop context.CancelFunc) error {
	done := make(chan struct{})
	go func() {
		for _, c := range consumers {
			if c.disp != nil {
				c.disp.close()
				<-c.disp.wait()
			}
		}
		close(done)
	}()
	timer := time.NewTimer(s.shutdownTimeout)
	defer timer.Stop()
	select {
	case <-done:
		return nil
	case <-timer.C:
	}
	s.logger.Warn("shutdown timeout: cancelling in-flight handlers; their messages will be redelivered")
	for _, c := range consumers {
		if c.disp != nil {
			c.disp.abandon()
		}
	}
	stop()
	timer.Reset(cancelGrace)
	select {
	case <-done:
		return nil
	case <-timer.C:
	}
	var stuck []string
	for _, c := range consumers {
		if c.disp != nil {
			stuck = append(stuck, c.disp.inFlight()...)
		}
	}
	slices.Sort(stuck)
	err := fmt.Errorf("%w: handlers still running %s after their context was cancelled: %v (their messages are not acked and will be redelivered)",
		ErrShutdownTimeout, s.shutdownTimeout+cancelGrace, slices.Compact(stuck))
	s.logger.Error("shutdown gave up on handlers", slog.Any("error", err))
	return err
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
