package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-go/switchyard/adapters/amqp"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/header"
)

// ---- Switchyard on RabbitMQ ----

type syamqp struct {
	s spec
	syService
}

func (a *syamqp) start(ctx context.Context, mode consumeMode, h func(Event)) error {
	b, err := amqp.New(ctx, amqp.Config{
		URL:            a.s.AMQPURL,
		ConnectionName: a.s.Prefix + "switchyard",
		Prefetch:       a.s.Prefetch,
	}, discard)
	if err != nil {
		return err
	}
	return a.syService.start(ctx, b, a.s, mode, h)
}

// ---- Watermill on RabbitMQ: watermill-amqp v3, durable pub/sub, confirms on ----

type wmamqp struct {
	s   spec
	mw  bool
	pub *wamqp.Publisher
	sub *wamqp.Subscriber
	wmRouter
}

func (a *wmamqp) start(ctx context.Context, mode consumeMode, h func(Event)) error {
	cfg := wamqp.NewDurablePubSubConfig(a.s.AMQPURL, wamqp.GenerateQueueNameTopicNameWithSuffix("watermill"))
	cfg.Publish.ConfirmDelivery = true
	cfg.Publish.ChannelPoolSize = 4 // as many confirm channels as Switchyard's publisher
	cfg.Consume.Qos.PrefetchCount = a.s.Prefetch
	var err error
	if a.pub, err = wamqp.NewPublisher(cfg, watermill.NopLogger{}); err != nil {
		return err
	}
	if a.sub, err = wamqp.NewSubscriber(cfg, watermill.NopLogger{}); err != nil {
		return err
	}
	if mode == consumeNone {
		return a.sub.SubscribeInitialize(a.s.topic())
	}
	return a.wmRouter.start(ctx, a.s.topic(), a.sub, a.pub, a.mw, h)
}

func (a *wmamqp) publish(_ context.Context, e *Event) error {
	msg, err := wmMessage(e)
	if err != nil {
		return err
	}
	return a.pub.Publish(a.s.topic(), msg)
}

func (a *wmamqp) close() {
	a.wmRouter.close()
	if a.sub != nil {
		_ = a.sub.Close()
	}
	if a.pub != nil {
		_ = a.pub.Close()
	}
}

// ---- raw amqp091-go: async confirms, window 1000; manual-ack consumer ----

const rawConfirmWindow = 1000

// rawamqp is amqp091-go by hand. With envelope (the raw-headers contender)
// it publishes what a Switchyard message puts on the wire: the same body,
// the same properties (content type, persistent, message id) and the same
// header table (the eight headers of a chain's first event: CloudEvents
// attributes, key, correlation id), mandatory as Switchyard's publisher;
// without it one "key" header, as a minimal client would.
type rawamqp struct {
	s        spec
	envelope bool
	conn     *amqp091.Connection
	pubCh    *amqp091.Channel
}

func (a *rawamqp) start(ctx context.Context, mode consumeMode, h func(Event)) error {
	var err error
	if a.conn, err = amqp091.DialConfig(a.s.AMQPURL, amqp091.Config{Properties: amqp091.Table{"connection_name": a.s.Prefix + "raw"}}); err != nil {
		return err
	}
	if a.pubCh, err = a.conn.Channel(); err != nil {
		return err
	}
	if err := a.pubCh.Confirm(false); err != nil {
		return err
	}
	topic, queue := a.s.topic(), a.s.topic()+".raw"
	if err := a.pubCh.ExchangeDeclare(topic, "fanout", true, false, false, false, nil); err != nil {
		return err
	}
	if _, err := a.pubCh.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		return err
	}
	if err := a.pubCh.QueueBind(queue, "", topic, false, nil); err != nil {
		return err
	}
	if mode == consumeNone {
		return nil
	}
	cch, err := a.conn.Channel()
	if err != nil {
		return err
	}
	if err := cch.Qos(a.s.Prefetch, 0, false); err != nil {
		return err
	}
	deliveries, err := cch.ConsumeWithContext(ctx, queue, "", false, false, false, false, nil)
	if err != nil {
		return err
	}
	for range a.s.Concurrency {
		go func() {
			for d := range deliveries {
				var e Event
				if err := json.Unmarshal(d.Body, &e); err != nil {
					_ = d.Nack(false, false)
					continue
				}
				h(e)
				_ = d.Ack(false)
			}
		}()
	}
	return nil
}

func (a *rawamqp) send(ctx context.Context, e *Event) (*amqp091.DeferredConfirmation, error) {
	p, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	if !a.envelope {
		return a.pubCh.PublishWithDeferredConfirmWithContext(ctx, a.s.topic(), "", false, false, amqp091.Publishing{
			ContentType:  "application/json",
			DeliveryMode: amqp091.Persistent,
			Headers:      amqp091.Table{"key": e.Key},
			Body:         p,
		})
	}
	// What a hand-written client pays for the same envelope: a UUIDv7
	// (google/uuid), the time formatted, a table per message.
	u, err := uuid.NewV7()
	if err != nil {
		return nil, err
	}
	id := u.String()
	return a.pubCh.PublishWithDeferredConfirmWithContext(ctx, a.s.topic(), "", true, false, amqp091.Publishing{
		ContentType:  header.ContentTypeJSON,
		DeliveryMode: amqp091.Persistent,
		MessageId:    id,
		Headers: amqp091.Table{
			header.SpecVersion:   header.SpecVersionValue,
			header.ID:            id,
			header.Type:          e.EventType(),
			header.Source:        benchSource,
			header.Time:          time.Now().UTC().Format(event.TimeLayout),
			header.ContentType:   header.ContentTypeJSON,
			header.Key:           e.Key,
			header.CorrelationID: id,
		},
		Body: p,
	})
}

var errNacked = errors.New("bench: broker nacked")

func (a *rawamqp) publish(ctx context.Context, e *Event) error {
	dc, err := a.send(ctx, e)
	if err != nil {
		return err
	}
	ok, err := dc.WaitContext(ctx)
	if err != nil {
		return err
	}
	if !ok {
		return errNacked
	}
	return nil
}

func (a *rawamqp) publishStream(ctx context.Context, n int, next func(int) *Event) error {
	ring := make([]*amqp091.DeferredConfirmation, 0, rawConfirmWindow)
	wait := func(dc *amqp091.DeferredConfirmation) error {
		ok, err := dc.WaitContext(ctx)
		if err != nil {
			return err
		}
		if !ok {
			return errNacked
		}
		return nil
	}
	for i := range n {
		if len(ring) == rawConfirmWindow {
			if err := wait(ring[0]); err != nil {
				return fmt.Errorf("bench: confirm: %w", err)
			}
			ring = ring[1:]
		}
		dc, err := a.send(ctx, next(i))
		if err != nil {
			return err
		}
		ring = append(ring, dc)
	}
	for _, dc := range ring {
		if err := wait(dc); err != nil {
			return fmt.Errorf("bench: confirm: %w", err)
		}
	}
	return nil
}

func (a *rawamqp) close() {
	if a.conn != nil {
		_ = a.conn.Close()
	}
}
