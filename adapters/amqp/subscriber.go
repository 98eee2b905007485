package amqp

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-go/switchyard/pkg/broker"
)

// Subscriber consumes as one consumer group: Subscribe(ctx, topic) consumes
// the group's queue "<topic>.<group>", declaring it (and binding it to the
// topic's exchange) first. Messages are handed out without waiting for the
// previous one to be acked, up to the prefetch window; the runtime decides
// concurrency and per-key order.
//
// Ack acknowledges the message; Nack hands it back to RabbitMQ for
// redelivery after [Config.NackDelay], doubled for every further Nack of the
// same message by this subscriber, up to [Config.MaxNackDelay]. The delay runs
// on a timer: other messages keep flowing meanwhile.
//
// Cancelling Subscribe's context stops intake (basic.cancel) and closes the
// output channel; messages already handed out can still be acked or nacked
// until [Subscriber.Close]. Close closes the AMQP channels: RabbitMQ requeues
// whatever is still unacked.
type Subscriber struct {
	b        *Broker
	group    string
	ordered  bool
	prefetch int

	mu       sync.Mutex
	closed   bool
	closing  chan struct{}
	sessions map[*session]struct{}
	wg       sync.WaitGroup // run and await goroutines

	nacks nackCounts

	failure atomic.Pointer[error] // why a subscription was ended, see Failure
}

var (
	_ message.Subscriber           = (*Subscriber)(nil)
	_ message.SubscribeInitializer = (*Subscriber)(nil)
	_ broker.Failer                = (*Subscriber)(nil)
)

// Failure implements [broker.Failer]: the error that made a subscription
// give up and close its channel, or nil. A subscription gives up when
// RabbitMQ refuses to let it declare or consume its queue again after a
// lost consumer (ACCESS_REFUSED: permissions changed; PRECONDITION_FAILED:
// the queue was recreated with other arguments; NOT_ALLOWED): retrying
// would only repeat the refusal, silently, while nothing is consumed.
func (s *Subscriber) Failure() error {
	if err := s.failure.Load(); err != nil {
		return *err
	}
	return nil
}

// fatal reports whether err is a refusal that retrying will not cure.
func fatal(err error) bool {
	var aerr *amqp091.Error
	if !errors.As(err, &aerr) || !aerr.Server {
		return false
	}
	switch aerr.Code {
	case amqp091.AccessRefused, amqp091.PreconditionFailed, amqp091.NotAllowed:
		return true
	}
	return false
}

func newSubscriber(b *Broker, group string, opts broker.SubscriberOptions) *Subscriber {
	prefetch := b.cfg.Prefetch
	if opts.Ordered {
		prefetch = b.cfg.OrderedPrefetch
	}
	if opts.Prefetch > 0 {
		prefetch = opts.Prefetch
	}
	return &Subscriber{
		b:        b,
		group:    group,
		ordered:  opts.Ordered,
		prefetch: prefetch,
		closing:  make(chan struct{}),
		sessions: map[*session]struct{}{},
		nacks:    nackCounts{m: map[string]int{}},
	}
}

// SubscribeInitialize declares the group's queue for topic and binds it, so
// that messages published from now on are kept for the group even before it
// consumes.
func (s *Subscriber) SubscribeInitialize(topic string) error {
	if _, err := s.b.topo.workQueue(topic, s.group, s.ordered); err != nil {
		return fmt.Errorf("amqp: subscribe %q to %q: %w", s.group, topic, err)
	}
	return nil
}

// Subscribe declares the group's queue for topic and consumes it. See
// [Subscriber] for acknowledgement, cancellation and reconnection.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, fmt.Errorf("amqp: subscribe %q to %q: %w", s.group, topic, broker.ErrClosed)
	}
	s.wg.Add(1)
	s.mu.Unlock()

	queue, err := s.b.topo.workQueue(topic, s.group, s.ordered)
	if err != nil {
		s.wg.Done()
		return nil, fmt.Errorf("amqp: subscribe %q to %q: %w", s.group, topic, err)
	}
	sess, err := s.consume(queue)
	if err != nil {
		s.wg.Done()
		return nil, fmt.Errorf("amqp: subscribe %q to %q: %w", s.group, topic, err)
	}
	out := make(chan *message.Message)
	sub := &subscription{s: s, ctx: ctx, base: context.WithoutCancel(ctx), topic: topic, queue: queue, out: out}
	go sub.run(sess)
	return out, nil
}

