package amqp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/header"
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

	deadlines deadlines // ConfirmTimeout without a timer per Publish
	// window holds a token per PublishAsync message awaiting its confirm:
	// PublishAsync blocks while it is full (see AsyncWindow).
	window      chan struct{}
	unconfirmed sync.WaitGroup // PublishAsync messages not yet reported, for Close
	exchanges   sync.Map       // topic -> *exchangeNames, so Publish builds no strings
	batches     sync.Pool      // *batch, reused when every message was resolved
}

// exchangeNames caches a topic's exchange name and its declaration key.
type exchangeNames struct{ name, key string }

var (
	_ message.Publisher     = (*Publisher)(nil)
	_ broker.AsyncPublisher = (*Publisher)(nil)
)

// AsyncWindow is how many messages given to [Publisher.PublishAsync] may
// await their confirms at once, over all its channels; PublishAsync blocks
// while that many are unconfirmed. It matches what one confirm-mode client
// usually keeps in flight to saturate a single RabbitMQ node.
const AsyncWindow = 1024

func newPublisher(b *Broker) *Publisher {
	p := &Publisher{b: b, pool: make(chan *pubChan, b.cfg.PublishChannels), window: make(chan struct{}, AsyncWindow)}
	p.deadlines.timeout = b.cfg.ConfirmTimeout
	p.deadlines.grain = max(b.cfg.ConfirmTimeout/16, time.Millisecond)
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
	// One shared deadline channel per ConfirmTimeout/16 instead of a timer
	// and a context per call: the wait lasts ConfirmTimeout to 1/16 more.
	expire := p.deadlines.current()
	x := p.exchangeOf(topic)
	if err := p.b.topo.exchangeKeyed(x.name, x.key); err != nil {
		return fmt.Errorf("amqp: publish to %q: %w", topic, err)
	}
	err := p.publish(context.Background(), expire, topic, x.name, "", !p.b.cfg.AllowUnroutable, msgs)
	var aerr *amqp091.Error
	if err != nil && errors.As(err, &aerr) && aerr.Code == amqp091.NotFound {
		// The exchange was deleted behind our back: declare it next time.
		p.b.topo.declared.Delete(x.key)
	}
	return err
}

func (p *Publisher) exchangeOf(topic string) *exchangeNames {
	if x, ok := p.exchanges.Load(topic); ok {
		return x.(*exchangeNames)
	}
	name := p.b.cfg.exchangeName(topic)
	x, _ := p.exchanges.LoadOrStore(topic, &exchangeNames{name: name, key: exchangeKey(name)})
	return x.(*exchangeNames)
}

// deadlines hands out channels that are closed between timeout and
// timeout+grain from now. Callers within one grain share a channel (and
// its one timer).
type deadlines struct {
	timeout, grain time.Duration

	mu  sync.Mutex
	cur atomic.Pointer[deadline]
}

type deadline struct {
	start time.Time
	done  chan struct{}
}

