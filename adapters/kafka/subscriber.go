package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/header"
)

// MetadataTopic is the topic a handed-out record was read from: the
// subscribed topic, or one of its retry topics for a delayed redelivery.
const MetadataTopic = "sy_kafka_topic"

// retryTopicDiscovery bounds how long a subscription takes to notice a retry
// topic of its group created after it joined (a new tier in a rolling
// deploy). Nothing is skipped meanwhile: retry topics are read from the
// earliest offset.
const retryTopicDiscovery = 5 * time.Second

// fetchBuffer is how many fetched records a subscription keeps beyond its
// prefetch, so that records of other keys can flow past those held back
// behind a nacked record of their partition. When it is full of held-back
// records, the partition waits for the nacked record's backoff.
const fetchBuffer = 256

// closeTimeout bounds the final commit of a subscription.
const closeTimeout = 10 * time.Second

// Subscriber consumes topics as one consumer group. Each Subscribe call joins
// the group with its own franz-go client, so several subscriptions of one
// group (in this process or others) share the topic's partitions.
type Subscriber struct {
	b        *Broker
	group    string
	prefetch int

	mu      sync.Mutex
	subs    map[*subscription]struct{}
	closed  bool
	failure error
}

var _ broker.Failer = (*Subscriber)(nil)

// Failure implements [broker.Failer]: the error that ended a subscription
// (an authorization failure, a fenced static member), nil while every
// subscription runs and after a normal shutdown.
func (s *Subscriber) Failure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failure
}

func (s *Subscriber) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failure == nil {
		s.failure = err
	}
}

// Subscribe joins the consumer group on topic (creating the topic and its
// retry topics first if needed) and returns the channel of its messages.
//
// Up to the subscriber's prefetch messages are handed out before the first is
// acked; records of one partition are handed out in offset order, so
// messages with the same key keep their publish order. The committed offset
// of a partition only moves past records that were acked, and every record
// before them. A nacked record is handed out again after a backoff
// (NackBackoff, doubling to MaxNackBackoff); later records with its key
// wait for it, records with other keys (or none) keep flowing.
//
// Cancelling ctx stops intake and closes the channel; messages already
// handed out can still be acked until [Subscriber.Close]. Once none is left
// in flight, acked offsets are committed and the subscription leaves the
// group so that other members take its partitions over.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("kafka: subscribe to %q: %w", topic, broker.ErrClosed)
	}
	if topic == "" {
		return nil, errors.New("kafka: subscribe: topic required")
	}
	// The topic and its group's retry topics are provisioned here, not on
	// the first Delay: a retry consumer must exist before the first retry
	// record does, or a rebalance could start it past that record.
	if err := s.b.ensureTopics(ctx, append([]string{topic}, s.b.retryTopics(topic, s.group)...)...); err != nil {
		return nil, fmt.Errorf("kafka: subscribe to %q: %w", topic, err)
	}

	cfg := s.b.cfg
	sub := &subscription{
		b:        s.b,
		owner:    s,
		log:      s.b.logger.With("topic", topic, "group", s.group),
		topic:    topic,
		group:    s.group,
		prefetch: s.prefetch,
		out:      make(chan *message.Message, min(s.prefetch, maxOutBuffer)),
		events:   make(chan any),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		parts:    map[tp]*partState{},
	}
	sub.intakeCtx, sub.stopIntake = context.WithCancel(ctx)
	sub.msgCtx, sub.cancelMsgs = context.WithCancel(context.WithoutCancel(ctx))

	instance := ""
	if cfg.InstanceID != "" {
		instance = fmt.Sprintf("%s.%s.%s.%d", cfg.InstanceID, s.group, topic, s.b.instanceSeq(s.group, topic))
	}
	// The main topic is read as the group, from InitialOffset; the retry
	// topics by a client of their own (see retryGroup), from the earliest
	// offset, with a fetch budget of its own: records waiting to be due
	// never stop the main topic's fetching.
	main, err := sub.newSource(false, instance,
		kgo.ConsumerGroup(s.group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(cfg.resetOffset()),
	)
	if err != nil {
		sub.stopIntake()
		return nil, fmt.Errorf("kafka: subscribe to %q: %w", topic, err)
	}
	if instance != "" {
		instance += ".retry"
	}
	retry, err := sub.newSource(true, instance,
		kgo.ConsumerGroup(retryGroup(s.group)),
		kgo.ConsumeRegex(),
		kgo.ConsumeTopics(retryTopicPattern(topic, s.group)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.MetadataMaxAge(retryTopicDiscovery),
	)
	if err != nil {
		sub.stopIntake()
		main.cl.Close()
		return nil, fmt.Errorf("kafka: subscribe to %q: retry topics: %w", topic, err)
	}
	sub.main, sub.retry = main, retry

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		sub.stopIntake()
		main.cl.Close()
		retry.cl.Close()
		return nil, fmt.Errorf("kafka: subscribe to %q: %w", topic, broker.ErrClosed)
	}
	s.subs[sub] = struct{}{}
	s.mu.Unlock()

	go sub.run()
	go sub.poll(main)
	go sub.poll(retry)
	return sub.out, nil
}

