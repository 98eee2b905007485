package amqp

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-go/switchyard/pkg/broker"
)

// Publisher publishes with publisher confirms over a pool of confirm-mode
// channels. Publish sends every message of a call without waiting, then
// waits for all their confirms, so batches and concurrent callers pipeline.
// It is safe for concurrent use.
type Publisher struct {
	b    *Broker
	pool chan *pubChan // nil entries are channels not opened yet

	mu       sync.RWMutex
	closed   bool
	inflight sync.WaitGroup // Publish calls in progress
	wg       sync.WaitGroup // dispatcher goroutines
}

var _ message.Publisher = (*Publisher)(nil)

func newPublisher(b *Broker) *Publisher {
	p := &Publisher{b: b, pool: make(chan *pubChan, b.cfg.PublishChannels)}
	for range b.cfg.PublishChannels {
		p.pool <- nil
	}
	return p
}

// Publish publishes msgs to topic's fanout exchange (declaring it on first
// use) as persistent messages and returns once RabbitMQ has confirmed every
// one of them. A nack, a return (no consumer group bound, see
// [Config.AllowUnroutable]), a lost connection (the error wraps
// [broker.ErrDisconnected]), a resource alarm ([ErrBlocked]) or
// [Config.ConfirmTimeout] makes it fail; the
// messages may then or may not have been stored, never silently dropped.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	ctx, cancel := context.WithTimeout(context.Background(), p.b.cfg.ConfirmTimeout)
	defer cancel()
	exchange := p.b.cfg.exchangeName(topic)
	if err := p.b.topo.exchange(exchange); err != nil {
		return fmt.Errorf("amqp: publish to %q: %w", topic, err)
	}
	err := p.publish(ctx, topic, exchange, "", !p.b.cfg.AllowUnroutable, msgs)
	var aerr *amqp091.Error
	if errors.As(err, &aerr) && aerr.Code == amqp091.NotFound {
		// The exchange was deleted behind our back: declare it next time.
		p.b.topo.declared.Delete("x:" + exchange)
	}
	return err
}

func (p *Publisher) enter() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return false
	}
	p.inflight.Add(1)
	return true
}

func (p *Publisher) publish(ctx context.Context, topic, exchange, key string, mandatory bool, msgs []*message.Message) error {
	if !p.enter() {
		return fmt.Errorf("amqp: publish to %q: %w", topic, broker.ErrClosed)
	}
	defer p.inflight.Done()
	if len(msgs) == 0 {
		return nil
	}
	if reason := p.b.blocked.Load(); reason != nil {
		// Writes would stall until the alarm clears: fail fast instead.
		return fmt.Errorf("amqp: publish to %q: %w: %s", topic, ErrBlocked, *reason)
	}
	pc, err := p.acquire(ctx)
	if err != nil {
		return fmt.Errorf("amqp: publish to %q: %w", topic, err)
	}
	bt := &batch{left: len(msgs), done: make(chan struct{})}
	var sendErr error
	for _, m := range msgs {
		pub := toPublishing(m)
		tag := pc.ch.GetNextPublishSeqNo()
		if !pc.add(tag, &pending{batch: bt, exchange: exchange, id: m.UUID}) {
			sendErr = amqp091.ErrClosed
			break
		}
		if _, err := pc.ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, mandatory, false, pub); err != nil {
			pc.remove(tag)
			sendErr = err
			break
		}
	}
	p.pool <- pc
	if sendErr != nil {
		return fmt.Errorf("amqp: publish to %q: %w", topic, disconnectedErr(sendErr))
	}
	select {
	case <-bt.done:
		if bt.err != nil {
			return fmt.Errorf("amqp: publish to %q: %w", topic, bt.err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("amqp: publish to %q: waiting for confirms: %w", topic, ctx.Err())
	}
}

// acquire takes a channel from the pool, replacing it with a fresh one if it
// is not open yet or was closed (lost connection, channel exception).
func (p *Publisher) acquire(ctx context.Context) (*pubChan, error) {
	var pc *pubChan
	select {
	case pc = <-p.pool:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if pc != nil && !pc.ch.IsClosed() && !pc.isDead() {
		return pc, nil
	}
	conn, _, err := p.b.pubLink.get()
	if err != nil {
		p.pool <- pc
		return nil, err
	}
	npc, err := p.open(conn)
	if err != nil {
		p.pool <- pc
		return nil, disconnectedErr(err)
	}
	return npc, nil
}

func (p *Publisher) open(conn *amqp091.Connection) (*pubChan, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("enable confirms: %w", err)
	}
	pc := &pubChan{ch: ch, pending: map[uint64]*pending{}, allowUnroutable: p.b.cfg.AllowUnroutable}
	// Returns must be unbuffered: RabbitMQ sends basic.return before the
	// basic.ack of the same message, and the library hands the return over
	// before it reads the ack, so the dispatcher has recorded the return
	// by the time it sees the confirm.
	returns := ch.NotifyReturn(make(chan amqp091.Return))
	confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, 256))
	closes := ch.NotifyClose(make(chan *amqp091.Error, 1))
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		pc.dispatch(confirms, returns, closes)
	}()
	return pc, nil
}

