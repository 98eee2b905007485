package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/service"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// ---- Switchyard (shared by all brokers) ----

// benchSource is the CloudEvents source of the Switchyard contenders'
// messages, which raw-headers writes too.
const benchSource = "switchyard-bench"

// syService runs a Switchyard service with one typed handler on b: the
// default middleware stack, default concurrency and prefetch.
type syService struct {
	b      broker.Broker
	svc    *service.Service
	topic  string
	cancel context.CancelFunc
	done   chan error
}

func (y *syService) start(ctx context.Context, b broker.Broker, s spec, mode consumeMode, h func(Event)) error {
	y.b, y.topic = b, s.topic()
	y.svc = service.New(b, service.WithLogger(discard), service.WithSource(benchSource))
	switch mode {
	case consumeNone:
		// A consumer group must exist so the broker keeps what is published.
		sub, err := b.Subscriber(s.group(), broker.SubscriberOptions{})
		if err != nil {
			return err
		}
		if si, ok := sub.(message.SubscribeInitializer); ok {
			if err := si.SubscribeInitialize(y.topic); err != nil {
				return err
			}
		}
		return nil
	case consumeDrain:
		sub, err := b.Subscriber(s.group(), broker.SubscriberOptions{})
		if err != nil {
			return err
		}
		ch, err := sub.Subscribe(ctx, y.topic)
		if err != nil {
			return err
		}
		go func() {
			for m := range ch {
				m.Ack()
			}
		}()
		return nil
	}
	err := service.Handle(y.svc, "bench", func(_ context.Context, e Event) error {
		h(e)
		return nil
	}, service.Group(s.group()), service.Topic(y.topic))
	if err != nil {
		return err
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	y.cancel, y.done = cancel, make(chan error, 1)
	go func() { y.done <- y.svc.Run(rctx) }()
	select {
	case <-y.svc.Ready():
		return nil
	case err := <-y.done:
		return fmt.Errorf("bench: service stopped: %w", err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (y *syService) publish(ctx context.Context, e *Event) error {
	return y.svc.Publish(ctx, *e, service.ToTopic(y.topic))
}

// asyncPublisher is a Switchyard contender that publishes with
// Service.PublishAsync from one goroutine, keeping at most
// rawProduceWindow publishes unconfirmed: the same number in flight as
// the raw clients' streams.
type asyncPublisher struct {
	switchyardContender
}

// switchyardContender is a Switchyard contender on one broker.
type switchyardContender interface {
	contender
	service() *syService
}

func (y *syService) service() *syService { return y }

func (a *asyncPublisher) publishStream(ctx context.Context, n int, next func(int) *Event) error {
	y := a.service()
	sem := make(chan struct{}, rawProduceWindow)
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	done := func(err error) {
		if err != nil {
			once.Do(func() { first = err })
		}
		<-sem
		wg.Done()
	}
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		}
		wg.Add(1)
		y.svc.PublishAsync(ctx, *next(i), done, service.ToTopic(y.topic))
	}
	wg.Wait()
	return first
}

func (y *syService) close() {
	if y.cancel != nil {
		y.cancel()
		select {
		case <-y.done:
		case <-time.After(10 * time.Second):
		}
	}
	if y.b != nil {
		_ = y.b.Close()
	}
}

type symemory struct {
	s spec
	syService
}

func (m *symemory) start(ctx context.Context, mode consumeMode, h func(Event)) error {
	b, err := memory.New(memory.Config{}, discard)
	if err != nil {
		return err
	}
	return m.syService.start(ctx, b, m.s, mode, h)
}

// ---- Watermill (shared router setup) ----

// wmRouter runs a Watermill Router with one handler that json-decodes into
// Event; with mw it adds Recoverer, Retry, CorrelationID and PoisonQueue.
type wmRouter struct {
	router *message.Router
	cancel context.CancelFunc
	done   chan error
}

func (w *wmRouter) start(ctx context.Context, topic string, sub message.Subscriber, pub message.Publisher, mw bool, h func(Event)) error {
	logger := watermill.NopLogger{}
	r, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, logger)
	if err != nil {
		return err
	}
	if mw {
		poison, err := middleware.PoisonQueue(pub, topic+"-poison")
		if err != nil {
			return err
		}
		r.AddMiddleware(
			middleware.Recoverer,
			middleware.Retry{MaxRetries: 3, InitialInterval: 100 * time.Millisecond, MaxInterval: time.Second, Multiplier: 2, Logger: logger}.Middleware,
			middleware.CorrelationID,
			poison,
		)
	}
	r.AddConsumerHandler("bench", topic, sub, func(msg *message.Message) error {
		var e Event
		if err := json.Unmarshal(msg.Payload, &e); err != nil {
			return err
		}
		h(e)
		return nil
	})
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w.router, w.cancel, w.done = r, cancel, make(chan error, 1)
	go func() { w.done <- r.Run(rctx) }()
	select {
	case <-r.Running():
		return nil
	case err := <-w.done:
		return fmt.Errorf("bench: router stopped: %w", err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *wmRouter) close() {
	if w.cancel != nil {
		w.cancel()
		select {
		case <-w.done:
		case <-time.After(10 * time.Second):
		}
	}
}

// wmMessage encodes e as a Watermill message with its key in metadata.
func wmMessage(e *Event) (*message.Message, error) {
	p, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	m := message.NewMessage(watermill.NewUUID(), p)
	m.Metadata.Set("key", e.Key)
	return m, nil
}

type wmmemory struct {
	s  spec
	mw bool
	ps *gochannel.GoChannel
	wmRouter
}

func (m *wmmemory) start(ctx context.Context, mode consumeMode, h func(Event)) error {
	m.ps = gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
	switch mode {
	case consumeNone:
		return nil
	case consumeDrain:
		ch, err := m.ps.Subscribe(ctx, m.s.topic())
		if err != nil {
			return err
		}
		go func() {
			for msg := range ch {
				msg.Ack()
			}
		}()
		return nil
	}
	return m.wmRouter.start(ctx, m.s.topic(), m.ps, m.ps, m.mw, h)
}

func (m *wmmemory) publish(_ context.Context, e *Event) error {
	msg, err := wmMessage(e)
	if err != nil {
		return err
	}
	return m.ps.Publish(m.s.topic(), msg)
}

func (m *wmmemory) close() {
	m.wmRouter.close()
	if m.ps != nil {
		_ = m.ps.Close()
	}
}

// ---- raw: a buffered Go channel and a worker pool ----

// rawmemory is the in-memory "raw" baseline: a buffered channel of encoded
// messages (capacity = the memory adapter's default buffer) drained by a pool
// of workers as large as Switchyard's default handler concurrency.
type rawmemory struct {
	s  spec
	ch chan []byte
}

func (m *rawmemory) start(ctx context.Context, mode consumeMode, h func(Event)) error {
	m.ch = make(chan []byte, memory.DefaultBufferSize)
	if mode == consumeNone {
		return nil
	}
	for range m.s.Concurrency {
		go func() {
			for p := range m.ch {
				if mode == consumeDrain {
					continue
				}
				var e Event
				if err := json.Unmarshal(p, &e); err == nil {
					h(e)
				}
			}
		}()
	}
	return nil
}

func (m *rawmemory) publish(ctx context.Context, e *Event) error {
	p, err := json.Marshal(e)
	if err != nil {
		return err
	}
	select {
	case m.ch <- p:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (m *rawmemory) close() {}