// newSource opens one consuming client of a subscription. Offsets are
// committed by marking (MarkCommitOffsets) and franz-go's autocommit of
// marks: franz-go drops the marks of revoked partitions, so the old member
// never commits a partition it no longer owns, and a failed commit is
// retried on the next interval because the mark stays ahead of the commit.
func (s *subscription) newSource(retry bool, instance string, extra ...kgo.Opt) (*source, error) {
	cfg := s.b.cfg
	src := &source{retry: retry, want: make(chan struct{}, 1), done: make(chan struct{}), budget: s.prefetch + fetchBuffer}
	if retry {
		src.budget = fetchBuffer
	}
	opts := append(append([]kgo.Opt(nil), s.b.opts...), extra...)
	opts = append(opts,
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(cfg.CommitInterval),
		kgo.AutoCommitCallback(s.logCommit),
		kgo.BlockRebalanceOnPoll(),
		kgo.SessionTimeout(cfg.SessionTimeout),
		kgo.RebalanceTimeout(cfg.RebalanceTimeout),
		kgo.HeartbeatInterval(cfg.HeartbeatInterval),
		kgo.FetchMaxWait(time.Second),
		kgo.OnPartitionsAssigned(func(ctx context.Context, cl *kgo.Client, parts map[string][]int32) {
			s.onAssigned(src, parts)
		}),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, parts map[string][]int32) {
			s.revoke(ctx, src, parts, false)
		}),
		kgo.OnPartitionsLost(func(ctx context.Context, cl *kgo.Client, parts map[string][]int32) {
			s.revoke(ctx, src, parts, true)
		}),
	)
	if instance != "" {
		opts = append(opts, kgo.InstanceID(instance))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	src.cl = cl
	return src, nil
}

// source is one consuming client of a subscription (the main topic, or the
// retry topics) with its poller and its own fetch budget.
type source struct {
	cl     *kgo.Client
	retry  bool
	want   chan struct{} // poller may poll once
	done   chan struct{} // poller exited
	budget int           // records queued (fetched, not handed out) at most
	// Dispatcher state.
	queued  int
	polling bool
}

// Close stops every subscription of this subscriber: intake stops, offsets of
// acked records are committed, and each client leaves the group. Records
// handed out but not acked are redelivered to the group later. Close is
// idempotent.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	s.closed = true
	subs := make([]*subscription, 0, len(s.subs))
	for sub := range s.subs {
		subs = append(subs, sub)
	}
	s.subs = map[*subscription]struct{}{}
	s.mu.Unlock()

	var wg sync.WaitGroup
	errs := make([]error, len(subs))
	for i, sub := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = sub.shutdown()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

type tp struct {
	topic string
	part  int32
}

// partState is what a subscription knows of one assigned partition. It is
// owned by the dispatcher goroutine.
type partState struct {
	tp
	src     *source
	isRetry bool
	// ctx is the parent of the contexts of this partition's messages:
	// cancelled when the partition is revoked and its in-flight work did
	// not finish within the drain time, or on shutdown.
	ctx    context.Context
	cancel context.CancelFunc
	// busy counts this partition's records being handled (handed out, not
	// yet acked or nacked) or forwarded to a retry tier: a revoke waits
	// for it to reach zero.
	busy int
	// revoking is set while a revoke drains the partition: nothing more is
	// handed out.
	revoking bool
	// queue holds fetched records not handed out yet, in offset order,
	// with their messages built by the poller.
	queue []*entry
	// out holds handed-out records not yet passed by the commit point, in
	// offset order (acked, in flight, or waiting for redelivery).
	out []*entry
	// redeliver holds nacked records waiting for their backoff, by offset.
	redeliver []*entry
	// blocked counts the records in redeliver per key: fetched records
	// with that key wait for them.
	blocked map[string]int
	// commit is the next offset to commit: one past the last record acked
	// with every earlier one.
	commit    kgo.EpochOffset
	hasCommit bool
	sent      int64 // highest offset marked for commit
	// heldUntil is set while the head of a retry partition is not due yet;
	// the partition's fetching is paused meanwhile.
	heldUntil time.Time
	paused    bool
}

