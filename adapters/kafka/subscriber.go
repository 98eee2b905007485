package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-go/switchyard/pkg/broker"
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
	b           *Broker
	group       string
	prefetch    int
	exactlyOnce bool

	mu      sync.Mutex
	subs    map[*subscription]struct{}
	txns    map[*txnSubscription]struct{}
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
	if s.exactlyOnce {
		return s.subscribeTxn(ctx, topic)
	}
	// The topic and its group's retry topics are provisioned here, not on
	// the first Delay: a retry consumer must exist before the first retry
	// record does, or a rebalance could start it past that record.
	if err := s.b.ensureTopics(ctx, topic); err != nil {
		return nil, fmt.Errorf("kafka: subscribe to %q: %w", topic, err)
	}
	if err := s.b.ensureRetryTopics(ctx, s.b.retryTopics(topic, s.group)...); err != nil {
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
		n := s.b.instanceSeq(s.group, topic)
		sub.releaseInstance = func() { s.b.releaseInstance(s.group, topic, n) }
		instance = fmt.Sprintf("%s.%s.%s.%d", cfg.InstanceID, s.group, topic, n)
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
		sub.release()
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
		sub.release()
		return nil, fmt.Errorf("kafka: subscribe to %q: retry topics: %w", topic, err)
	}
	sub.main, sub.retry = main, retry

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		sub.stopIntake()
		main.cl.Close()
		retry.cl.Close()
		sub.release()
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
		// Outputs of exactly-once handlers whose transaction aborted are
		// never handed out (without transactions it changes nothing).
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.OnPartitionsAssigned(func(ctx context.Context, cl *kgo.Client, parts map[string][]int32) {
			s.onAssigned(src, parts)
		}),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, parts map[string][]int32) {
			s.revoke(ctx, src, parts, false)
		}),
		kgo.OnPartitionsLost(func(ctx context.Context, cl *kgo.Client, parts map[string][]int32) {
			s.revoke(ctx, src, parts, true)
		}),
		kgo.AdjustFetchOffsetsFn(src.adjustRecreated),
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
	cl    *kgo.Client
	retry bool
	// recreating is set while a recreated topic is purged (see
	// rejoinRecreated): the revoke it causes commits nothing.
	recreating atomic.Bool
	// fromStart holds recreated topics whose next assignment reads from
	// the start (see adjustRecreated).
	fromStartMu sync.Mutex
	fromStart   map[string]bool
	want        chan struct{} // poller may poll once
	done        chan struct{} // poller exited
	budget      int           // records queued (fetched, not handed out) at most
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
	txns := s.txns
	s.txns = map[*txnSubscription]struct{}{}
	s.mu.Unlock()
	for t := range txns {
		t.shutdown()
	}

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
	// releaseInstance gives back the static-membership number, if any.
	releaseInstance func()

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
	// A purge of a recreated topic revokes it: its marks are offsets of
	// the old topic, and committed they would skip the new topic's first
	// records. Treat it as lost.
	lost = lost || src.recreating.Swap(false)
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
		var recreated []string
		fs.EachError(func(t string, p int32, err error) {
			if errors.Is(err, context.Canceled) || errors.Is(err, kgo.ErrClientClosed) {
				return
			}
			pollErr = err
			if errors.Is(err, kerr.UnknownTopicID) && !slices.Contains(recreated, t) {
				recreated = append(recreated, t)
			}
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
		if len(recreated) > 0 {
			s.rejoinRecreated(src, recreated)
		}
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

// rejoinRecreated resumes topics that were deleted and created again
// (UNKNOWN_TOPIC_ID; see Broker.recreated): purged from the client, which
// leaves the group's subscription and rebalances, and subscribed again. The
// group's old committed offsets are past the new topic's end, so the new
// owner starts where Config.InitialOffset says. Retry sources subscribe by
// pattern and find the topic again by themselves.
func (s *subscription) rejoinRecreated(src *source, topics []string) {
	s.log.Warn("kafka: topic was deleted and created again; subscribing anew", "topics", topics)
	src.fromStartMu.Lock()
	if src.fromStart == nil {
		src.fromStart = map[string]bool{}
	}
	for _, t := range topics {
		src.fromStart[t] = true
	}
	src.fromStartMu.Unlock()
	src.recreating.Store(true)
	src.cl.PurgeTopicsFromConsuming(topics...)
	if !src.retry {
		src.cl.AddConsumeTopics(topics...)
	}
	for _, t := range topics {
		s.owner.b.recreated(t)
	}
}

// adjustRecreated starts a recreated topic from its first record at its
// next assignment: the group's committed offsets are the old topic's
// (Kafka keeps them under the topic's name), and a new topic shorter than
// the old one would otherwise be skipped up to them, silently.
func (src *source) adjustRecreated(_ context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	src.fromStartMu.Lock()
	defer src.fromStartMu.Unlock()
	for t, parts := range offsets {
		if !src.fromStart[t] {
			continue
		}
		delete(src.fromStart, t)
		for p := range parts {
			parts[p] = kgo.NewOffset().AtStart().WithEpoch(-1)
		}
	}
	return offsets, nil
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
		s.release()
	})
	return s.shutErr
}

func (s *subscription) release() {
	if s.releaseInstance != nil {
		s.releaseInstance()
	}
}