func (d *deadlines) current() <-chan struct{} {
	now := time.Now()
	if g := d.cur.Load(); g != nil && now.Sub(g.start) < d.grain {
		return g.done
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if g := d.cur.Load(); g != nil && now.Sub(g.start) < d.grain {
		return g.done
	}
	g := &deadline{start: now, done: make(chan struct{})}
	// Whoever takes g up to one grain after its start still waits at
	// least timeout.
	time.AfterFunc(d.timeout+d.grain, func() { close(g.done) })
	d.cur.Store(g)
	return g.done
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

// publish sends msgs and waits for their confirms until ctx is done or
// expire (may be nil) is closed; either gives context.DeadlineExceeded or
// ctx's error.
func (p *Publisher) publish(ctx context.Context, expire <-chan struct{}, topic, exchange, key string, mandatory bool, msgs []*message.Message) error {
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
	pc, err := p.acquire(ctx, expire)
	if err != nil {
		return fmt.Errorf("amqp: publish to %q: %w", topic, err)
	}
	bt, _ := p.batches.Get().(*batch)
	if bt == nil {
		bt = &batch{done: make(chan struct{}, 1)}
	}
	bt.left, bt.err = len(msgs), nil
	var sendErr error
	sent := 0
	for _, m := range msgs {
		if err := ctx.Err(); err != nil {
			sendErr = err
			break
		}
		pub := pc.publishing(m)
		tag := pc.ch.GetNextPublishSeqNo()
		if !pc.add(tag, pending{batch: bt, exchange: exchange, id: m.UUID}) {
			sendErr = amqp091.ErrClosed
			break
		}
		if _, err := pc.ch.PublishWithDeferredConfirm(exchange, key, mandatory, false, pub); err != nil {
			pc.remove(tag)
			sendErr = err
			break
		}
		sent++
	}
	clear(pc.headers) // keep no message's headers alive
	p.pool <- pc
	if sendErr != nil {
		// Messages already sent still resolve bt later: it is not reused.
		if errors.Is(sendErr, ctx.Err()) {
			return fmt.Errorf("amqp: publish to %q: %w", topic, sendErr)
		}
		return fmt.Errorf("amqp: publish to %q: %w", topic, disconnectedErr(sendErr))
	}
	select {
	case <-bt.done:
		err := bt.err
		p.batches.Put(bt) // every message resolved: nothing refers to bt
		if err != nil {
			return fmt.Errorf("amqp: publish to %q: %w", topic, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("amqp: publish to %q: waiting for confirms: %w", topic, ctx.Err())
	case <-expire:
		return fmt.Errorf("amqp: publish to %q: waiting for confirms: %w", topic, context.DeadlineExceeded)
	}
}

// PublishAsync implements [broker.AsyncPublisher]: it publishes msgs to
// topic's fanout exchange, as Publish does, on one channel of the pool
// without waiting for their confirms, which the channel's dispatcher
// matches to the messages and reports to done as they arrive. At most
// [AsyncWindow] PublishAsync messages await confirms at once; beyond that
// PublishAsync waits for a slot, or for ctx. Each message is reported
// once: nil when RabbitMQ confirmed it, or the error Publish would have
// returned (nack, return, [ErrBlocked], a lost connection or channel
// wrapping [broker.ErrDisconnected] for every message still unconfirmed
// when it died, [Config.ConfirmTimeout] with context.DeadlineExceeded,
// [broker.ErrClosed], or ctx's error for the messages not sent).
func (p *Publisher) PublishAsync(ctx context.Context, topic string, done func(*message.Message, error), msgs ...*message.Message) {
	if len(msgs) == 0 {
		return
	}
	x := p.exchangeOf(topic)
	call := &asyncCall{p: p, topic: topic, x: x, done: done}
	failRest := func(rest []*message.Message, err error) {
		for _, m := range rest {
			call.fail(m, err)
		}
	}
	if !p.enter() {
		failRest(msgs, broker.ErrClosed)
		return
	}
	defer p.inflight.Done()
	if err := p.b.topo.exchangeKeyed(x.name, x.key); err != nil {
		failRest(msgs, err)
		return
	}
	if reason := p.b.blocked.Load(); reason != nil {
		failRest(msgs, fmt.Errorf("%w: %s", ErrBlocked, *reason))
		return
	}
	pc, err := p.acquire(ctx, p.deadlines.current())
	if err != nil {
		failRest(msgs, err)
		return
	}
	defer func() {
		clear(pc.headers) // keep no message's headers alive
		p.pool <- pc
	}()
	mandatory := !p.b.cfg.AllowUnroutable
	expires := time.Now().Add(p.b.cfg.ConfirmTimeout).UnixNano()
	for i, m := range msgs {
		if err := ctx.Err(); err != nil {
			failRest(msgs[i:], err)
			return
		}
		p.unconfirmed.Add(1) // before the slot: report's Done follows it
		select {
		case p.window <- struct{}{}:
		default:
			// Full: wait for confirms (dispatchers run without this
			// channel being in the pool) or for ctx.
			select {
			case p.window <- struct{}{}:
			case <-ctx.Done():
				p.unconfirmed.Done()
				failRest(msgs[i:], ctx.Err())
				return
			}
		}
		pub := pc.publishing(m)
		tag := pc.ch.GetNextPublishSeqNo()
		if !pc.add(tag, pending{async: call, msg: m, expires: expires, exchange: x.name, id: m.UUID}) {
			call.report(m, disconnectedErr(amqp091.ErrClosed))
			failRest(msgs[i+1:], disconnectedErr(amqp091.ErrClosed))
			return
		}
		if _, err := pc.ch.PublishWithDeferredConfirm(x.name, "", mandatory, false, pub); err != nil {
			if pc.remove(tag) { // else the dispatcher has reported it
				call.report(m, disconnectedErr(err))
			}
			failRest(msgs[i+1:], disconnectedErr(err))
			return
		}
	}
}

// acquire takes a channel from the pool, replacing it with a fresh one if it
// is not open yet or was closed (lost connection, channel exception).
func (p *Publisher) acquire(ctx context.Context, expire <-chan struct{}) (*pubChan, error) {
	var pc *pubChan
	select {
	case pc = <-p.pool:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-expire:
		return nil, context.DeadlineExceeded
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
	pc := &pubChan{ch: ch, pending: map[uint64]pending{}, allowUnroutable: p.b.cfg.AllowUnroutable}
	if prefix := p.b.cfg.CloudEventsPrefix; prefix != "" && prefix != header.CloudEventsPrefix {
		pc.cePrefix = prefix
	}
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
		pc.dispatch(confirms, returns, closes, p.deadlines.grain)
	}()
	return pc, nil
}

// Close waits for Publish and PublishAsync calls in progress and for the
// confirms of PublishAsync messages (up to ConfirmTimeout; those still
// unconfirmed then are reported with an error wrapping
// [broker.ErrDisconnected] when the channels close), then closes the
// channels. Later Publish calls fail with [broker.ErrClosed]. It is
// idempotent.
func (p *Publisher) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	p.inflight.Wait()
	drained := make(chan struct{})
	go func() { p.unconfirmed.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(p.b.cfg.ConfirmTimeout):
	}
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
	// cePrefix, when set, replaces "ce_" in the names of the headers
	// written (Config.CloudEventsPrefix).
	cePrefix string

	// headers is reused for every publishing by whoever holds the channel
	// (amqp091-go encodes it before Publish returns).
	headers amqp091.Table
	// boxed remembers, per header name, the last value and its boxed form:
	// headers that repeat from message to message (spec version, type,
	// source, content type) are not boxed again.
	boxed map[string]boxedValue

	mu      sync.Mutex
	pending map[uint64]pending // by delivery tag
	dead    bool               // the channel closed: nothing more will be confirmed
}

type pending struct {
	batch    *batch     // a Publish call, or nil for PublishAsync
	async    *asyncCall // a PublishAsync call, or nil for Publish
	msg      *message.Message
	expires  int64 // PublishAsync: unix nanoseconds after which it fails
	exchange string
	id       string
	returned *amqp091.Return
}

// resolve reports p's outcome to its Publish or PublishAsync call.
func (p pending) resolve(err error) {
	if p.async != nil {
		p.async.report(p.msg, err)
		return
	}
	p.batch.resolve(err)
}

// asyncCall is one PublishAsync call, shared by its messages' pending
// entries.
type asyncCall struct {
	p     *Publisher
	topic string
	x     *exchangeNames
	done  func(*message.Message, error)
}

// report frees m's window slot and tells the caller; it is called once per
// message that took a slot.
func (c *asyncCall) report(m *message.Message, err error) {
	<-c.p.window
	c.fail(m, err)
	c.p.unconfirmed.Done()
}

// fail tells the caller about m, wrapping err as Publish does.
func (c *asyncCall) fail(m *message.Message, err error) {
	if err != nil {
		var aerr *amqp091.Error
		if errors.As(err, &aerr) && aerr.Code == amqp091.NotFound {
			// The exchange was deleted behind our back: declare it next time.
			c.p.b.topo.declared.Delete(c.x.key)
		}
		err = fmt.Errorf("amqp: publish to %q: %w", c.topic, err)
	}
	c.done(m, err)
}

// batch is one Publish call: done (capacity 1) receives once every message
// is resolved. A batch whose messages all resolved is reused.
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
		b.done <- struct{}{}
	}
}

// add registers a message about to be published; false means the channel
// is already dead (its pending messages were failed).
func (pc *pubChan) add(tag uint64, p pending) bool {
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

// remove unregisters a message whose publishing failed; false means the
// dispatcher already resolved it (the channel died meanwhile).
func (pc *pubChan) remove(tag uint64) bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	_, ok := pc.pending[tag]
	delete(pc.pending, tag)
	return ok
}

// expire fails the PublishAsync messages whose confirm is overdue
// (ConfirmTimeout): a late confirm for them is then ignored.
func (pc *pubChan) expire(now int64) {
	var late []pending
	pc.mu.Lock()
	for tag, p := range pc.pending {
		if p.async != nil && p.expires < now {
			late = append(late, p)
			delete(pc.pending, tag)
		}
	}
	pc.mu.Unlock()
	for _, p := range late {
		p.resolve(fmt.Errorf("waiting for confirms: %w", context.DeadlineExceeded))
	}
}

// dispatch matches returns and confirms to pending messages until the
// channel closes, then fails whatever is still pending.
func (pc *pubChan) dispatch(confirms <-chan amqp091.Confirmation, returns <-chan amqp091.Return, closes <-chan *amqp091.Error, sweep time.Duration) {
	tick := time.NewTicker(sweep)
	defer tick.Stop()
	for {
		select {
		case now := <-tick.C:
			pc.expire(now.UnixNano())
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
			p, ok := pc.pending[c.DeliveryTag]
			delete(pc.pending, c.DeliveryTag)
			pc.mu.Unlock()
			if !ok {
				continue
			}
			var err error
			switch {
			case !c.Ack:
				err = ErrNacked
				// A nack says the broker could not take the message, and
				// on a cluster the channel may stay that way: RabbitMQ
				// 3.10 kept nacking every publish of a channel opened
				// while its quorum queue had no leader yet, after a new
				// leader was elected (docs/clusters.md). Retire the
				// channel: the pool opens a fresh one for the next publish.
				go func() { _ = pc.ch.Close() }()
			case p.returned != nil && !pc.allowUnroutable:
				err = fmt.Errorf("%w (exchange %q: %d %s)", ErrUnroutable, p.returned.Exchange, p.returned.ReplyCode, p.returned.ReplyText)
			}
			p.resolve(err)
		}
	}
}

// markReturned marks the oldest unconfirmed message with the returned
// message's exchange and id.
func (pc *pubChan) markReturned(r *amqp091.Return) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	var best uint64
	found := false
	for tag, p := range pc.pending {
		if p.returned == nil && p.id == r.MessageId && p.exchange == r.Exchange && (!found || tag < best) {
			best, found = tag, true
		}
	}
	if found {
		p := pc.pending[best]
		p.returned = r
		pc.pending[best] = p
	}
}