// entry is one handed-out record.
type entry struct {
	rec *kgo.Record
	p   *partState
	// msg is the message to hand out next for rec (built by the poller
	// for a fetched record, by the dispatcher for a redelivery), then the
	// one handed out, until it is acked or nacked.
	msg   *message.Message
	fresh bool // taken from queue, not handed out yet
	idx   int  // index in queue (fresh) or redeliver while being handed out
	acked bool
	nacks int
	due   time.Time
	// ctx is the context of the first message built for rec; a
	// redelivery gets a message and context of its own.
	ctx msgContext
}

// Dispatcher events.
type (
	batchEv struct {
		src  *source
		recs []*entry
	}
	assignEv struct {
		src   *source
		parts map[string][]int32
		reply chan struct{}
	}
	revokeEv struct {
		src   *source
		parts map[string][]int32
		lost  bool
		reply chan struct{} // closed once drained and marked
	}
	finalEv struct {
		reply chan struct{} // closed once every commit point is marked
	}
	// forwardedEv reports that a chained retry record was produced to its
	// next tier (err nil), so it is done on this one.
	forwardedEv struct {
		e  *entry
		ok bool
	}
	// failEv ends the subscription on a fatal client error.
	failEv struct{ err error }
)

// subscription is one Subscribe call: two group clients (the main topic,
// the retry topics), a poller goroutine per client that fetches records and
// a dispatcher goroutine (run) that owns all state, hands records out and
// marks commit points (franz-go commits marks every CommitInterval).
type subscription struct {
	b        *Broker
	owner    *Subscriber
	log      *slog.Logger
	topic    string
	group    string
	prefetch int
	main     *source
	retry    *source
	// msgCtx is the parent of every handed-out message's context: it
	// carries the Subscribe context's values but not its cancellation, and
	// is cancelled when the subscription shuts down.
	msgCtx     context.Context
	cancelMsgs context.CancelFunc

	out    chan *message.Message
	events chan any

	intakeCtx  context.Context
	stopIntake context.CancelFunc
	stop       chan struct{} // closed by shutdown: the dispatcher exits
	done       chan struct{} // dispatcher exited
	// closing is set by shutdown before the clients leave their groups:
	// revokes then cancel in-flight work at once instead of draining it.
	closing atomic.Bool

	shutOnce sync.Once
	shutErr  error

	// Dispatcher state.
	// pending holds the handed-out entries whose ack or nack the
	// dispatcher has not seen yet, in hand-out order. The dispatcher waits
	// on the oldest one's channels, collects every resolved entry behind it
	// at once, and sweeps the whole list now and then for acks that came
	// out of order: no goroutine per message.
	pending  []*entry
	parts    map[tp]*partState
	order    []*partState
	rr       int
	inflight int
	// revokes are the revokes draining in-flight work.
	revokes []*revoking
}

// send delivers an event to the dispatcher unless it has exited.
func (s *subscription) send(ev any) bool {
	select {
	case s.events <- ev:
		return true
	case <-s.done:
		return false
	}
}

func (s *subscription) onAssigned(src *source, parts map[string][]int32) {
	s.log.Debug("kafka: partitions assigned", "partitions", parts, "retry", src.retry)
	ev := assignEv{src: src, parts: parts, reply: make(chan struct{})}
	if s.send(ev) {
		<-ev.reply
	}
}

// revoke stops handing out records of the revoked partitions and drops
// what is fetched of them, waits (within revokeDrain) for the records of
// them being handled, cancels the contexts of those still running, marks
// what was acked and commits it, and only then returns, letting the
// rebalance go on: the new owner starts after the last acked record and no
// key is handled on two members at once (unless a handler outlives its
// cancelled context). Lost partitions are not drained nor committed: they
// may be someone else's already. Acks that arrive later for these
// partitions are ignored; the new owner redelivers those records.
func (s *subscription) revoke(ctx context.Context, src *source, parts map[string][]int32, lost bool) {
	s.log.Debug("kafka: partitions revoked", "partitions", parts, "lost", lost, "retry", src.retry)
	if len(parts) == 0 {
		return
	}
	ev := revokeEv{src: src, parts: parts, lost: lost, reply: make(chan struct{})}
	if !s.send(ev) {
		return
	}
	<-ev.reply
	if !lost {
		ctx, cancel := context.WithTimeout(ctx, closeTimeout)
		defer cancel()
		if err := src.cl.CommitMarkedOffsets(ctx); err != nil {
			s.log.Warn("kafka: commit on revoke failed; acked records may be redelivered", "error", err)
		}
	}
}

