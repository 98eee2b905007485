package amqp

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
		dc, err := pc.ch.PublishWithDeferredConfirm(exchange, key, mandatory, false, pc.publishing(m))
		if err != nil {
			sendErr = err
			break
		}
		pc.push(pending{dc: dc, batch: bt, msg: m, exchange: exchange})
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
	failRest := func(rest []*message.Message, err error) {
		for _, m := range rest {
			p.tell(done, topic, x, m, err)
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
		dc, err := pc.ch.PublishWithDeferredConfirm(x.name, "", mandatory, false, pc.publishing(m))
		if err != nil {
			pending{done: done, topic: topic, x: x, msg: m}.resolve(p, disconnectedErr(err))
			failRest(msgs[i+1:], disconnectedErr(err))
			return
		}
		pc.push(pending{dc: dc, done: done, topic: topic, x: x, msg: m, expires: expires, exchange: x.name})
	}
}

// tell reports m's outcome to a PublishAsync caller's done, wrapping err
// as Publish does.
func (p *Publisher) tell(done func(*message.Message, error), topic string, x *exchangeNames, m *message.Message, err error) {
	if err != nil {
		var aerr *amqp091.Error
		if errors.As(err, &aerr) && aerr.Code == amqp091.NotFound {
			// The exchange was deleted behind our back: declare it next time.
			p.b.topo.declared.Delete(x.key)
		}
		err = fmt.Errorf("amqp: publish to %q: %w", topic, err)
	}
	done(m, err)
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
	pc := &pubChan{p: p, ch: ch, allowUnroutable: p.b.cfg.AllowUnroutable, wake: make(chan struct{}, 1)}
	if prefix := p.b.cfg.CloudEventsPrefix; prefix != "" && prefix != header.CloudEventsPrefix {
		pc.cePrefix = prefix
	}
	// Returns must be unbuffered: RabbitMQ sends basic.return before the
	// basic.ack of the same message, and the library hands the return over
	// before it reads the ack, so the dispatcher has recorded the return
	// by the time it sees the confirm.
	//
	// Confirms are read from the deferred confirmations amqp091-go makes
	// for every publish in confirm mode anyway, not from a NotifyPublish
	// listener: the library sends a listener each confirm with a timer of
	// its own, and the dispatcher would then look each one up by tag.
	returns := ch.NotifyReturn(make(chan amqp091.Return))
	closes := ch.NotifyClose(make(chan *amqp091.Error, 1))
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		pc.dispatch(returns, closes, p.deadlines.grain)
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
	p               *Publisher
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
	// fresh are the values boxed for the current publishing, so that one
	// value under two names (the id as ce_id and as the correlation id of
	// a chain's first event) is boxed once.
	fresh []boxedValue

	mu sync.Mutex
	// queue holds the messages awaiting confirms in publish (delivery
	// tag) order from head on: the dispatcher waits for the oldest one's
	// confirm, then takes every later one already confirmed. No map by
	// tag: RabbitMQ confirms a channel's messages in order in practice,
	// and one confirmed early is reported once those before it are.
	queue []pending
	head  int
	idle  bool          // the dispatcher waits for wake: the queue was empty
	wake  chan struct{} // capacity 1
	dead  bool          // the channel closed: nothing more will be confirmed
	// strays are returns that came before their message was queued (it
	// is queued once Publish returned, and RabbitMQ may be quicker).
	strays []*amqp091.Return
}

// maxStrays bounds pubChan.strays: a return whose message is never queued
// (its publish failed on our side) is forgotten eventually.
const maxStrays = 16

// pending is a message awaiting its confirm.
type pending struct {
	dc       *amqp091.DeferredConfirmation
	msg      *message.Message
	exchange string          // published to, to match a return with msg's id
	returned *amqp091.Return // set when RabbitMQ returned msg (unroutable)
	// batch is the Publish call, or nil for PublishAsync.
	batch *batch
	// PublishAsync: the caller's done, the topic and exchange for its
	// error, and the unix nanoseconds after which the message fails.
	done     func(*message.Message, error)
	topic    string
	x        *exchangeNames
	expires  int64
	resolved bool // reported already (ConfirmTimeout): the confirm is ignored
}

