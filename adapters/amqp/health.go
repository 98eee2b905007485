package amqp

import (
	"context"
	"errors"
	"fmt"
	"strings"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-go/switchyard/pkg/broker"
)

var (
	_ broker.HealthChecker = (*Broker)(nil)
	_ broker.BacklogReader = (*Broker)(nil)
)

// Check implements [broker.HealthChecker]: nil while both connections (the
// publishing and the consuming one) are open and RabbitMQ does not block
// publishing; else what is wrong, e.g. "amqp: consume connection to
// amqp://guest:xxxxx@host:5672/ down (reconnecting): ...", or an error
// wrapping [ErrBlocked] with the alarm RabbitMQ gave. It reads the state
// the connections' watchers keep (a lost connection is noticed by its
// socket or by the heartbeat), so it costs no round trip and never waits
// for a reconnect.
func (b *Broker) Check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("amqp: check: %w", err)
	}
	if b.isClosed() {
		return fmt.Errorf("amqp: check: %w", broker.ErrClosed)
	}
	var errs []error
	for _, l := range []*link{b.pubLink, b.subLink} {
		if err := l.state(); err != nil {
			errs = append(errs, fmt.Errorf("amqp: %s connection to %s down (reconnecting): %w", l.role, b.cfg.RedactedURL(), err))
		}
	}
	if reason := b.blocked.Load(); reason != nil {
		errs = append(errs, fmt.Errorf("%w: %s", ErrBlocked, *reason))
	}
	if len(errs) == 0 {
		return nil
	}
	// One line for /readyz's reason, every cause still reachable by
	// errors.Is (ErrBlocked, broker.ErrDisconnected).
	format := strings.TrimSuffix(strings.Repeat("%w; ", len(errs)), "; ")
	args := make([]any, len(errs))
	for i, e := range errs {
		args[i] = e
	}
	return fmt.Errorf(format, args...)
}

// Backlog implements [broker.BacklogReader]: the messages ready in group's
// queue on topic (a passive declaration on a channel of its own, closed
// afterwards). Messages handed out and not acked yet are not counted, nor
// those waiting in a delay tier for redelivery. A queue that does not exist
// (the group never subscribed) is an error. The call returns when ctx is
// done even if RabbitMQ does not answer.
func (b *Broker) Backlog(ctx context.Context, topic, group string) (broker.Backlog, error) {
	queue := b.cfg.queueName(topic, group)
	fail := func(err error) (broker.Backlog, error) {
		return broker.Backlog{}, fmt.Errorf("amqp: backlog of %q: %w", queue, err)
	}
	conn, _, err := b.pubLink.get()
	if err != nil {
		return fail(err)
	}
	type result struct {
		n   int
		err error
	}
	// amqp091-go's RPCs take no context: run it aside, so that a broker
	// that does not answer holds up only this goroutine (it ends when the
	// connection's heartbeat gives up).
	res := make(chan result, 1)
	go func() {
		ch, err := conn.Channel()
		if err != nil {
			res <- result{err: disconnectedErr(err)}
			return
		}
		defer ch.Close()
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		var aerr *amqp091.Error
		switch {
		case errors.As(err, &aerr) && aerr.Code == amqp091.NotFound:
			err = fmt.Errorf("queue does not exist (the group never subscribed): %w", err)
		case err != nil:
			err = disconnectedErr(err)
		}
		res <- result{q.Messages, err}
	}()
	select {
	case r := <-res:
		if r.err != nil {
			return fail(r.err)
		}
		return broker.Backlog{Messages: int64(r.n)}, nil
	case <-ctx.Done():
		return fail(ctx.Err())
	}
}