func (s *subscription) logCommit(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
	if err == nil && resp != nil {
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if p.ErrorCode != 0 {
					err = errors.Join(err, fmt.Errorf("partition %s/%d: error code %d", t.Topic, p.Partition, p.ErrorCode))
				}
			}
		}
	}
	if err != nil {
		s.log.Warn("kafka: commit offsets failed; acked records may be redelivered", "error", err)
	}
}

// poll fetches records of one source whenever the dispatcher asks for
// more. A fatal client error (see fatal) ends the subscription.
func (s *subscription) poll(src *source) {
	defer close(src.done)
	ctx := s.intakeCtx
	for {
		select {
		case <-src.want:
		case <-ctx.Done():
			return
		}
		fs := src.cl.PollRecords(ctx, src.budget)
		var pollErr, fatalErr error
		fs.EachError(func(t string, p int32, err error) {
			if errors.Is(err, context.Canceled) || errors.Is(err, kgo.ErrClientClosed) {
				return
			}
			pollErr = err
			if fatal(err) && fatalErr == nil {
				fatalErr = fmt.Errorf("kafka: subscriber %q on %q: %w", s.group, s.topic, err)
			}
			s.log.Warn("kafka: fetch failed", "fetch_topic", t, "partition", p, "error", err)
		})
		// Messages are built here, off the dispatcher's path.
		recs := make([]*entry, 0, fs.NumRecords())
		fs.EachRecord(func(r *kgo.Record) {
			e := &entry{rec: r, msg: recordMessage(r)}
			e.ctx.parent, e.ctx.m = s.msgCtx, e.msg
			e.msg.SetContext(&e.ctx) // one allocation for both
			recs = append(recs, e)
		})
		ok := s.send(batchEv{src: src, recs: recs})
		src.cl.AllowRebalance()
		if fatalErr != nil {
			s.log.Error("kafka: subscription ends on a fatal error", "error", fatalErr)
			s.owner.fail(fatalErr)
			s.send(failEv{err: fatalErr})
			return
		}
		if !ok || ctx.Err() != nil || fs.IsClientClosed() {
			return
		}
		if pollErr != nil && fs.NumRecords() == 0 {
			select { // no tight loop on a failing fetch
			case <-time.After(250 * time.Millisecond):
			case <-ctx.Done():
				return
			}
		}
	}
}

// shutdown stops intake, commits acked offsets, leaves the groups and stops
// every goroutine of the subscription. It runs once; later calls wait for it.
func (s *subscription) shutdown() error {
	s.shutOnce.Do(func() {
		s.stopIntake()
		<-s.main.done
		<-s.retry.done
		s.closing.Store(true)
		ev := finalEv{reply: make(chan struct{})}
		if s.send(ev) {
			<-ev.reply
			ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
			for _, src := range []*source{s.main, s.retry} {
				if err := src.cl.CommitMarkedOffsets(ctx); err != nil {
					s.log.Warn("kafka: commit on close failed; acked records may be redelivered", "error", err)
					s.shutErr = errors.Join(s.shutErr, fmt.Errorf("kafka: subscriber %q on %q: commit on close: %w", s.group, s.topic, err))
				}
			}
			cancel()
		}
		// Leaving the group revokes every partition; the revoke marks and
		// commits what was acked since the commit above.
		var wg sync.WaitGroup
		for _, src := range []*source{s.main, s.retry} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				src.cl.CloseAllowingRebalance()
			}()
		}
		wg.Wait()
		close(s.stop)
		<-s.done
		s.cancelMsgs()
	})
	return s.shutErr
}