// Close stops every subscription, closes the output channels and the AMQP
// channels (RabbitMQ requeues unacked messages) and cancels the contexts of
// messages still in flight. It is idempotent.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	var sessions []*session
	s.mu.Unlock()
	// Let the goroutines settle what was acked before Close, then close the
	// channels: RabbitMQ requeues the rest.
	s.wg.Wait()
	s.mu.Lock()
	for ss := range s.sessions {
		sessions = append(sessions, ss)
	}
	s.mu.Unlock()
	for _, ss := range sessions {
		ss.close()
	}
	s.b.forget(s)
	return nil
}

// consume opens a channel with the subscriber's prefetch and starts consuming queue.
func (s *Subscriber) consume(queue string) (*session, error) {
	conn, _, err := s.b.subLink.get()
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, disconnectedErr(fmt.Errorf("open channel: %w", err))
	}
	if err := ch.Qos(s.prefetch, 0, false); err != nil {
		_ = ch.Close()
		return nil, disconnectedErr(fmt.Errorf("set prefetch %d: %w", s.prefetch, err))
	}
	tag := "switchyard." + s.group + "." + watermill.NewShortUUID()
	deliveries, err := ch.Consume(queue, tag, false, false, false, false, nil)
	if err != nil {
		_ = ch.Close()
		return nil, disconnectedErr(fmt.Errorf("consume queue %q: %w", queue, err))
	}
	ss := &session{s: s, ch: ch, tag: tag, deliveries: deliveries}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ch.Close()
		return nil, broker.ErrClosed
	}
	s.sessions[ss] = struct{}{}
	s.mu.Unlock()
	return ss, nil
}

// subscription is one Subscribe call: it outlives its AMQP channels across
// reconnects.
type subscription struct {
	s     *Subscriber
	ctx   context.Context
	base  context.Context // ctx's values without its cancellation, for messages
	topic string
	queue string
	out   chan *message.Message

	outClosed bool // owned by run
}

func (sub *subscription) closeOut() {
	if !sub.outClosed {
		sub.outClosed = true
		close(sub.out)
	}
}

func (sub *subscription) run(sess *session) {
	defer sub.s.wg.Done()
	defer sub.closeOut()
	for {
		if sub.pump(sess) {
			return
		}
		sess.close()
		sub.s.b.log.Warn("consumer lost; resubscribing", "group", sub.s.group, "queue", sub.queue)
		if sess = sub.resubscribe(); sess == nil {
			return
		}
		sub.s.b.log.Info("consumer resumed", "group", sub.s.group, "queue", sub.queue)
	}
}

// pump hands deliveries out and settles them until intake stopped and
// every handed-out message of the session is settled or the subscriber
// closes (true), or the channel or consumer is lost (false).
//
// Acks are observed without a goroutine per message: pump waits on the
// oldest handed-out message, settles every acked one behind it with one
// basic.ack (multiple=true, up to the highest contiguous acked delivery
// tag), and sweeps the rest now and then for acks out of order, which it
// acks one by one.
func (sub *subscription) pump(sess *session) (stopped bool) {
	s := sub.s
	d := &dispatcher{sub: sub}
	defer d.stopSweep()
	deliveries := sess.deliveries
	intake := sub.ctx.Done()
	var (
		next    *entry // received, not handed out yet
		outCh   chan<- *message.Message
		nextMsg *message.Message
	)
	for {
		if d.reapable() {
			d.reap()
		}
		if deliveries == nil && next == nil && len(d.pending) == 0 {
			return true // intake stopped and everything settled
		}
		outCh, nextMsg = nil, nil
		if next != nil {
			outCh, nextMsg = sub.out, next.msg
		}
		inCh := deliveries
		if next != nil {
			inCh = nil
		}
		var headAck, headNack <-chan struct{}
		if len(d.pending) > 0 {
			h := d.pending[0].msg
			headAck, headNack = h.Acked(), h.Nacked()
		}
		d.armSweep()
		select {
		case dl, ok := <-inCh:
			if !ok {
				d.orphan()
				return false
			}
			next = sub.newEntry(sess, &dl)
			sess.begin()
			if due := dueAt(next.msg); !due.IsZero() {
				if due.After(time.Now()) {
					sub.redelay(next, due)
					next = nil
					continue
				}
				delete(next.msg.Metadata, DelayUntilHeader)
			}
		case outCh <- nextMsg:
			d.pending = append(d.pending, next)
			next = nil
		case <-headAck:
		case <-headNack:
		case <-d.sweepC():
			d.sweep()
		case <-intake:
			intake = nil
			if next != nil {
				_ = sess.ch.Nack(next.tag, false, true)
				next.finish()
				next = nil
			}
			sub.closeOut()
			deliveries = nil
			sess.stopIntake()
		case <-s.closing:
			d.sweep() // an Ack that raced with Close still counts
			for _, e := range d.pending {
				e.cancel()
			}
			d.pending = nil
			if next != nil {
				next.cancel()
			}
			return true
		}
	}
}