// Close waits for Publish calls in progress, then closes the channels. Later
// Publish calls fail with [broker.ErrClosed]. It is idempotent.
func (p *Publisher) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	p.inflight.Wait()
	for range cap(p.pool) {
		if pc := <-p.pool; pc != nil {
			_ = pc.ch.Close()
		}
	}
	p.wg.Wait()
	return nil
}

// pubChan is one confirm-mode channel and the messages awaiting its confirms.
type pubChan struct {
	ch              *amqp091.Channel
	allowUnroutable bool

	mu      sync.Mutex
	pending map[uint64]*pending // by delivery tag
	dead    bool                // the channel closed: nothing more will be confirmed
}

type pending struct {
	batch    *batch
	exchange string
	id       string
	returned *amqp091.Return
}

// batch is one Publish call: done is closed when every message is resolved.
type batch struct {
	mu   sync.Mutex
	left int
	err  error
	done chan struct{}
}

func (b *batch) resolve(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil && b.err == nil {
		b.err = err
	}
	b.left--
	if b.left == 0 {
		close(b.done)
	}
}

// add registers a message about to be published; false means the channel
// is already dead (its pending messages were failed).
func (pc *pubChan) add(tag uint64, p *pending) bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.dead {
		return false
	}
	pc.pending[tag] = p
	return true
}

func (pc *pubChan) isDead() bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.dead
}

func (pc *pubChan) remove(tag uint64) {
	pc.mu.Lock()
	delete(pc.pending, tag)
	pc.mu.Unlock()
}

// dispatch matches returns and confirms to pending messages until the
// channel closes, then fails whatever is still pending.
func (pc *pubChan) dispatch(confirms <-chan amqp091.Confirmation, returns <-chan amqp091.Return, closes <-chan *amqp091.Error) {
	for {
		select {
		case r, ok := <-returns:
			if !ok {
				returns = nil
				continue
			}
			pc.markReturned(&r)
		case c, ok := <-confirms:
			if !ok {
				pc.failAll(closeError(closes))
				return
			}
			pc.mu.Lock()
			p := pc.pending[c.DeliveryTag]
			delete(pc.pending, c.DeliveryTag)
			pc.mu.Unlock()
			if p == nil {
				continue
			}
			var err error
			switch {
			case !c.Ack:
				err = ErrNacked
			case p.returned != nil && !pc.allowUnroutable:
				err = fmt.Errorf("%w (exchange %q: %d %s)", ErrUnroutable, p.returned.Exchange, p.returned.ReplyCode, p.returned.ReplyText)
			}
			p.batch.resolve(err)
		}
	}
}

// markReturned marks the oldest unconfirmed message with the returned
// message's exchange and id.
func (pc *pubChan) markReturned(r *amqp091.Return) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	var best uint64
	var bp *pending
	for tag, p := range pc.pending {
		if p.returned == nil && p.id == r.MessageId && p.exchange == r.Exchange && (bp == nil || tag < best) {
			best, bp = tag, p
		}
	}
	if bp != nil {
		bp.returned = r
	}
}

func (pc *pubChan) failAll(err error) {
	pc.mu.Lock()
	pend := pc.pending
	pc.pending = map[uint64]*pending{}
	pc.dead = true
	pc.mu.Unlock()
	for _, p := range pend {
		p.batch.resolve(err)
	}
}

// closeError explains why a channel closed before its confirms arrived.
func closeError(closes <-chan *amqp091.Error) error {
	var e *amqp091.Error
	select {
	case e = <-closes:
	case <-time.After(100 * time.Millisecond):
	}
	if e != nil && e.Server && isChannelLevel(e.Code) {
		return fmt.Errorf("channel closed by the broker before confirm: %w", e)
	}
	if e == nil {
		return fmt.Errorf("%w: channel closed before confirm", broker.ErrDisconnected)
	}
	return fmt.Errorf("%w: channel closed before confirm: %w", broker.ErrDisconnected, e)
}

// isChannelLevel reports AMQP reply codes that close a channel, not the
// connection.
func isChannelLevel(code int) bool {
	switch code {
	case amqp091.ContentTooLarge, amqp091.NoRoute, amqp091.NoConsumers, amqp091.AccessRefused,
		amqp091.NotFound, amqp091.ResourceLocked, amqp091.PreconditionFailed:
		return true
	}
	return false
}