// resolve reports e's outcome to its Publish or PublishAsync call.
func (e pending) resolve(p *Publisher, err error) {
	if e.batch != nil {
		e.batch.resolve(err)
		return
	}
	// The window slot is freed, and Close's count lowered, for every
	// PublishAsync message that took one, which is every one resolved
	// here.
	<-p.window
	p.tell(e.done, e.topic, e.x, e.msg, err)
	p.unconfirmed.Done()
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

// push queues a message just published for the dispatcher. On a channel
// already dead (the dispatcher has stopped) it resolves the message itself.
func (pc *pubChan) push(e pending) {
	pc.mu.Lock()
	for i, r := range pc.strays {
		if r.MessageId == e.msg.UUID && r.Exchange == e.exchange {
			e.returned = r
			pc.strays = slices.Delete(pc.strays, i, i+1)
			break
		}
	}
	if pc.dead {
		pc.mu.Unlock()
		e.resolve(pc.p, pc.outcome(&e, disconnectedErr(amqp091.ErrClosed)))
		return
	}
	pc.queue = append(pc.queue, e)
	wake := pc.idle
	pc.idle = false
	pc.mu.Unlock()
	if wake {
		select {
		case pc.wake <- struct{}{}:
		default:
		}
	}
}

func (pc *pubChan) isDead() bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.dead
}

// oldest is the confirmation the dispatcher waits for next, or nil (and
// the dispatcher idle) when nothing awaits a confirm.
func (pc *pubChan) oldest() <-chan struct{} {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.head == len(pc.queue) {
		pc.idle = true
		return nil
	}
	return pc.queue[pc.head].dc.Done()
}

// takeConfirmed moves the messages whose confirm came, from the oldest on
// up to the first still waiting, to out.
func (pc *pubChan) takeConfirmed(out []pending) []pending {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	i := pc.head
	for ; i < len(pc.queue) && confirmed(pc.queue[i].dc); i++ {
		if !pc.queue[i].resolved {
			out = append(out, pc.queue[i])
		}
	}
	pc.drop(i)
	return out
}

// drop removes the queue's entries before i (the lock held), keeping
// none of their messages alive.
func (pc *pubChan) drop(i int) {
	clear(pc.queue[pc.head:i])
	pc.head = i
	switch {
	case pc.head == len(pc.queue):
		pc.queue, pc.head = pc.queue[:0], 0
	case pc.head >= 256 && 2*pc.head >= len(pc.queue):
		n := copy(pc.queue, pc.queue[pc.head:])
		clear(pc.queue[n:])
		pc.queue, pc.head = pc.queue[:n], 0
	}
}

// confirmed reports whether RabbitMQ answered dc (or its channel closed).
func confirmed(dc *amqp091.DeferredConfirmation) bool {
	select {
	case <-dc.Done():
		return true
	default:
		return false
	}
}

// outcome is the result of e, whose confirm came, or never will when the
// channel closed (closed, not nil, says why).
func (pc *pubChan) outcome(e *pending, closed error) error {
	switch {
	case !confirmed(e.dc) || !e.dc.Acked():
		// amqp091-go nacks what is unconfirmed when the channel closes:
		// once it did, a nack may be that rather than RabbitMQ's.
		if closed != nil {
			return closed
		}
		return ErrNacked
	case e.returned != nil && !pc.allowUnroutable:
		return fmt.Errorf("%w (exchange %q: %d %s)", ErrUnroutable, e.returned.Exchange, e.returned.ReplyCode, e.returned.ReplyText)
	}
	return nil
}

// expire fails the PublishAsync messages whose confirm is overdue
// (ConfirmTimeout): a late confirm for them is then ignored.
func (pc *pubChan) expire(now int64) {
	var late []pending
	pc.mu.Lock()
	for i := pc.head; i < len(pc.queue); i++ {
		e := &pc.queue[i]
		if e.batch != nil || e.resolved {
			continue // a Publish call waits for its own deadline
		}
		if e.expires >= now {
			break // later ones were published later
		}
		e.resolved = true
		late = append(late, *e)
	}
	pc.mu.Unlock()
	for _, e := range late {
		e.resolve(pc.p, fmt.Errorf("waiting for confirms: %w", context.DeadlineExceeded))
	}
}