// entry is one delivery handed out (or about to be) by a session.
type entry struct {
	sess    *session
	tag     uint64
	headers amqp091.Table // for x-delivery-count
	msg     *message.Message
	cancel  context.CancelFunc
}

func (sub *subscription) newEntry(sess *session, d *amqp091.Delivery) *entry {
	msg := toMessage(d)
	ctx, cancel := context.WithCancel(sub.base)
	msg.SetContext(ctx)
	return &entry{sess: sess, tag: d.DeliveryTag, headers: d.Headers, msg: msg, cancel: cancel}
}

// finish releases e once it is settled on the wire (or given up).
func (e *entry) finish() {
	e.cancel()
	e.sess.end()
}

// dispatcher is pump's state: the handed-out messages not settled yet, in
// delivery order.
type dispatcher struct {
	sub        *subscription
	pending    []*entry
	sweepT     *time.Timer
	sweepArmed bool
	sweepEvery time.Duration
	run        []*entry // scratch: a run of acked messages (see flush)
}

// Bounds of the interval between sweeps for out-of-order acks: it starts at
// minSweep and doubles while sweeps find nothing.
const (
	minSweep = time.Millisecond
	maxSweep = 50 * time.Millisecond
)

func (d *dispatcher) reapable() bool {
	if len(d.pending) == 0 {
		return false
	}
	_, done := resolved(d.pending[0].msg)
	return done
}

// reap settles the resolved messages at the front: a run of acks with one
// basic.ack, a nack by scheduling its delayed basic.nack.
func (d *dispatcher) reap() {
	n := 0
	for _, e := range d.pending {
		acked, done := resolved(e.msg)
		if !done {
			break
		}
		n++
		if !acked {
			d.flush()
			d.sub.s.nack(e)
			continue
		}
		if len(d.run) > 0 && d.run[0].sess != e.sess {
			d.flush()
		}
		d.run = append(d.run, e)
	}
	d.flush()
	if n > 0 {
		clear(d.pending[:n])
		d.pending = d.pending[n:]
		if len(d.pending) == 0 {
			d.pending = d.pending[:0:0]
		}
	}
}

// flush acks d.run, a run of acked messages of one session in delivery
// order with nothing unsettled between them, with one basic.ack
// (multiple=true) up to the last tag, unless a delayed nack of the session
// is still outstanding below it: then one by one.
func (d *dispatcher) flush() {
	if len(d.run) == 0 {
		return
	}
	last := d.run[len(d.run)-1]
	if len(d.run) == 1 || !last.sess.canAckMultiple(last.tag) {
		for _, e := range d.run {
			d.sub.s.ack(e, false)
		}
	} else {
		s := d.sub.s
		// An error means the channel is gone; RabbitMQ redelivers.
		_ = last.sess.ch.Ack(last.tag, true)
		for _, e := range d.run {
			s.nacks.forget(e.msg.UUID)
			e.finish()
		}
	}
	clear(d.run)
	d.run = d.run[:0]
}

func (d *dispatcher) stopSweep() {
	if d.sweepT != nil {
		d.sweepT.Stop()
	}
}

func (d *dispatcher) sweepC() <-chan time.Time {
	if !d.sweepArmed {
		return nil
	}
	return d.sweepT.C
}

// armSweep starts the sweep timer while more than one message is pending.
func (d *dispatcher) armSweep() {
	if d.sweepArmed || len(d.pending) < 2 {
		return
	}
	if d.sweepEvery == 0 {
		d.sweepEvery = minSweep
	}
	if d.sweepT == nil {
		d.sweepT = time.NewTimer(d.sweepEvery)
	} else {
		d.sweepT.Reset(d.sweepEvery)
	}
	d.sweepArmed = true
}

