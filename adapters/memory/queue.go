package memory

import (
	"context"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pkg/header"
)

// inlineKV is how many metadata strings (keys and values) a record holds
// without an allocation of their own: 12 headers, above the 10 that a
// Switchyard event carries.
const inlineKV = 24

// record is one published message: a copy of its metadata taken at publish
// (the caller may reuse the message), shared read-only by the entries of
// every group it was published to. Each delivery builds a fresh
// [message.Message] with its own metadata map from it, so a consumer that
// changes metadata affects neither another group nor a redelivery.
type record struct {
	uuid    string
	payload message.Payload
	key     string
	kv      []string // key, value, key, value, ...
	kvBuf   [inlineKV]string
}

// set copies msg into r.
func (r *record) set(msg *message.Message) {
	r.uuid, r.payload = msg.UUID, msg.Payload
	kv := r.kvBuf[:0]
	if n := 2 * len(msg.Metadata); n > len(r.kvBuf) {
		kv = make([]string, 0, n)
	}
	for k, v := range msg.Metadata {
		kv = append(kv, k, v)
		if k == header.Key {
			r.key = v
		}
	}
	r.kv = kv
}

// get returns the value of metadata key k, or "".
func (r *record) get(k string) string {
	for i := 0; i < len(r.kv); i += 2 {
		if r.kv[i] == k {
			return r.kv[i+1]
		}
	}
	return ""
}

// message returns a new message with r's UUID, payload and metadata.
func (r *record) message() *message.Message {
	msg := message.NewMessage(r.uuid, r.payload)
	// NewMessage's empty map fills its first 8 entries without growing;
	// more would grow it twice, so a larger one is made at its size.
	if n := len(r.kv) / 2; n > 8 {
		msg.Metadata = make(message.Metadata, n)
	}
	for i := 0; i < len(r.kv); i += 2 {
		msg.Metadata[r.kv[i]] = r.kv[i+1]
	}
	return msg
}

// entry is one message in one consumer group's queue.
type entry struct {
	*record
	// held is true while the entry is the one its key's chain waits on: it
	// was handed out at least once, so redelivery goes to the front.
	held  bool
	nacks int
	timer *time.Timer
	// ctx0 is the context of the first delivery, so that the happy path
	// allocates none; later deliveries allocate their own.
	ctx0     deliveryCtx
	ctx0Used bool
}

// single is a record with the entry of the first group it goes to, so that
// publishing to one group costs one allocation.
type single struct {
	r record
	e entry
}

// newSingle copies msg; the caller owns the result until it enqueues it.
func newSingle(msg *message.Message) *single {
	s := &single{}
	s.r.set(msg)
	s.e.record = &s.r
	return s
}

// deliveryContext returns a fresh context for delivering e.
func (e *entry) deliveryContext(values context.Context) *deliveryCtx {
	if !e.ctx0Used {
		e.ctx0Used = true
		e.ctx0.values = values
		return &e.ctx0
	}
	return &deliveryCtx{values: values}
}

// deque is a ring buffer of entries.
type deque struct {
	buf  []*entry
	head int
	n    int
}

func (d *deque) len() int { return d.n }

func (d *deque) grow() {
	size := len(d.buf) * 2
	if size == 0 {
		size = 16
	}
	buf := make([]*entry, size)
	for i := 0; i < d.n; i++ {
		buf[i] = d.buf[(d.head+i)%len(d.buf)]
	}
	d.buf, d.head = buf, 0
}

func (d *deque) pushBack(e *entry) {
	if d.n == len(d.buf) {
		d.grow()
	}
	d.buf[(d.head+d.n)%len(d.buf)] = e
	d.n++
}

func (d *deque) pushFront(e *entry) {
	if d.n == len(d.buf) {
		d.grow()
	}
	d.head = (d.head - 1 + len(d.buf)) % len(d.buf)
	d.buf[d.head] = e
	d.n++
}

func (d *deque) popFront() *entry {
	if d.n == 0 {
		return nil
	}
	e := d.buf[d.head]
	d.buf[d.head] = nil
	d.head = (d.head + 1) % len(d.buf)
	d.n--
	if d.n == 0 {
		d.head = 0
		if len(d.buf) > 4096 { // give back the memory of a burst
			d.buf = nil
		}
	}
	return e
}

// chain holds the entries with one key that wait behind the one being
// handled (ready, in flight or waiting for redelivery).
type chain struct {
	waiting deque
}

// topic holds every group queue of one topic; mu guards all of them.
type topic struct {
	name   string
	mu     sync.Mutex
	groups map[string]*queue
	order  []*queue // groups in registration order, for publish
	// backlog keeps messages published before any group subscribed.
	backlog        deque
	backlogDropped int
	// limit is the broker's BufferSize: a queue with this many entries not
	// handed out is full.
	limit int
	// Publishers waiting for room, oldest first. Each hand-out that leaves
	// its queue with room wakes one of them (not all: with many publishers
	// waking all made each hand-out cost a stampede).
	waitHead, waitTail *waiter
	freeWaiters        []*waiter
}

// waiter is one publisher waiting for room. Its fields are guarded by
// topic.mu.
type waiter struct {
	// ch receives one token when the waiter is woken (and unlisted); it is
	// empty whenever the waiter is listed.
	ch         chan struct{}
	prev, next *waiter
	listed     bool
}

// getWaiter returns an unlisted waiter with an empty ch. Caller holds t.mu.
func (t *topic) getWaiter() *waiter {
	if n := len(t.freeWaiters); n > 0 {
		w := t.freeWaiters[n-1]
		t.freeWaiters = t.freeWaiters[:n-1]
		return w
	}
	return &waiter{ch: make(chan struct{}, 1)}
}

