package memory

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pkg/broker"
)

// Subscriber consumes as one consumer group. Get one with [Broker.Subscriber].
type Subscriber struct {
	b        *Broker
	group    string
	prefetch int

	mu      sync.Mutex
	closed  bool
	closing chan struct{}
	wg      sync.WaitGroup
}

var (
	_ message.Subscriber           = (*Subscriber)(nil)
	_ message.SubscribeInitializer = (*Subscriber)(nil)
)

// SubscribeInitialize registers the subscriber's group for topic, so that
// messages published from now on are kept for it, without consuming.
func (s *Subscriber) SubscribeInitialize(topic string) error {
	if _, err := s.b.register(topic, s.group, false); err != nil {
		return fmt.Errorf("memory: subscribe to %q: %w", topic, err)
	}
	return nil
}

// Subscribe registers the group for topic (it stays registered: messages
// published while no one consumes are kept for it) and returns a channel of
// the group's messages. Up to the prefetch count of messages may be handed out
// unacked; a message is not handed out while an earlier one with the same key
// is unacked or waiting for redelivery in the group.
//
// Cancelling ctx stops intake: the channel is closed once no more messages
// will be sent, messages never handed out stay queued, and messages already
// handed out can still be acked or nacked. The context of a delivered message
// carries ctx's values but not its cancellation; it is cancelled on Ack, Nack
// and Close.
//
// Each Subscribe call runs one goroutine per prefetch slot; they end when ctx
// is cancelled (once their message is acked), on Close or on [Broker.Close].
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("memory: subscribe to %q: %w", topic, broker.ErrClosed)
	}
	q, err := s.b.register(topic, s.group, false)
	if err != nil {
		return nil, fmt.Errorf("memory: subscribe to %q: %w", topic, err)
	}
	sub := &subscription{
		s:       s,
		q:       q,
		ctx:     ctx,
		values:  context.WithoutCancel(ctx),
		out:     make(chan *message.Message),
		senders: int32(s.prefetch),
	}
	s.b.mu.RLock() // Broker.Close sets closed under b.mu before waiting on b.wg
	if s.b.closed.Load() {
		s.b.mu.RUnlock()
		return nil, fmt.Errorf("memory: subscribe to %q: %w", topic, broker.ErrClosed)
	}
	s.b.wg.Add(s.prefetch)
	s.b.mu.RUnlock()
	q.t.mu.Lock()
	q.consumed = true
	q.consumers++ // until the last slot stops sending
	q.t.mu.Unlock()
	s.wg.Add(s.prefetch)
	for range s.prefetch {
		go sub.slot()
	}
	return sub.out, nil
}

// Close stops every subscription of this subscriber and closes their
// channels. Messages handed out and not acked yet go back to the front of
// the group's queue, to be redelivered to another subscriber; an Ack that
// comes later is ignored. Close is idempotent and waits for the subscriber's
// goroutines to end.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// subscription is one Subscribe call: prefetch slot goroutines, each handing
// out one message at a time and waiting for its Ack or Nack.
type subscription struct {
	s       *Subscriber
	q       *queue
	ctx     context.Context
	values  context.Context
	out     chan *message.Message
	senders int32 // slots that may still send on out
}

// next blocks until the group has a message this slot may hand out, or
// returns nil when the subscription stops.
func (sub *subscription) next() *entry {
	q, t := sub.q, sub.q.t
	for {
		if sub.ctx.Err() != nil {
			return nil
		}
		t.mu.Lock()
		e := q.take()
		t.mu.Unlock()
		if e != nil {
			return e
		}
		select {
		case <-q.wake:
		case <-sub.ctx.Done():
			return nil
		case <-sub.s.closing:
			return nil
		case <-sub.s.b.closing:
			return nil
		}
	}
}

func (sub *subscription) slot() {
	b, q, t := sub.s.b, sub.q, sub.q.t
	defer b.wg.Done()
	defer sub.s.wg.Done()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			if atomic.AddInt32(&sub.senders, -1) == 0 {
				close(sub.out)
				t.mu.Lock()
				q.consumers--
				if !q.bounded() { // a provisioned queue nobody consumes now
					t.wakeAll()
				}
				t.mu.Unlock()
			}
		}
	}
	defer stop()
	requeue := func(e *entry) {
		t.mu.Lock()
		if !b.closed.Load() {
			q.requeue(e)
		}
		t.mu.Unlock()
	}

	for {
		e := sub.next()
		if e == nil {
			return
		}
		msg := e.message()
		dctx := e.deliveryContext(sub.values)
		msg.SetContext(dctx)
		cancel := dctx.cancel

		select {
		case sub.out <- msg:
		case <-sub.ctx.Done():
			cancel()
			requeue(e)
			return
		case <-sub.s.closing:
			cancel()
			requeue(e)
			return
		case <-b.closing:
			cancel()
			return
		}

		ctxDone := sub.ctx.Done()
	wait:
		for {
			select {
			case <-msg.Acked():
				cancel()
				t.mu.Lock()
				if !b.closed.Load() {
					q.ack(e)
				}
				t.mu.Unlock()
				break wait
			case <-msg.Nacked():
				cancel()
				t.mu.Lock()
				if !b.closed.Load() {
					b.nack(q, e)
				}
				t.mu.Unlock()
				break wait
			case <-ctxDone:
				stop() // no more sends from this slot; keep waiting for the ack
				ctxDone = nil
			case <-sub.s.closing:
				cancel()
				select {
				case <-msg.Acked():
					t.mu.Lock()
					if !b.closed.Load() {
						q.ack(e)
					}
					t.mu.Unlock()
				default:
					requeue(e)
				}
				return
			case <-b.closing:
				cancel()
				return
			}
		}
		if stopped {
			return
		}
	}
}
