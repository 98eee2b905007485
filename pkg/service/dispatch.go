package service

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pkg/middleware"
)

// dispatcher hands the messages of one subscription to a pool of workers:
//
//   - messages of one key are handled strictly one after another, in the
//     order the broker handed them out;
//   - messages of other keys are never held up by them: each key has its
//     own queue, and a worker takes whichever key is ready next;
//   - a message that waits inside its stack (a retry backoff, a busy
//     idempotency key) gives up its worker slot while it waits ([slot]),
//     so a retrying key holds its own queue and nothing else;
//   - a nacked message fences its key: the key's queued messages are nacked
//     behind it, in order, and later arrivals of the key are nacked too
//     until the nacked message comes back (or fenceTimeout passes), so no
//     message of the key overtakes it whatever the broker's prefetch;
//   - the messages it holds, queued and in flight, never exceed limit: at
//     the limit it stops taking messages from the broker (backpressure), so
//     memory stays bounded;
//   - when it closes, it hands its queued messages back to the broker, or,
//     with finish set (a broker whose nack rewinds, see
//     broker.Capabilities.NackRewinds), goes on handling them until
//     [dispatcher.abandon].
//
// Messages without a key are independent of each other and of every key.
type dispatcher struct {
	mu   sync.Mutex
	work sync.Cond // idle workers wait here for a ready message
	slot sync.Cond // parked workers wait here to resume

	limit       int
	concurrency int
	handle      func(w *worker, msg *message.Message) (acked bool)
	now         func() time.Time

	keys    map[string]*keyQueue
	ready   ring[task] // runnable: keyless messages and ready keys, in arrival order
	spare   []*keyQueue
	fenced  int // fenced keys in keys
	held    int // messages queued or in flight
	room    chan struct{}
	waiting bool // the reader waits on room

	running  int // workers handling a message, not parked
	resuming int // parked workers waiting for a slot
	parked   int // workers that gave up their slot
	workers  int // worker goroutines
	idle     int // workers waiting for work
	closed   bool
	// finish keeps the workers handling queued messages after close, until
	// abandon; set before the first add.
	finish   bool
	stopping chan struct{} // closed by close
	all      map[*worker]struct{}
	wg       sync.WaitGroup
}

// fenceTimeout bounds how long a nacked message's key stays fenced when the
// broker redelivers that message elsewhere (another member of the group).
// It is well above the adapters' default longest nack backoff (5s): a
// backoff configured longer than it lets later messages of the key go first.
const fenceTimeout = time.Minute

// keyQueue is the queue of one key.
type keyQueue struct {
	key     string
	pending ring[*message.Message]
	busy    bool // a message of the key is being handled
	inReady bool
	// fence is the id of the nacked message the key waits for; until it
	// comes back (or fenceUntil), other messages of the key are nacked.
	fence      string
	fenceUntil time.Time
}

// task is one entry of the ready ring: a key whose next message may start,
// or a keyless message.
type task struct {
	kq  *keyQueue
	msg *message.Message
}

func newDispatcher(concurrency, limit int, handle func(*worker, *message.Message) bool) *dispatcher {
	d := &dispatcher{
		limit:       max(limit, concurrency, 1),
		concurrency: max(concurrency, 1),
		handle:      handle,
		now:         time.Now,
		keys:        map[string]*keyQueue{},
		room:        make(chan struct{}, 1),
		stopping:    make(chan struct{}),
		all:         map[*worker]struct{}{},
	}
	d.work.L = &d.mu
	d.slot.L = &d.mu
	d.mu.Lock()
	for range d.concurrency {
		d.spawnLocked()
	}
	d.mu.Unlock()
	return d
}

// add queues msg under key ("" for none). It never blocks. When the
// dispatcher is then full, it returns a channel that receives once there is
// room: the caller must wait for it before adding more.
func (d *dispatcher) add(msg *message.Message, key string) (room <-chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		msg.Nack()
		return nil
	}
	if key == "" {
		d.held++
		d.ready.push(task{msg: msg})
		d.wakeLocked()
		return d.roomLocked()
	}
	kq := d.keys[key]
	if kq == nil {
		kq = d.newKeyQueueLocked(key)
	} else if kq.fence != "" {
		switch {
		case msg.UUID == kq.fence, !d.now().Before(kq.fenceUntil):
			d.unfenceLocked(kq)
		default:
			// A later message of a key whose nacked message has not come
			// back yet: it must not overtake that one.
			msg.Nack()
			return nil
		}
	}
	d.held++
	kq.pending.push(msg)
	if !kq.busy && !kq.inReady {
		kq.inReady = true
		d.ready.push(task{kq: kq})
		d.wakeLocked()
	}
	return d.roomLocked()
}