// run is the dispatcher: it owns the partition state, hands records out in
// order per partition within the prefetch window, tracks acks, schedules
// redeliveries, drains revoked partitions and marks commit points.
func (s *subscription) run() {
	defer close(s.done)
	ticker := time.NewTicker(s.b.cfg.CommitInterval)
	defer ticker.Stop()
	// revokeTimer ends the drain of the oldest revoke.
	revokeTimer := time.NewTimer(time.Hour)
	revokeTimer.Stop()
	defer revokeTimer.Stop()
	var revokeAt time.Time
	// dueTimer wakes the dispatcher when a nacked record's backoff is over
	// or a held retry partition is due; it is armed only while something
	// waits, and re-armed only when that time changes.
	dueTimer := time.NewTimer(time.Hour)
	dueTimer.Stop()
	defer dueTimer.Stop()
	var dueAt time.Time
	// sweepTimer looks for out-of-order acks behind the oldest pending
	// entry; armed only while more than one entry is pending.
	sweepTimer := time.NewTimer(time.Hour)
	sweepTimer.Stop()
	defer sweepTimer.Stop()
	sweepArmed := false
	sweepEvery := minSweep

	intake := s.intakeCtx.Done()
	open := true
	drained := false
	var (
		pend    *entry
		pendMsg *message.Message
	)
	drop := func() { pend, pendMsg = nil, nil }
	burst := 0

	for {
		// Fast path: collect acks at the front and hand the next message
		// to a receiver already waiting, without the full select; after
		// maxBurst rounds the full select runs so that events and timers
		// are served.
		if len(s.pending) > 0 && s.reap() {
			drop() // a nacked record may have to go first
		}
		if open {
			if pend == nil && s.inflight < s.prefetch {
				if pend = s.pick(); pend != nil {
					if pend.msg == nil { // a redelivery
						pend.msg = s.toMessage(pend.p, pend.rec)
					}
					pendMsg = pend.msg
				}
			}
			for _, src := range []*source{s.main, s.retry} {
				if !src.polling && src.queued < src.budget {
					select {
					case src.want <- struct{}{}:
						src.polling = true
					default:
					}
				}
			}
		} else if !drained && s.inflight == 0 {
			drained = true
			go s.shutdown() //nolint:errcheck // errors are logged; Close reports them
		}
		if pend != nil && burst < maxBurst {
			burst++
			select {
			case s.out <- pendMsg:
				s.handedOut(pend)
				drop()
				continue
			default:
			}
		}
		burst = 0
		var outCh chan<- *message.Message
		if pend != nil {
			outCh = s.out
		}
		if due, ok := s.nextDue(); ok {
			if !due.Equal(dueAt) {
				dueAt = due
				dueTimer.Reset(max(time.Until(due), 0))
			}
		} else if !dueAt.IsZero() {
			dueAt = time.Time{}
			dueTimer.Stop()
		}
		if len(s.revokes) > 0 {
			s.finishRevokes(false)
		}
		if len(s.revokes) > 0 {
			if d := s.revokes[0].deadline; !d.Equal(revokeAt) {
				revokeAt = d
				revokeTimer.Reset(max(time.Until(d), 0))
			}
		} else if !revokeAt.IsZero() {
			revokeAt = time.Time{}
			revokeTimer.Stop()
		}
		if len(s.pending) > 1 && !sweepArmed {
			sweepArmed = true
			sweepTimer.Reset(sweepEvery)
		}
		var headAck, headNack <-chan struct{}
		if len(s.pending) > 0 {
			h := s.pending[0].msg
			headAck, headNack = h.Acked(), h.Nacked()
		}

		select {
		case outCh <- pendMsg:
			s.handedOut(pend)
			drop()

		case <-headAck:
			if s.reap() {
				drop() // a nacked record may have to go first
			}
		case <-headNack:
			if s.reap() {
				drop()
			}

		case <-sweepTimer.C:
			sweepArmed = false
			if found, nacked := s.sweep(); found {
				sweepEvery = minSweep
				if nacked {
					drop()
				}
			} else {
				sweepEvery = min(2*sweepEvery, maxSweep)
			}

		case ev := <-s.events:
			switch ev := ev.(type) {
			case batchEv:
				ev.src.polling = false
				if open {
					s.enqueue(ev.recs)
				}
			case assignEv:
				s.assign(ev.src, ev.parts)
				close(ev.reply)
			case revokeEv:
				drop()
				s.sweep() // count every ack made before the revoke
				if open {
					s.takeBack() // buffered in the channel: not handed out
				}
				s.startRevoke(ev)
			case finalEv:
				s.sweep() // count every ack made before Close
				s.mark(true)
				close(ev.reply)
			case forwardedEv:
				s.forwarded(ev)
			case failEv:
				if open {
					s.stopIntake() // the intake case closes the channel
				}
			}

		case <-dueTimer.C:

		case <-revokeTimer.C:
			revokeAt = time.Time{}
			s.sweep()
			s.finishRevokes(true)

		case <-ticker.C:
			s.sweep()
			s.mark(false)

		case <-intake:
			intake = nil
			open = false
			drop()
			s.takeBack()
			close(s.out)

		case <-s.stop:
			return
		}
	}
}