// sweep settles resolved messages behind an unresolved one: acks one by
// one, nacks scheduled.
func (d *dispatcher) sweep() {
	d.sweepArmed = false
	if d.reapable() {
		d.reap()
	}
	found := false
	kept := d.pending[:0]
	for _, e := range d.pending {
		acked, done := resolved(e.msg)
		switch {
		case !done:
			kept = append(kept, e)
			continue
		case acked:
			d.sub.s.ack(e, false)
		default:
			d.sub.s.nack(e)
		}
		found = true
	}
	clear(d.pending[len(kept):])
	d.pending = kept
	if found {
		d.sweepEvery = minSweep
	} else {
		d.sweepEvery = min(2*d.sweepEvery, maxSweep)
	}
}

// orphan hands the pending messages of a lost session to goroutines that
// wait for their acks (acking a lost channel fails: RabbitMQ redelivers),
// so that their contexts are cancelled when they are settled, as usual.
func (d *dispatcher) orphan() {
	s := d.sub.s
	for _, e := range d.pending {
		s.wg.Add(1)
		go s.await(e)
	}
	d.pending = nil
}

// resolved reports whether m was acked or nacked.
func resolved(m *message.Message) (acked, done bool) {
	select {
	case <-m.Acked():
		return true, true
	default:
	}
	select {
	case <-m.Nacked():
		return false, true
	default:
	}
	return false, false
}

// resubscribe re-declares the queue and consumes again once the connection
// is back, retrying with backoff. It returns nil when ctx or Close stops it.
func (sub *subscription) resubscribe() *session {
	s := sub.s
	backoff := s.b.cfg.ReconnectBackoff
	for {
		if _, err := s.b.subLink.wait(sub.ctx, s.closing); err != nil {
			return nil
		}
		s.b.topo.forgetQueue(sub.topic, s.group, s.ordered)
		s.b.topo.renew() // see permissions as they are now, not as cached
		_, err := s.b.topo.workQueue(sub.topic, s.group, s.ordered)
		if err == nil {
			var sess *session
			if sess, err = s.consume(sub.queue); err == nil {
				return sess
			}
		}
		if fatal(err) {
			err = fmt.Errorf("amqp: subscription of %q to %q ended: %w", s.group, sub.topic, err)
			s.failure.CompareAndSwap(nil, &err)
			s.b.log.Error("resubscribe refused; ending the subscription", "group", s.group, "queue", sub.queue, "error", err)
			return nil
		}
		s.b.log.Warn("resubscribe failed", "group", s.group, "queue", sub.queue, "error", err, "retry_in", backoff)
		select {
		case <-time.After(backoff):
		case <-sub.ctx.Done():
			return nil
		case <-s.closing:
			return nil
		}
		backoff = min(backoff*2, s.b.cfg.MaxReconnectBackoff)
	}
}

// redelay sends e, a chained delay that is not due yet, to its next delay
// tier and acks it once RabbitMQ confirmed that; if that fails, e is nacked
// (redelivered after the nack delay, and tried again). Its delivery tag is
// held meanwhile, so no multiple ack covers it.
func (sub *subscription) redelay(e *entry, due time.Time) {
	s := sub.s
	e.sess.holdNack(e.tag)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(sub.base, s.b.cfg.ConfirmTimeout)
		err := s.b.delayUntil(ctx, sub.topic, s.group, e.msg, due)
		cancel()
		if err != nil {
			s.b.log.Warn("chained delay: next hop failed; redelivering", "group", s.group, "queue", sub.queue,
				"message_uuid", e.msg.UUID, "error", err)
			s.nack(e) // holds the tag again, and releases it once nacked
			return
		}
		s.ack(e, false)
		e.sess.releaseNack(e.tag)
	}()
}

// ack acks one settled entry on its channel (an error means the channel is
// gone; RabbitMQ redelivers the message).
func (s *Subscriber) ack(e *entry, multiple bool) {
	s.nacks.forget(e.msg.UUID)
	_ = e.sess.ch.Ack(e.tag, multiple)
	e.finish()
}

// nack hands e back to RabbitMQ after the nack delay, on a timer goroutine
// (nacks are the failure path). Until then e's delivery tag stays
// outstanding, so no multiple ack covers it.
func (s *Subscriber) nack(e *entry) {
	delay := s.nackDelay(e.msg.UUID, e.headers)
	e.sess.holdNack(e.tag)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer e.finish()
		defer e.sess.releaseNack(e.tag)
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
			_ = e.sess.ch.Nack(e.tag, false, true)
		case <-s.closing:
		}
	}()
}

