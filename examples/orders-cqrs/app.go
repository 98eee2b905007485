package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/switchyard-go/switchyard/pkg/command"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/eventstore"
	"github.com/switchyard-go/switchyard/pkg/ops"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// store is an event store that can also be read in global order, as the
// read model needs: eventstore.Memory and postgres.EventStore.
type store interface {
	eventstore.Store
	eventstore.AllReader
}

// wakingStore tells the read model about each append of this process, so
// that it need not wait for its next poll.
type wakingStore struct {
	store
	wake chan struct{}
}

func (w wakingStore) Append(ctx context.Context, streamID string, expectedVersion int, events ...event.Event) error {
	err := w.store.Append(ctx, streamID, expectedVersion, events...)
	if err == nil {
		nudge(w.wake)
	}
	return err
}

// nudge wakes the read model without blocking: one pending wake stands
// for any number.
func nudge(wake chan<- struct{}) {
	select {
	case wake <- struct{}{}:
	default:
	}
}

// listener is implemented by event stores that tell of commits, other
// processes' included (postgres.EventStore.Listen).
type listener interface {
	Listen(ctx context.Context) (<-chan struct{}, error)
}

// app is the order service: the command side (bus, OrderAggregate
// repository, handlers) and the query side (the orderSummaries read
// model), over one service and one event store.
type app struct {
	svc            *service.Service
	bus            *command.Bus
	store          store
	repo           *eventstore.Repository[Order]
	summaries      *readModel
	commandTimeout time.Duration
	logger         *slog.Logger
	wake           chan struct{} // the read model's
	ops            *ops.Server   // nil without an http section
}

func newApp(env *environment, logger *slog.Logger) (*app, error) {
	svc, s := env.svc, env.settings
	dec, err := newDecoder(svc.Registry())
	if err != nil {
		return nil, err
	}
	wake := make(chan struct{}, 1)
	st := wakingStore{store: env.store, wake: wake}
	summaries, err := newReadModel(s.ReadModel, env.table, env.checkpoints, env.store, dec, wake)
	if err != nil {
		return nil, err
	}
	// The rules the HTTP API tells apart must be recognised on whichever
	// instance sent the command, not only the one that handled it.
	if err := exportReadModel(env.ops, summaries); err != nil {
		return nil, err
	}
	bus, err := command.New(svc, s.Commands, command.WithLogger(logger),
		command.RejectionReasons(errInvalid, errUnknownOrder))
	if err != nil {
		return nil, err
	}
	a := &app{
		svc:            svc,
		bus:            bus,
		store:          st,
		repo:           &eventstore.Repository[Order]{Store: st, Decoder: dec, Apply: applyOrder},
		summaries:      summaries,
		commandTimeout: s.CommandTimeout,
		logger:         logger,
		wake:           wake,
		ops:            env.ops,
	}
	// One handler per command; handler names key per-handler settings in
	// a configuration file's handlers section.
	err = errors.Join(
		command.Handle(bus, "orders.place", command.OnAggregate(a.repo, decidePlace)),
		command.Handle(bus, "orders.pay", command.OnAggregate(a.repo, decidePay)),
		command.Handle(bus, "orders.ship", command.OnAggregate(a.repo, decideShip)),
	)
	if err != nil {
		return nil, err
	}
	return a, nil
}

// run runs the service and the read model until ctx ends; ready is closed
// once commands can be sent.
func (a *app) run(ctx context.Context, ready chan<- struct{}) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if l, ok := a.store.(wakingStore).store.(listener); ok {
		// Appends of other instances wake the read model too.
		if commits, err := l.Listen(ctx); err != nil {
			a.logger.Warn("read model: no commit notifications, polling only", "error", err)
		} else {
			go func() {
				for range commits {
					nudge(a.wake)
				}
			}()
		}
	}
	projErr := make(chan error, 1)
	go func() { projErr <- a.summaries.Run(ctx) }()
	runErr := make(chan error, 1)
	go func() { runErr <- a.svc.Run(ctx) }()
	select {
	case <-a.svc.Ready():
		close(ready)
	case err := <-runErr:
		cancel()
		<-projErr
		return err
	}
	var err error
	select {
	case err = <-runErr:
		cancel()
		if perr := <-projErr; err == nil {
			err = perr
		}
	case err = <-projErr:
		if err != nil {
			err = fmt.Errorf("read model: %w", err)
		}
		cancel()
		if rerr := <-runErr; err == nil {
			err = rerr
		}
	}
	return err
}

// started is an app running in the background, started by [app.start].
type started struct {
	cancel context.CancelFunc
	ended  chan struct{} // closed when run returned, with err
	err    error
}

// start runs the app in the background and returns once commands can be
// sent; errInterrupted when ctx ended first.
func (a *app) start(ctx context.Context) (*started, error) {
	runCtx, cancel := context.WithCancel(ctx)
	s := &started{cancel: cancel, ended: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		s.err = a.run(runCtx, ready)
		close(s.ended)
	}()
	select {
	case <-ready:
		return s, nil
	case <-s.ended:
		cancel()
		return nil, s.err
	case <-ctx.Done():
		_ = s.stop()
		return nil, errInterrupted
	}
}

// stop stops the app and returns run's error.
func (s *started) stop() error {
	s.cancel()
	<-s.ended
	return s.err
}