func (pc *pubChan) failAll(err error) {
	pc.mu.Lock()
	pend := pc.pending
	pc.pending = map[uint64]pending{}
	pc.dead = true
	pc.mu.Unlock()
	for _, p := range pend {
		p.resolve(err)
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

type boxedValue struct {
	name string // the header name written (see pubChan.cePrefix)
	s    string
	v    any
}

// maxBoxed bounds pubChan.boxed.
const maxBoxed = 64

// publishing converts msg (as toPublishing) using the channel's reusable
// header table and boxed values; the caller holds the channel and clears
// the table when done.
func (pc *pubChan) publishing(m *message.Message) amqp091.Publishing {
	if len(m.Metadata) == 0 {
		return toPublishingInto(m, nil)
	}
	if pc.headers == nil {
		pc.headers = make(amqp091.Table, len(m.Metadata))
		pc.boxed = make(map[string]boxedValue, len(m.Metadata))
	}
	clear(pc.headers)
	for k, v := range m.Metadata {
		if brokerOwned(k) {
			continue
		}
		b, ok := pc.boxed[k]
		if !ok || b.s != v {
			name := b.name
			if !ok {
				name = pc.headerName(k)
			}
			b = boxedValue{name: name, s: v, v: v}
			if ok || len(pc.boxed) < maxBoxed {
				pc.boxed[k] = b
			}
		}
		pc.headers[b.name] = b.v
	}
	return publishingOf(m, pc.headers)
}

// headerName is the header written for metadata key k: k, or with "ce_"
// replaced by the configured CloudEvents prefix.
func (pc *pubChan) headerName(k string) string {
	if pc.cePrefix != "" && strings.HasPrefix(k, header.CloudEventsPrefix) {
		return pc.cePrefix + k[len(header.CloudEventsPrefix):]
	}
	return k
}