// await settles one message of a lost session: Ack at once, Nack after the
// nack delay. If the subscriber closes first, the broker requeues it.
func (s *Subscriber) await(e *entry) {
	defer s.wg.Done()
	select {
	case <-e.msg.Acked():
		s.ack(e, false)
	case <-e.msg.Nacked():
		s.nack(e)
	case <-s.closing:
		// An Ack that raced with Close still counts: the channel is closed
		// only after every await has returned.
		select {
		case <-e.msg.Acked():
			s.ack(e, false)
		default:
			e.finish()
		}
	}
}

// nackDelay is NackDelay doubled per earlier redelivery of this message,
// capped at MaxNackDelay. Redeliveries are counted by this subscriber, or
// by RabbitMQ for quorum queues (x-delivery-count).
func (s *Subscriber) nackDelay(id string, headers amqp091.Table) time.Duration {
	n := s.nacks.inc(id) - 1
	if v, ok := headers["x-delivery-count"]; ok {
		if c, err := strconv.Atoi(headerString(v)); err == nil && c > n {
			n = c
		}
	}
	delay := s.b.cfg.NackDelay
	for i := 0; i < n && delay < s.b.cfg.MaxNackDelay; i++ {
		delay *= 2
	}
	return min(delay, s.b.cfg.MaxNackDelay)
}

// session is one AMQP channel consuming one queue.
type session struct {
	s          *Subscriber
	ch         *amqp091.Channel
	tag        string
	deliveries <-chan amqp091.Delivery

	mu       sync.Mutex
	inflight int
	stopped  bool
	closed   bool
	nacking  map[uint64]struct{} // delivery tags with a delayed nack not sent yet
}

// holdNack records that tag will be nacked later: until releaseNack, no
// multiple ack may cover it.
func (ss *session) holdNack(tag uint64) {
	ss.mu.Lock()
	if ss.nacking == nil {
		ss.nacking = map[uint64]struct{}{}
	}
	ss.nacking[tag] = struct{}{}
	ss.mu.Unlock()
}

func (ss *session) releaseNack(tag uint64) {
	ss.mu.Lock()
	delete(ss.nacking, tag)
	ss.mu.Unlock()
}

// canAckMultiple reports whether a multiple ack up to tag covers no delivery
// waiting for its delayed nack.
func (ss *session) canAckMultiple(tag uint64) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for t := range ss.nacking {
		if t < tag {
			return false
		}
	}
	return true
}

func (ss *session) begin() {
	ss.mu.Lock()
	ss.inflight++
	ss.mu.Unlock()
}

// end marks one handed-out message settled; once intake has stopped and
// nothing is in flight, the channel is closed.
func (ss *session) end() {
	ss.mu.Lock()
	ss.inflight--
	done := ss.stopped && ss.inflight == 0
	ss.mu.Unlock()
	if done {
		ss.close()
	}
}

// stopIntake cancels the consumer and requeues deliveries that arrived but
// were not handed out. The channel stays open for acks of messages in flight.
func (ss *session) stopIntake() {
	_ = ss.ch.Cancel(ss.tag, false)
	for d := range ss.deliveries {
		_ = d.Nack(false, true)
	}
	ss.mu.Lock()
	ss.stopped = true
	done := ss.inflight == 0
	ss.mu.Unlock()
	if done {
		ss.close()
	}
}

func (ss *session) close() {
	ss.mu.Lock()
	if ss.closed {
		ss.mu.Unlock()
		return
	}
	ss.closed = true
	ss.mu.Unlock()
	_ = ss.ch.Close()
	ss.s.mu.Lock()
	delete(ss.s.sessions, ss)
	ss.s.mu.Unlock()
}

// nackCounts counts Nacks per message id, so that the nack delay grows for a
// message that keeps failing. It forgets a message on Ack and is bounded.
type nackCounts struct {
	mu sync.Mutex
	m  map[string]int
}

const maxNackCounts = 100_000

func (n *nackCounts) inc(id string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.m) >= maxNackCounts {
		clear(n.m)
	}
	n.m[id]++
	return n.m[id]
}

func (n *nackCounts) forget(id string) {
	n.mu.Lock()
	if len(n.m) > 0 {
		delete(n.m, id)
	}
	n.mu.Unlock()
}
