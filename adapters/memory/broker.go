package memory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pkg/broker"
)

// Name is the adapter's name in configuration.
const Name = "memory"

// ErrInvalidGroup is returned by [Broker.Subscriber] and [Broker.Delay] for an
// empty consumer group.
var ErrInvalidGroup = errors.New("memory: consumer group is required")

// Broker is the in-memory broker. Create it with [New]; it is safe for
// concurrent use.
type Broker struct {
	cfg    Config
	logger *slog.Logger

	mu      sync.RWMutex
	topics  map[string]*topic
	closed  atomic.Bool
	closing chan struct{}
	wg      sync.WaitGroup // every subscription goroutine
	inboxes inboxes        // see OpenInbox
}

var (
	_ broker.Broker  = (*Broker)(nil)
	_ broker.Delayer = (*Broker)(nil)
)

// New returns a broker with cfg's zero fields set to their defaults. It
// returns the errors of [Config.Validate]. A nil logger discards logs.
func New(cfg Config, logger *slog.Logger) (*Broker, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("memory: invalid config: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Broker{
		cfg:     cfg,
		logger:  logger.With(slog.String("broker", Name)),
		topics:  make(map[string]*topic),
		closing: make(chan struct{}),
	}, nil
}

// Name returns "memory".
func (b *Broker) Name() string { return Name }

// Config returns the configuration in use, defaults applied.
func (b *Broker) Config() Config { return b.cfg }

// Capabilities: at-least-once, in order per key, delayed redelivery, not
// durable across a process restart.
func (b *Broker) Capabilities() broker.Capabilities {
	return broker.Capabilities{
		Delivery:          "at-least-once",
		Ordering:          broker.OrderPerKey,
		DelayedRedelivery: true,
		Durable:           false,
	}
}

// Publisher returns a new publisher handle on the broker. Handles are cheap;
// closing one makes only that handle refuse further publishing, while
// [Broker.Close] closes them all.
func (b *Broker) Publisher() message.Publisher { return &Publisher{b: b} }

// Subscriber returns a subscriber that consumes as group. Subscribers of the
// same group share its queues (competing consumers); each group receives every
// message. opts.Prefetch overrides [Config].Prefetch; opts.Ordered needs
// nothing more, since order per key always holds.
func (b *Broker) Subscriber(group string, opts broker.SubscriberOptions) (message.Subscriber, error) {
	if group == "" {
		return nil, ErrInvalidGroup
	}
	if opts.Prefetch < 0 {
		return nil, fmt.Errorf("memory: subscriber %q: prefetch %d, want >= 0", group, opts.Prefetch)
	}
	prefetch := b.cfg.Prefetch
	if opts.Prefetch > 0 {
		prefetch = opts.Prefetch
	}
	if b.closed.Load() {
		return nil, fmt.Errorf("memory: subscriber %q: %w", group, broker.ErrClosed)
	}
	return &Subscriber{b: b, group: group, prefetch: prefetch, closing: make(chan struct{})}, nil
}

// Close stops every subscription (their channels are closed), makes blocked
// and later Publish calls fail with [broker.ErrClosed], and drops every queued,
// in-flight and delayed message: the broker keeps nothing past Close. Acks of
// messages handed out before Close are ignored. Close is idempotent and waits
// for the broker's goroutines to end.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		return nil
	}
	b.closed.Store(true)
	close(b.closing)
	topics := make([]*topic, 0, len(b.topics))
	for _, t := range b.topics {
		topics = append(topics, t)
	}
	b.mu.Unlock()

	for _, t := range topics {
		t.mu.Lock()
		for _, q := range t.order {
			for e := range q.pending {
				e.timer.Stop()
			}
		}
		t.mu.Unlock()
	}
	b.wg.Wait()
	return nil
}

func (b *Broker) topic(name string) (*topic, error) {
	b.mu.RLock()
	t, ok := b.topics[name]
	b.mu.RUnlock()
	if ok {
		return t, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return nil, broker.ErrClosed
	}
	if t, ok = b.topics[name]; !ok {
		t = &topic{name: name, groups: make(map[string]*queue), limit: b.cfg.BufferSize}
		b.topics[name] = t
	}
	return t, nil
}

// register returns group's queue on topic, creating it; a queue that
// Provision creates is provisioned (see [queue.bounded]). The first group
// registered for a topic receives the topic's backlog.
func (b *Broker) register(topicName, group string, provision bool) (*queue, error) {
	t, err := b.topic(topicName)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if q, ok := t.groups[group]; ok {
		return q, nil
	}
	q := newQueue(t, group, provision)
	if len(t.order) == 0 {
		for e := t.backlog.popFront(); e != nil; e = t.backlog.popFront() {
			q.enqueue(e)
		}
		t.backlog = deque{}
	}
	t.groups[group] = q
	t.order = append(t.order, q)
	return q, nil
}