// putWaiter recycles w, which must be unlisted with an empty ch. Caller
// holds t.mu.
func (t *topic) putWaiter(w *waiter) {
	if len(t.freeWaiters) < 1024 {
		t.freeWaiters = append(t.freeWaiters, w)
	}
}

// listWaiter adds w at the back of the waiters, or at the front for a
// waiter that was woken and found no room (it keeps its place). Caller
// holds t.mu.
func (t *topic) listWaiter(w *waiter, front bool) {
	w.listed = true
	if t.waitHead == nil {
		w.prev, w.next = nil, nil
		t.waitHead, t.waitTail = w, w
		return
	}
	if front {
		w.prev, w.next = nil, t.waitHead
		t.waitHead.prev = w
		t.waitHead = w
		return
	}
	w.prev, w.next = t.waitTail, nil
	t.waitTail.next = w
	t.waitTail = w
}

// unlistWaiter removes a listed w. Caller holds t.mu.
func (t *topic) unlistWaiter(w *waiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		t.waitHead = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		t.waitTail = w.prev
	}
	w.prev, w.next, w.listed = nil, nil, false
}

// wakeOne wakes the publisher that has waited longest, if any. Caller holds
// t.mu.
func (t *topic) wakeOne() {
	if w := t.waitHead; w != nil {
		t.unlistWaiter(w)
		w.ch <- struct{}{} // buffered and empty while listed: never blocks
	}
}

// wakeAll wakes every waiting publisher, for when a queue stops being
// bounded: each looks again, and those that still find no room wait again.
// Caller holds t.mu.
func (t *topic) wakeAll() {
	for t.waitHead != nil {
		t.wakeOne()
	}
}

// dropWaiter is for a publisher that stops waiting without publishing
// (its context is done or the broker closed): w is unlisted and recycled,
// and a wake-up it received but did not use goes to the next waiter.
// Caller holds t.mu.
func (t *topic) dropWaiter(w *waiter, passOn bool) {
	if w.listed {
		t.unlistWaiter(w)
	} else {
		select {
		case <-w.ch:
			if passOn {
				t.wakeOne()
			}
		default:
		}
	}
	t.putWaiter(w)
}

// queue is one consumer group's queue on one topic. Its fields are guarded by
// topic.mu.
type queue struct {
	t     *topic
	group string
	ready deque // entries that may be handed out now
	// chains has an element for every key with an entry pending (ready, in
	// flight or delayed); later entries with that key wait in it.
	chains     map[string]*chain
	freeChains []*chain
	pending    map[*entry]struct{} // entries waiting on a timer (Nack backoff or Delay)
	queued     int                 // not handed out: ready + waiting in chains
	inflight   int
	delayed    int
	// consumed is set once anyone subscribed; a queue only provisioned
	// (dead letters kept for operators) does not keep the broker from idle.
	consumed bool
	// provisioned is set when [Broker.Provision] registered the queue: it
	// has no BufferSize bound while no subscription consumes it (consumers
	// is 0), so that dead letters nobody reads never block a publisher.
	provisioned bool
	consumers   int // subscriptions handing out messages (intake not stopped)
	// warnAt is the queued count at which an unbounded queue next logs a
	// warning; it doubles each time.
	warnAt int
	// wake holds a token when ready may be non-empty; the taker that finds
	// more entries passes the token on.
	wake chan struct{}
}

func newQueue(t *topic, group string, provisioned bool) *queue {
	return &queue{
		t:           t,
		group:       group,
		chains:      make(map[string]*chain),
		pending:     make(map[*entry]struct{}),
		wake:        make(chan struct{}, 1),
		provisioned: provisioned,
		warnAt:      t.limit + 1,
	}
}

// bounded reports whether publishers wait for room in q when it holds
// BufferSize messages not handed out: always, except for a provisioned
// queue that no subscription consumes.
func (q *queue) bounded() bool { return !q.provisioned || q.consumers > 0 }

func (q *queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// enqueue appends a new entry in publish order.
func (q *queue) enqueue(e *entry) {
	q.queued++
	if e.key != "" {
		if c, ok := q.chains[e.key]; ok {
			c.waiting.pushBack(e)
			return
		}
		var c *chain
		if n := len(q.freeChains); n > 0 {
			c = q.freeChains[n-1]
			q.freeChains = q.freeChains[:n-1]
		} else {
			c = &chain{}
		}
		q.chains[e.key] = c
	}
	e.held = true
	q.ready.pushBack(e)
	q.signal()
}

// take hands out the next ready entry, or returns nil.
func (q *queue) take() *entry {
	e := q.ready.popFront()
	if e == nil {
		return nil
	}
	q.queued--
	q.inflight++
	if q.ready.len() > 0 {
		q.signal()
	}
	if q.queued < q.t.limit {
		q.t.wakeOne()
	}
	return e
}

// ack removes an in-flight entry and releases the next one with its key.
func (q *queue) ack(e *entry) {
	q.inflight--
	if e.key == "" {
		return
	}
	c := q.chains[e.key]
	if next := c.waiting.popFront(); next != nil {
		next.held = true
		q.ready.pushBack(next)
		q.signal()
		return
	}
	delete(q.chains, e.key)
	if len(q.freeChains) < 1024 {
		q.freeChains = append(q.freeChains, c)
	}
}

// requeue puts an in-flight entry back at the front, keeping its key's place.
func (q *queue) requeue(e *entry) {
	q.inflight--
	q.queued++
	q.ready.pushFront(e)
	q.signal()
}

// depth is what [Broker.Depth] reports.
func (q *queue) depth() int { return q.queued + q.inflight + q.delayed }