// dispatch reports confirms and returns to the pending messages until the
// channel closes, then fails whatever is still pending.
func (pc *pubChan) dispatch(returns <-chan amqp091.Return, closes <-chan *amqp091.Error, sweep time.Duration) {
	tick := time.NewTicker(sweep)
	defer tick.Stop()
	var ready []pending
	for {
		select {
		case <-pc.oldest(): // nil, so never, while nothing is pending
			ready = pc.takeConfirmed(ready[:0])
			for i := range ready {
				if !ready[i].dc.Acked() && pc.ch.IsClosed() {
					// Nacked by amqp091-go because the channel closed.
					pc.die(ready, closeError(closes))
					return
				}
			}
			nacked := false
			for i := range ready {
				nacked = nacked || !ready[i].dc.Acked()
				ready[i].resolve(pc.p, pc.outcome(&ready[i], nil))
			}
			clear(ready)
			if nacked {
				// A nack says the broker could not take the message, and
				// on a cluster the channel may stay that way: RabbitMQ
				// 3.10 kept nacking every publish of a channel opened
				// while its quorum queue had no leader yet, after a new
				// leader was elected (docs/clusters.md). Retire the
				// channel: the pool opens a fresh one for the next
				// publish, and its close fails what is still pending
				// with a retryable disconnect.
				go func() { _ = pc.ch.Close() }()
			}
		case <-pc.wake:
		case now := <-tick.C:
			pc.expire(now.UnixNano())
		case r, ok := <-returns:
			if !ok {
				returns = nil
				continue
			}
			pc.markReturned(&r)
		case e, ok := <-closes:
			if !ok {
				e = nil
			}
			pc.die(nil, reasonOf(e))
			return
		}
	}
}

// markReturned marks the oldest unconfirmed message with the returned
// message's exchange and id, or keeps the return for the message about to
// be queued (see strays).
func (pc *pubChan) markReturned(r *amqp091.Return) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	for i := pc.head; i < len(pc.queue); i++ {
		if e := &pc.queue[i]; e.returned == nil && e.msg.UUID == r.MessageId && e.exchange == r.Exchange {
			e.returned = r
			return
		}
	}
	if len(pc.strays) == maxStrays {
		pc.strays = slices.Delete(pc.strays, 0, 1)
	}
	pc.strays = append(pc.strays, r)
}

// die marks the channel dead and resolves taken (messages already taken
// from the queue) and everything still queued: with its confirm if it
// came, else with closed.
func (pc *pubChan) die(taken []pending, closed error) {
	pc.mu.Lock()
	pc.dead = true
	rest := pc.queue[pc.head:]
	pc.queue, pc.head = nil, 0
	pc.mu.Unlock()
	for _, list := range [][]pending{taken, rest} {
		for i := range list {
			if !list[i].resolved {
				list[i].resolve(pc.p, pc.outcome(&list[i], closed))
			}
		}
	}
}

// closeError explains why a channel closed before its confirms arrived.
func closeError(closes <-chan *amqp091.Error) error {
	var e *amqp091.Error
	select {
	case e = <-closes:
	case <-time.After(100 * time.Millisecond):
	}
	return reasonOf(e)
}

// reasonOf is closeError for the channel's close notification e (nil:
// closed without one).
func reasonOf(e *amqp091.Error) error {
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
	pc.fresh = pc.fresh[:0]
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
			b = boxedValue{name: name, s: v, v: pc.box(v)}
			if ok || len(pc.boxed) < maxBoxed {
				pc.boxed[k] = b
			}
		}
		pc.headers[b.name] = b.v
	}
	clear(pc.fresh) // keep no message's values alive
	return publishingOf(m, pc.headers)
}

// box is v as a table value, boxed once per publishing (see fresh).
func (pc *pubChan) box(v string) any {
	for _, f := range pc.fresh {
		if f.s == v {
			return f.v
		}
	}
	b := boxedValue{s: v, v: v}
	pc.fresh = append(pc.fresh, b)
	return b.v
}

// headerName is the header written for metadata key k: k, or with "ce_"
// replaced by the configured CloudEvents prefix.
func (pc *pubChan) headerName(k string) string {
	if pc.cePrefix != "" && strings.HasPrefix(k, header.CloudEventsPrefix) {
		return pc.cePrefix + k[len(header.CloudEventsPrefix):]
	}
	return k
}