// publish stores one message in every group queue of t, waiting for room.
// publish stores msg in t's queues, waiting for room until wait is done
// (Publish passes the message's context, PublishAsync the caller's).
func (b *Broker) publish(wait context.Context, t *topic, msg *message.Message) error {
	s := newSingle(msg) // copied outside the lock
	var (
		w    *waiter // while waiting for room
		done <-chan struct{}
	)
	for {
		t.mu.Lock()
		if b.closed.Load() {
			if w != nil {
				t.dropWaiter(w, false)
			}
			t.mu.Unlock()
			return broker.ErrClosed
		}
		if len(t.order) == 0 {
			if w != nil {
				t.dropWaiter(w, true)
			}
			b.toBacklog(t, &s.e)
			t.mu.Unlock()
			return nil
		}
		full := false
		for _, q := range t.order {
			if q.queued >= b.cfg.BufferSize && q.bounded() {
				full = true
				break
			}
		}
		if !full {
			q0 := t.order[0]
			q0.enqueue(&s.e)
			if q0.queued >= q0.warnAt {
				b.warnUnbounded(q0)
			}
			if n := len(t.order); n > 1 { // the other groups share the record
				rest := make([]entry, n-1)
				for i, q := range t.order[1:] {
					rest[i].record = &s.r
					q.enqueue(&rest[i])
					if q.queued >= q.warnAt {
						b.warnUnbounded(q)
					}
				}
			}
			if w != nil { // woken, so unlisted with its token taken
				t.putWaiter(w)
			}
			t.mu.Unlock()
			return nil
		}
		if w == nil {
			w = t.getWaiter()
			t.listWaiter(w, false)
		} else {
			t.listWaiter(w, true)
		}
		t.mu.Unlock()
		if done == nil {
			done = wait.Done()
		}
		select {
		case <-w.ch:
		case <-done:
			t.mu.Lock()
			t.dropWaiter(w, true)
			t.mu.Unlock()
			return wait.Err()
		case <-b.closing:
			t.mu.Lock()
			t.dropWaiter(w, false)
			t.mu.Unlock()
			return broker.ErrClosed
		}
	}
}

// warnUnbounded logs that q, a provisioned queue nobody consumes, keeps more
// than BufferSize messages: at BufferSize+1, then each time the count
// doubles. Nothing is dropped; the memory is the operator's to reclaim by
// consuming the group. Caller holds q.t.mu.
func (b *Broker) warnUnbounded(q *queue) {
	if q.bounded() {
		return // over the bound only through redeliveries; publishers wait
	}
	q.warnAt = 2 * q.queued
	b.logger.Warn("memory: a provisioned group nobody consumes keeps more messages than buffer_size; publishers are not held back and nothing is dropped, so memory grows until the group is consumed",
		slog.String("topic", q.t.name), slog.String("group", q.group), slog.Int("queued", q.queued), slog.Int("buffer_size", b.cfg.BufferSize))
}

// toBacklog keeps e for the first group to subscribe to t, dropping the
// oldest message when the backlog is full. Caller holds t.mu.
func (b *Broker) toBacklog(t *topic, e *entry) {
	if t.backlog.len() >= b.cfg.BufferSize {
		t.backlog.popFront()
		t.backlogDropped++
		if t.backlogDropped == 1 || t.backlogDropped%10000 == 0 {
			b.logger.Warn("memory: backlog of a topic no group subscribed to is full; dropping its oldest messages",
				slog.String("topic", t.name), slog.Int("dropped", t.backlogDropped), slog.Int("buffer_size", b.cfg.BufferSize))
		}
	}
	t.backlog.pushBack(e)
}

// Delay stores msg so that it is delivered again to group on topic (and to no
// other group) no sooner than delay from now, without blocking the caller for
// the delay. It registers group on topic if needed. When the delay ends the
// message joins the queue like a newly published one: behind messages with the
// same key queued by then. The delayed message does
// not count against BufferSize: Delay never waits for room, so a handler that
// delays a retry cannot deadlock with its own publishers.
func (b *Broker) Delay(ctx context.Context, topicName, group string, msg *message.Message, delay time.Duration) error {
	if group == "" {
		return fmt.Errorf("memory: delay to %q: %w", topicName, ErrInvalidGroup)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory: delay to %q: %w", topicName, err)
	}
	if b.closed.Load() {
		return fmt.Errorf("memory: delay to %q: %w", topicName, broker.ErrClosed)
	}
	q, err := b.register(topicName, group, false)
	if err != nil {
		return fmt.Errorf("memory: delay to %q: %w", topicName, err)
	}
	e := &newSingle(msg).e
	t := q.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if b.closed.Load() {
		return fmt.Errorf("memory: delay to %q: %w", topicName, broker.ErrClosed)
	}
	if delay <= 0 {
		q.enqueue(e)
		return nil
	}
	b.after(q, e, delay)
	return nil
}