func (d *dispatcher) roomLocked() <-chan struct{} {
	if d.held < d.limit {
		return nil
	}
	d.waiting = true
	return d.room
}

func (d *dispatcher) newKeyQueueLocked(key string) *keyQueue {
	var kq *keyQueue
	if n := len(d.spare); n > 0 {
		kq, d.spare = d.spare[n-1], d.spare[:n-1]
	} else {
		kq = &keyQueue{}
	}
	kq.key = key
	d.keys[key] = kq
	return kq
}

func (d *dispatcher) unfenceLocked(kq *keyQueue) {
	kq.fence, kq.fenceUntil = "", time.Time{}
	d.fenced--
}

// releaseKeyLocked forgets an idle, empty key.
func (d *dispatcher) releaseKeyLocked(kq *keyQueue) {
	delete(d.keys, kq.key)
	kq.key = ""
	kq.pending.reset()
	if len(d.spare) < 64 {
		d.spare = append(d.spare, kq)
	}
}

// wakeLocked wakes an idle worker if one may take the new work.
func (d *dispatcher) wakeLocked() {
	if d.idle > 0 && d.running+d.resuming < d.concurrency {
		d.work.Signal()
	}
}

// canStartLocked reports whether a worker may start a message now: there is
// one, and a slot that no parked worker is waiting to take back.
func (d *dispatcher) canStartLocked() bool {
	return d.ready.len() > 0 && d.running+d.resuming < d.concurrency
}

// spawnLocked starts a worker goroutine.
func (d *dispatcher) spawnLocked() {
	w := &worker{d: d}
	d.workers++
	d.all[w] = struct{}{}
	d.wg.Add(1)
	go w.loop()
}

// worker is one goroutine of the pool. It is the [slot] its current
// delivery gives up while waiting.
type worker struct {
	d       *dispatcher
	current atomic.Pointer[string] // name of the handler of the message in hand, for the shutdown report
	// delivery and timer are reused from message to message: one worker
	// handles one message at a time.
	delivery middleware.Delivery
	timer    middleware.AttemptTimer
}

func (w *worker) loop() {
	d := w.d
	defer d.wg.Done()
	d.mu.Lock()
	for {
		for !d.closed && !d.canStartLocked() {
			d.idle++
			d.work.Wait()
			d.idle--
		}
		if d.closed && !(d.finish && d.canStartLocked()) {
			break
		}
		t, _ := d.ready.pop()
		msg := t.msg
		if t.kq != nil {
			t.kq.inReady = false
			t.kq.busy = true
			msg, _ = t.kq.pending.pop()
		}
		d.running++
		d.mu.Unlock()

		acked := d.handle(w, msg)

		d.mu.Lock()
		d.running--
		d.held--
		w.current.Store(nil)
		if kq := t.kq; kq != nil {
			kq.busy = false
			if !acked {
				d.fenceLocked(kq, msg)
			}
			switch {
			case kq.pending.len() > 0:
				kq.inReady = true
				d.ready.push(task{kq: kq})
			case kq.fence == "":
				d.releaseKeyLocked(kq)
			}
		}
		if d.waiting && d.held < d.limit {
			d.waiting = false
			select {
			case d.room <- struct{}{}:
			default:
			}
		}
		if d.resuming > 0 {
			d.slot.Signal()
		}
		// A worker started while another was parked ends once that one is
		// back, so the pool returns to its size.
		if d.workers-d.parked > d.concurrency {
			d.wakeLocked() // hand what this worker would take next to another
			break
		}
	}
	d.workers--
	delete(d.all, w)
	d.mu.Unlock()
}

// fenceLocked nacks the queued messages of kq behind the nacked msg, in
// order, and fences the key until msg comes back.
func (d *dispatcher) fenceLocked(kq *keyQueue, msg *message.Message) {
	d.nackPendingLocked(kq)
	if d.closed {
		return // shutdown: everything goes back anyway
	}
	if kq.fence == "" {
		d.fenced++
	}
	kq.fence, kq.fenceUntil = msg.UUID, d.now().Add(fenceTimeout)
	if d.fenced > 1024 {
		d.sweepFencesLocked()
	}
}