// Bounds of the interval between sweeps for out-of-order acks: it starts at
// minSweep and doubles while sweeps find nothing.
const (
	minSweep = time.Millisecond
	maxSweep = 50 * time.Millisecond
)

// maxOutBuffer bounds the buffer of a subscription's channel. Messages in
// the buffer count as handed out (they are within the prefetch window); those
// still there when intake stops are taken back and not acked, so the group
// gets them again. The buffer lets the dispatcher run ahead of a consumer
// instead of meeting it for every message.
const maxOutBuffer = 64

// maxBurst bounds how many messages the dispatcher hands out in a row
// without serving events and timers.
const maxBurst = 64

// takeBack removes the messages still buffered in the channel: they were
// never received, so they count as not handed out and are not acked (the
// commit stops before them, and the group gets them again).
func (s *subscription) takeBack() {
	for {
		select {
		case m := <-s.out:
			for i := len(s.pending) - 1; i >= 0; i-- {
				if e := s.pending[i]; e.msg == m {
					s.pending = slices.Delete(s.pending, i, i+1)
					s.unhand(e)
					break
				}
			}
		default:
			return
		}
	}
}

// resolved reports whether m was acked or nacked.
func resolved(m *message.Message) (acked, done bool) {
	select {
	case <-m.Acked():
		return true, true
	case <-m.Nacked():
		return false, true
	default:
		return false, false
	}
}

// reap processes the resolved entries at the front of pending, and reports
// whether one of them was nacked.
func (s *subscription) reap() (nacked bool) {
	n := 0
	for _, e := range s.pending {
		ok, done := resolved(e.msg)
		if !done {
			break
		}
		s.acked(e, ok)
		nacked = nacked || !ok
		n++
	}
	if n > 0 { // shift down, keeping the capacity for later appends
		m := copy(s.pending, s.pending[n:])
		clear(s.pending[m:])
		s.pending = s.pending[:m]
	}
	return nacked
}

// sweep processes every resolved entry of pending.
func (s *subscription) sweep() (found, nacked bool) {
	j := 0
	for _, e := range s.pending {
		if ok, done := resolved(e.msg); done {
			s.acked(e, ok)
			found = true
			nacked = nacked || !ok
			continue
		}
		s.pending[j] = e
		j++
	}
	clear(s.pending[j:])
	s.pending = s.pending[:j]
	return found, nacked
}

func (s *subscription) assign(src *source, parts map[string][]int32) {
	for topic, ps := range parts {
		for _, p := range ps {
			k := tp{topic, p}
			if _, ok := s.parts[k]; ok {
				continue
			}
			st := &partState{tp: k, src: src, isRetry: src.retry, sent: -1}
			st.ctx, st.cancel = context.WithCancel(s.msgCtx)
			s.parts[k] = st
			s.order = append(s.order, st)
		}
	}
}

// mark marks the commit point of every partition that has one on its
// client, for franz-go's autocommit of marks (and the commits on revoke and
// Close); with all false, only those that moved since they were last marked.
func (s *subscription) mark(all bool) {
	var main, retry map[string]map[int32]kgo.EpochOffset
	for _, st := range s.order {
		if !st.hasCommit || (!all && st.commit.Offset <= st.sent) {
			continue
		}
		m := &main
		if st.isRetry {
			m = &retry
		}
		if *m == nil {
			*m = map[string]map[int32]kgo.EpochOffset{}
		}
		if (*m)[st.topic] == nil {
			(*m)[st.topic] = map[int32]kgo.EpochOffset{}
		}
		(*m)[st.topic][st.part] = st.commit
		st.sent = st.commit.Offset
	}
	if main != nil {
		s.main.cl.MarkCommitOffsets(main)
	}
	if retry != nil {
		s.retry.cl.MarkCommitOffsets(retry)
	}
}

func (s *subscription) enqueue(recs []*entry) {
	var last *partState
	for _, e := range recs {
		st := last
		if st == nil || st.topic != e.rec.Topic || st.part != e.rec.Partition {
			st = s.parts[tp{e.rec.Topic, e.rec.Partition}]
			if st == nil {
				continue // not ours (any more); the owner fetches it
			}
			last = st
		}
		e.p = st
		e.ctx.parent = st.ctx
		st.queue = append(st.queue, e)
		st.src.queued++
	}
}

// lazyNow reads the clock at most once, and only if asked.
type lazyNow struct{ t time.Time }

func (l *lazyNow) now() time.Time {
	if l.t.IsZero() {
		l.t = time.Now()
	}
	return l.t
}