// after makes e re-enter q after d. Caller holds q.t.mu.
func (b *Broker) after(q *queue, e *entry, d time.Duration) {
	q.delayed++
	q.pending[e] = struct{}{}
	e.timer = time.AfterFunc(d, func() { b.fire(q, e) })
}

func (b *Broker) fire(q *queue, e *entry) {
	q.t.mu.Lock()
	defer q.t.mu.Unlock()
	if b.closed.Load() {
		return
	}
	if _, ok := q.pending[e]; !ok {
		return
	}
	delete(q.pending, e)
	e.timer = nil
	q.delayed--
	if e.held { // a nacked entry: its key's chain waits on it
		q.queued++
		q.ready.pushFront(e)
		q.signal()
		return
	}
	q.enqueue(e)
}

// nack schedules an in-flight entry for redelivery after its backoff.
// Caller holds q.t.mu.
func (b *Broker) nack(q *queue, e *entry) {
	q.inflight--
	e.nacks++
	d := b.cfg.MaxNackBackoff
	if e.nacks <= 30 {
		if x := b.cfg.NackBackoff << (e.nacks - 1); x > 0 && x < d {
			d = x
		}
	}
	b.after(q, e, d)
}

// QueueStats is one consumer group's queue on one topic.
type QueueStats struct {
	Topic string
	// Group is empty for the backlog of a topic no group subscribed to yet.
	Group    string
	Queued   int // not handed out yet
	InFlight int // handed out, not acked
	Delayed  int // waiting for a Nack backoff or a Delay
}

// Stats returns every queue, sorted by topic then group.
func (b *Broker) Stats() []QueueStats {
	var out []QueueStats
	for _, t := range b.allTopics() {
		t.mu.Lock()
		if t.backlog.len() > 0 {
			out = append(out, QueueStats{Topic: t.name, Queued: t.backlog.len()})
		}
		for _, q := range t.order {
			out = append(out, QueueStats{Topic: t.name, Group: q.group, Queued: q.queued, InFlight: q.inflight, Delayed: q.delayed})
		}
		t.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Group < out[j].Group
	})
	return out
}

// Depth returns how many messages group has on topic that are not acked yet:
// queued, in flight and delayed. It is 0 for an unknown topic or group.
func (b *Broker) Depth(topicName, group string) int {
	b.mu.RLock()
	t, ok := b.topics[topicName]
	b.mu.RUnlock()
	if !ok {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if q, ok := t.groups[group]; ok {
		return q.depth()
	}
	return 0
}

// Idle reports whether every group queue is empty with nothing in flight or
// delayed. The backlog of topics no group subscribed to, and queues that were
// only provisioned (dead letters kept for operators), are not counted: no one
// would ever drain them.
func (b *Broker) Idle() bool {
	for _, t := range b.allTopics() {
		t.mu.Lock()
		for _, q := range t.order {
			if q.consumed && q.depth() > 0 {
				t.mu.Unlock()
				return false
			}
		}
		t.mu.Unlock()
	}
	return true
}

// WaitIdle waits until [Broker.Idle] has held continuously for settle, or
// until ctx is done. Idle looks at one topic at a time, so a handler that
// publishes a follow-up just as it acks can be missed by one look; a settle of
// a few milliseconds (several looks) covers that, and also covers producers
// outside the broker, such as a timer that publishes.
func (b *Broker) WaitIdle(ctx context.Context, settle time.Duration) error {
	poll := settle / 4
	if poll < time.Millisecond {
		poll = time.Millisecond
	}
	if poll > 50*time.Millisecond {
		poll = 50 * time.Millisecond
	}
	tick := time.NewTicker(poll)
	defer tick.Stop()
	var since time.Time
	for {
		if b.Idle() {
			if since.IsZero() {
				since = time.Now()
			}
			if time.Since(since) >= settle {
				return nil
			}
		} else {
			since = time.Time{}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("memory: wait idle: %w", ctx.Err())
		case <-b.closing:
			return fmt.Errorf("memory: wait idle: %w", broker.ErrClosed)
		}
	}
}

func (b *Broker) allTopics() []*topic {
	b.mu.RLock()
	defer b.mu.RUnlock()
	ts := make([]*topic, 0, len(b.topics))
	for _, t := range b.topics {
		ts = append(ts, t)
	}
	return ts
}
