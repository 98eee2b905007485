package amqp

import (
	"context"
	"fmt"
	"strconv"
	"sync"
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
}

var (
	_ message.Subscriber           = (*Subscriber)(nil)
	_ message.SubscribeInitializer = (*Subscriber)(nil)
)

func newSubscriber(b *Broker, group string, opts broker.SubscriberOptions) *Subscriber {
	prefetch := b.cfg.Prefetch
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
}

func (sub *subscription) run(sess *session) {
	defer sub.s.wg.Done()
	defer close(sub.out)
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

// pump hands deliveries out until intake stops (true) or the channel or
// consumer is lost (false).
func (sub *subscription) pump(sess *session) (stopped bool) {
	s := sub.s
	for {
		select {
		case d, ok := <-sess.deliveries:
			if !ok {
				return false
			}
			msg := toMessage(&d)
			ctx, cancel := context.WithCancel(sub.base)
			msg.SetContext(ctx)
			sess.begin()
			select {
			case sub.out <- msg:
				s.wg.Add(1)
				go s.await(sess, &d, msg, cancel)
			case <-sub.ctx.Done():
				cancel()
				_ = d.Nack(false, true)
				sess.end()
				sess.stopIntake()
				return true
			case <-s.closing:
				cancel()
				sess.end()
				return true
			}
		case <-sub.ctx.Done():
			sess.stopIntake()
			return true
		case <-s.closing:
			return true
		}
	}
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
		_, err := s.b.topo.workQueue(sub.topic, s.group, s.ordered)
		if err == nil {
			var sess *session
			if sess, err = s.consume(sub.queue); err == nil {
				return sess
			}
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

// await settles one handed-out message: Ack at once, Nack after the nack
// delay. If the subscriber closes first, the broker requeues the message.
func (s *Subscriber) await(sess *session, d *amqp091.Delivery, msg *message.Message, cancel context.CancelFunc) {
	defer s.wg.Done()
	defer sess.end()
	defer cancel()
	select {
	case <-msg.Acked():
		s.nacks.forget(msg.UUID)
		// An error means the channel is gone; RabbitMQ redelivers the message.
		_ = sess.ch.Ack(d.DeliveryTag, false)
	case <-msg.Nacked():
		delay := s.nackDelay(msg.UUID, d)
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
			_ = sess.ch.Nack(d.DeliveryTag, false, true)
		case <-s.closing:
		}
	case <-s.closing:
		// An Ack that raced with Close still counts: the channel is closed
		// only after every await has returned.
		select {
		case <-msg.Acked():
			s.nacks.forget(msg.UUID)
			_ = sess.ch.Ack(d.DeliveryTag, false)
		default:
		}
	}
}

// nackDelay is NackDelay doubled per earlier redelivery of this message,
// capped at MaxNackDelay. Redeliveries are counted by this subscriber, or
// by RabbitMQ for quorum queues (x-delivery-count).
func (s *Subscriber) nackDelay(id string, d *amqp091.Delivery) time.Duration {
	n := s.nacks.inc(id) - 1
	if v, ok := d.Headers["x-delivery-count"]; ok {
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