// pick returns the next record to hand out, round-robin across partitions.
func (s *subscription) pick() *entry {
	var clock lazyNow
	n := len(s.order)
	for i := range n {
		st := s.order[(s.rr+i)%n]
		if e := s.head(st, &clock); e != nil {
			s.rr = (s.rr + i + 1) % n
			return e
		}
	}
	return nil
}

// head returns the next record of one partition to hand out, or nil:
//   - first a nacked record whose backoff is over, lowest offset first, but
//     never ahead of an earlier nacked record with the same key;
//   - else the first fetched record whose key has no nacked record waiting
//     (records without a key are never held back);
//   - on a retry partition, records for other groups are skipped, a record
//     not due yet holds the partition (fetching is paused) until due, and
//     a due record whose chained delay is not over is forwarded to a tier.
//
// A partition being revoked hands nothing out.
func (s *subscription) head(st *partState, clock *lazyNow) *entry {
	if st.revoking {
		return nil
	}
	var waiting map[string]bool
	for i, e := range st.redeliver {
		k := string(e.rec.Key)
		if k != "" && waiting[k] {
			continue
		}
		if !clock.now().Before(e.due) {
			e.idx = i
			return e
		}
		if k != "" {
			if waiting == nil {
				waiting = map[string]bool{}
			}
			waiting[k] = true
		}
	}
	for i := 0; i < len(st.queue); i++ {
		qe := st.queue[i]
		r := qe.rec
		if st.isRetry {
			group, due, until := retryInfo(r)
			if group != s.group {
				// Meant for another group: done for this one.
				st.queue = slices.Delete(st.queue, i, i+1)
				st.src.queued--
				qe.acked, qe.msg = true, nil
				insertOut(st, qe)
				advance(st)
				i--
				continue
			}
			if clock.now().Before(due) {
				st.heldUntil = due
				if !st.paused {
					st.paused = true
					st.src.cl.PauseFetchPartitions(map[string][]int32{st.topic: {st.part}})
				}
				return nil
			}
			st.heldUntil = time.Time{}
			if st.paused {
				st.paused = false
				st.src.cl.ResumeFetchPartitions(map[string][]int32{st.topic: {st.part}})
			}
			if clock.now().Before(until) {
				// Chained: due on this tier, not yet in full.
				st.queue = slices.Delete(st.queue, i, i+1)
				st.src.queued--
				insertOut(st, qe)
				s.forward(qe, until)
				i--
				continue
			}
		}
		if len(r.Key) > 0 && st.blocked[string(r.Key)] > 0 {
			continue
		}
		qe.fresh, qe.idx = true, i
		return qe
	}
	return nil
}

// nextDue is the earliest time a held partition becomes ready.
func (s *subscription) nextDue() (time.Time, bool) {
	var due time.Time
	ok := false
	for _, st := range s.order {
		for _, e := range st.redeliver {
			if !ok || e.due.Before(due) {
				due, ok = e.due, true
			}
		}
		if !st.heldUntil.IsZero() && (!ok || st.heldUntil.Before(due)) {
			due, ok = st.heldUntil, true
		}
	}
	return due, ok
}

func (s *subscription) handedOut(e *entry) {
	st := e.p
	if e.fresh {
		e.fresh = false
		if e.idx == 0 {
			st.queue[0] = nil
			st.queue = st.queue[1:]
		} else {
			st.queue = slices.Delete(st.queue, e.idx, e.idx+1)
		}
		st.src.queued--
		insertOut(st, e)
	} else {
		st.redeliver = slices.Delete(st.redeliver, e.idx, e.idx+1)
		if k := string(e.rec.Key); k != "" {
			if st.blocked[k]--; st.blocked[k] <= 0 {
				delete(st.blocked, k)
			}
		}
	}
	s.pending = append(s.pending, e)
	s.inflight++
	st.busy++
}

func (s *subscription) acked(e *entry, ok bool) {
	s.inflight--
	e.msg = nil // a redelivery gets a new message
	st := e.p
	st.busy--
	if s.parts[st.tp] != st {
		return // revoked: the new owner redelivers it
	}
	if ok {
		e.acked = true
		advance(st)
		return
	}
	e.nacks++
	backoff := s.b.cfg.NackBackoff
	for i := 1; i < e.nacks && backoff < s.b.cfg.MaxNackBackoff; i++ {
		backoff *= 2
	}
	backoff = min(backoff, s.b.cfg.MaxNackBackoff)
	e.due = time.Now().Add(backoff)
	i := len(st.redeliver)
	for i > 0 && st.redeliver[i-1].rec.Offset > e.rec.Offset {
		i--
	}
	st.redeliver = slices.Insert(st.redeliver, i, e)
	if k := string(e.rec.Key); k != "" {
		if st.blocked == nil {
			st.blocked = map[string]int{}
		}
		st.blocked[k]++
	}
}