// nackPendingLocked nacks the queued messages of kq, in order.
func (d *dispatcher) nackPendingLocked(kq *keyQueue) {
	for {
		m, ok := kq.pending.pop()
		if !ok {
			return
		}
		d.held--
		m.Nack()
	}
}

// sweepFencesLocked forgets fences whose message never came back.
func (d *dispatcher) sweepFencesLocked() {
	now := d.now()
	for _, kq := range d.keys {
		if kq.fence != "" && !kq.busy && kq.pending.len() == 0 && !now.Before(kq.fenceUntil) {
			d.unfenceLocked(kq)
			d.releaseKeyLocked(kq)
		}
	}
}

// Release gives up the worker's slot while its delivery waits. A new
// worker takes its place, so that the pool always has concurrency workers
// that are not parked.
func (w *worker) Release() {
	d := w.d
	d.mu.Lock()
	d.running--
	d.parked++
	if (!d.closed || d.finish) && d.workers-d.parked < d.concurrency {
		d.spawnLocked()
	}
	if d.resuming > 0 {
		d.slot.Signal()
	}
	// Also when a resumer was signalled: it may have been signalled
	// already and not run yet, and wakeLocked counts resumers.
	d.wakeLocked()
	d.mu.Unlock()
}

// Stopping is closed when the pool closes: waits end early.
func (w *worker) Stopping() <-chan struct{} { return w.d.stopping }

// Acquire takes a slot back after a wait, before any new message starts.
func (w *worker) Acquire() {
	d := w.d
	d.mu.Lock()
	d.resuming++
	for d.running >= d.concurrency {
		d.slot.Wait()
	}
	d.resuming--
	d.parked--
	d.running++
	d.mu.Unlock()
}

// close stops the pool: it takes nothing more, waits inside handlers end
// (Stopping), and messages in hand are finished by their workers. Queued
// messages are nacked (they go back to the broker for this group), unless
// finish is set: then the workers handle them too, until abandon. It does
// not wait; see [dispatcher.wait].
func (d *dispatcher) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	d.closed = true
	close(d.stopping)
	if !d.finish {
		d.nackQueuedLocked()
	}
	d.work.Broadcast()
}

// abandon nacks what close left queued for the workers to finish (the
// shutdown timeout passed); the messages in hand are still finished.
func (d *dispatcher) abandon() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.finish {
		d.finish = false
		d.nackQueuedLocked()
	}
}

// nackQueuedLocked nacks every queued message, each key's in order.
func (d *dispatcher) nackQueuedLocked() {
	for {
		t, ok := d.ready.pop()
		if !ok {
			break
		}
		if t.msg != nil {
			d.held--
			t.msg.Nack()
			continue
		}
		t.kq.inReady = false
	}
	for _, kq := range d.keys {
		d.nackPendingLocked(kq)
	}
}

// wait returns a channel closed once every worker has ended.
func (d *dispatcher) wait() <-chan struct{} {
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	return done
}

// inFlight lists the handlers of the messages still in hand.
func (d *dispatcher) inFlight() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for w := range d.all {
		if name := w.current.Load(); name != nil {
			out = append(out, *name)
		}
	}
	return out
}

// ring is a FIFO ring buffer that grows as needed and never shrinks.
type ring[T any] struct {
	buf  []T
	head int
	n    int
}

func (r *ring[T]) len() int { return r.n }

func (r *ring[T]) push(v T) {
	if r.n == len(r.buf) {
		size := max(2*len(r.buf), 4)
		buf := make([]T, size)
		for i := range r.n {
			buf[i] = r.buf[(r.head+i)%len(r.buf)]
		}
		r.buf, r.head = buf, 0
	}
	r.buf[(r.head+r.n)%len(r.buf)] = v
	r.n++
}

func (r *ring[T]) pop() (T, bool) {
	var zero T
	if r.n == 0 {
		return zero, false
	}
	v := r.buf[r.head]
	r.buf[r.head] = zero
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	return v, true
}

func (r *ring[T]) reset() {
	clear(r.buf)
	r.head, r.n = 0, 0
}