// insertOut adds a handed-out entry to st.out, keeping offset order.
func insertOut(st *partState, e *entry) {
	i := len(st.out)
	for i > 0 && st.out[i-1].rec.Offset > e.rec.Offset {
		i--
	}
	st.out = slices.Insert(st.out, i, e)
}

// advance moves the commit point past every acked record at the front,
// never past a fetched record that was not handed out yet.
func advance(st *partState) {
	limit := int64(math.MaxInt64)
	if len(st.queue) > 0 {
		limit = st.queue[0].rec.Offset
	}
	i := 0
	for i < len(st.out) && st.out[i].acked && st.out[i].rec.Offset < limit {
		r := st.out[i].rec
		st.commit = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset + 1}
		st.hasCommit = true
		i++
	}
	if i > 0 { // shift down, keeping the capacity for later appends
		n := copy(st.out, st.out[i:])
		clear(st.out[n:])
		st.out = st.out[:n]
	}
}

// toMessage turns a record into a watermill message (see recordMessage)
// whose context is a [msgContext].
func (s *subscription) toMessage(st *partState, r *kgo.Record) *message.Message {
	m := recordMessage(r)
	m.SetContext(&msgContext{parent: st.ctx, m: m})
	return m
}

// msgContext is a handed-out message's context: it carries the Subscribe
// context's values and is cancelled once the message is acked or nacked, or
// when the subscription shuts down. It costs one small allocation until Done
// is called; Done starts a real context and one goroutine that cancels it,
// so only messages whose context is watched (or derived from) pay for that.
type msgContext struct {
	parent context.Context // the partition's ctx
	m      *message.Message
	once   sync.Once
	inner  atomic.Pointer[context.Context]
}

func (c *msgContext) Deadline() (time.Time, bool) { return c.parent.Deadline() }

func (c *msgContext) Done() <-chan struct{} {
	c.once.Do(func() {
		ctx, cancel := context.WithCancel(c.parent)
		c.inner.Store(&ctx)
		if _, done := resolved(c.m); done {
			cancel()
			return
		}
		go func() {
			defer cancel()
			select {
			case <-c.m.Acked():
			case <-c.m.Nacked():
			case <-ctx.Done():
			}
		}()
	})
	return (*c.inner.Load()).Done()
}

func (c *msgContext) Err() error {
	if inner := c.inner.Load(); inner != nil {
		return (*inner).Err()
	}
	if _, done := resolved(c.m); done {
		return context.Canceled
	}
	return c.parent.Err()
}

// Value answers from the real context once Done started it, so that
// contexts derived from this one register with it directly (the context
// package then needs no goroutine per derived context).
func (c *msgContext) Value(key any) any {
	if inner := c.inner.Load(); inner != nil {
		return (*inner).Value(key)
	}
	return c.parent.Value(key)
}

// recordMessage turns a record into a watermill message: UUID from the ce_id
// header (else "<topic>/<partition>/<offset>"), metadata from the headers
// with [header.Canonical] applied, plus topic, partition and offset.
//
// The message's key ([header.Key]) is the ce_partitionkey header, else the
// record key: a producer that is not Switchyard (kafkajs with `key:
// aggregateId`) keys its records and writes no such header.
func recordMessage(r *kgo.Record) *message.Message {
	m := message.NewMessage("", r.Value)
	if len(r.Headers)+3 > 8 { // NewMessage's empty map holds 8 without growing
		m.Metadata = make(message.Metadata, len(r.Headers)+3)
	}
	md := m.Metadata
	for _, h := range r.Headers {
		md[header.Canonical(h.Key)] = string(h.Value)
	}
	if len(r.Key) > 0 && md[header.Key] == "" {
		md[header.Key] = string(r.Key)
	}
	delete(md, MetadataRetryDue)
	delete(md, MetadataRetryUntil)
	md[MetadataTopic] = r.Topic
	md[MetadataPartition] = strconv.FormatInt(int64(r.Partition), 10)
	md[MetadataOffset] = strconv.FormatInt(r.Offset, 10)
	m.UUID = md[header.ID]
	if m.UUID == "" {
		m.UUID = r.Topic + "/" + md[MetadataPartition] + "/" + md[MetadataOffset]
	}
	return m
}
