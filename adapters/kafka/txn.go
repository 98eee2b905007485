package kafka

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-go/switchyard/pkg/broker"
)

// txnSubscription is a subscription with exactly-once handling
// ([broker.SubscriberOptions].ExactlyOnce): consume-transform-produce in
// Kafka transactions, through franz-go's GroupTransactSession.
//
// It works batch by batch: it polls up to prefetch records, begins a
// transaction, hands the records out and waits until each is acked or
// nacked. Whatever the handlers publish meanwhile with the messages'
// context (see [txnContext]) is produced in that transaction. Then the
// transaction ends: committed, with the batch's offsets, if every record
// was acked; aborted otherwise (a nack, a record not handed out because
// intake stopped, a rebalance, a failed commit), and the batch is read
// again from the committed offsets after the nack backoff. Consumers that
// read committed data (isolation read_committed) see the outputs of each
// record exactly once; the handlers themselves may run more than once.
//
// Rebalances wait for the batch to end (BlockRebalanceOnPoll), so no
// partition is handled on two members at once; a batch must end within
// the rebalance timeout, or the member leaves the group and the batch
// aborts. It reads the main topic only: exactly-once handlers retry in
// place (order_on_retry keep), never through retry topics.
type txnSubscription struct {
	b     *Broker
	owner *Subscriber
	log   *slog.Logger
	topic string
	sess  *kgo.GroupTransactSession
	out   chan *message.Message

	intake     context.Context // done when Subscribe's context is, or on shutdown
	stopIntake context.CancelFunc
	msgCtx     context.Context // parent of the messages' contexts
	cancelMsgs context.CancelFunc
	closing    chan struct{} // closed by shutdown: stop waiting for acks
	done       chan struct{} // closed when the loop has left
	closeOnce  sync.Once
	shutOnce   sync.Once
}

// txnKey is the context key of the transaction a handler publishes in.
type txnKey struct{}

// txnContext is the context of a message handed out in a transaction.
type txnContext struct {
	context.Context
	sess *kgo.GroupTransactSession
}

var _ broker.Scoped = (*txnContext)(nil)

// Scope implements [broker.Scoped]: publishes with the returned context
// are produced in the message's transaction.
func (c *txnContext) Scope(ctx context.Context) context.Context {
	return context.WithValue(ctx, txnKey{}, c.sess)
}

// txnIn returns the transaction a publish with ctx is produced in, or nil.
func txnIn(ctx context.Context) *kgo.GroupTransactSession {
	sess, _ := ctx.Value(txnKey{}).(*kgo.GroupTransactSession)
	return sess
}

// subscribeTxn is Subscribe for an exactly-once subscriber.
func (s *Subscriber) subscribeTxn(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if err := s.b.ensureTopics(ctx, topic); err != nil {
		return nil, fmt.Errorf("kafka: subscribe to %q: %w", topic, err)
	}
	cfg := s.b.cfg
	id, err := s.transactionalID(topic)
	if err != nil {
		return nil, fmt.Errorf("kafka: subscribe to %q: %w", topic, err)
	}
	opts := append(append(append([]kgo.Opt(nil), s.b.opts...), cfg.producerOpts()...),
		kgo.ConsumerGroup(s.group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(cfg.resetOffset()),
		kgo.TransactionalID(id),
		// The batch must end within the rebalance timeout anyway (the
		// rebalance waits for it); a member killed mid-batch holds its
		// partitions' offsets back until the broker aborts its
		// transaction after this timeout.
		kgo.TransactionTimeout(cfg.RebalanceTimeout),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		kgo.BlockRebalanceOnPoll(),
		kgo.SessionTimeout(cfg.SessionTimeout),
		kgo.RebalanceTimeout(cfg.RebalanceTimeout),
		kgo.HeartbeatInterval(cfg.HeartbeatInterval),
		kgo.FetchMaxWait(time.Second),
	)
	if cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(id))
	}
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: subscribe to %q: %w", topic, err)
	}
	t := &txnSubscription{
		b:       s.b,
		owner:   s,
		log:     s.b.logger.With("topic", topic, "group", s.group, "transactional_id", id),
		topic:   topic,
		sess:    sess,
		out:     make(chan *message.Message),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	t.intake, t.stopIntake = context.WithCancel(ctx)
	t.msgCtx, t.cancelMsgs = context.WithCancel(context.WithoutCancel(ctx))
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		t.stopIntake()
		sess.Close()
		return nil, fmt.Errorf("kafka: subscribe to %q: %w", topic, broker.ErrClosed)
	}
	s.txns[t] = struct{}{}
	s.mu.Unlock()
	go t.loop(s.prefetch)
	return t.out, nil
}

// transactionalID names the subscription's producer. With an instance id
// it is stable, so a restarted member fences its predecessor's transaction
// at once; otherwise it is unique, and a crashed member's open transaction
// holds its partitions back until the transaction timeout.
func (s *Subscriber) transactionalID(topic string) (string, error) {
	if id := s.b.cfg.InstanceID; id != "" {
		return fmt.Sprintf("%s.%s.%s.%d", id, s.group, topic, s.b.instanceSeq(s.group, topic)), nil
	}
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s.%s.%s", s.group, topic, hex.EncodeToString(r[:])), nil
}

// loop polls, hands out and ends one transaction per batch until intake
// stops.
func (t *txnSubscription) loop(prefetch int) {
	defer close(t.done)
	defer t.closeOut()
	backoff := t.b.cfg.NackBackoff
	for t.intake.Err() == nil {
		fs := t.sess.PollRecords(t.intake, prefetch)
		if fs.IsClientClosed() || t.intake.Err() != nil {
			t.sess.AllowRebalance()
			return
		}
		var fatalErr error
		fs.EachError(func(topic string, part int32, err error) {
			if fatal(err) {
				fatalErr = errors.Join(fatalErr, err)
				return
			}
			t.log.Warn("kafka: fetch failed; retrying", "partition", part, "error", err)
		})
		if fatalErr != nil {
			t.fail(fatalErr)
			t.sess.AllowRebalance()
			return
		}
		recs := fs.Records()
		if len(recs) == 0 {
			t.sess.AllowRebalance()
			continue
		}
		committed, err := t.transact(recs)
		t.sess.AllowRebalance()
		if err != nil {
			t.fail(err)
			return
		}
		if committed {
			backoff = t.b.cfg.NackBackoff
			continue
		}
		// Aborted: the session is back at the committed offsets. Wait
		// before handling the batch again, as for a nack.
		select {
		case <-time.After(backoff):
		case <-t.intake.Done():
		}
		backoff = min(2*backoff, t.b.cfg.MaxNackBackoff)
	}
}

// transact hands recs out in a transaction and ends it: committed only if
// every record was acked.
func (t *txnSubscription) transact(recs []*kgo.Record) (committed bool, err error) {
	if err := t.sess.Begin(); err != nil {
		return false, fmt.Errorf("kafka: subscriber %q on %q: begin transaction: %w", t.owner.group, t.topic, err)
	}
	ctx := &txnContext{Context: t.msgCtx, sess: t.sess}
	msgs := make([]*message.Message, 0, len(recs))
	for _, r := range recs {
		m := recordMessage(r)
		m.SetContext(ctx)
		select {
		case t.out <- m:
			msgs = append(msgs, m)
			continue
		case <-t.intake.Done():
		}
		break
	}
	if t.intake.Err() != nil {
		t.closeOut() // the runtime stops reading: let it see the end
	}
	all := len(msgs) == len(recs)
	for _, m := range msgs {
		select {
		case <-m.Acked():
		case <-m.Nacked():
			all = false
		case <-t.closing: // the runtime has given up on it, unless it was settled meanwhile
			if acked, _ := resolved(m); !acked {
				all = false
			}
		}
	}
	endCtx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	committed, err = t.sess.End(endCtx, kgo.TransactionEndTry(all))
	if err != nil {
		return false, fmt.Errorf("kafka: subscriber %q on %q: end transaction: %w", t.owner.group, t.topic, err)
	}
	if all && !committed {
		t.log.Info("kafka: transaction aborted (rebalance or failed offset commit); the batch is handled again", "records", len(recs))
	}
	return committed, nil
}

func (t *txnSubscription) closeOut() { t.closeOnce.Do(func() { close(t.out) }) }

func (t *txnSubscription) fail(err error) {
	t.log.Error("kafka: exactly-once subscription ended", "error", err)
	t.owner.fail(err)
}

// shutdown stops intake and the wait for the batch in hand (the runtime
// settled its messages before it closes the subscriber; any left abort the
// transaction), waits for the loop and leaves the group.
func (t *txnSubscription) shutdown() {
	t.shutOnce.Do(func() {
		t.stopIntake()
		close(t.closing)
		<-t.done
		t.sess.Close()
		t.cancelMsgs()
	})
}

// publishTxn produces msgs to topic in sess's transaction and waits for
// every acknowledgement.
func (p *Publisher) publishTxn(sess *kgo.GroupTransactSession, topic string, msgs []*message.Message) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	wg.Add(len(msgs))
	for _, m := range msgs {
		sess.Produce(context.Background(), toRecord(topic, m, nil), func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
			wg.Done()
		})
	}
	wg.Wait()
	if first != nil {
		return fmt.Errorf("kafka: publish to %q in the transaction: %w", topic, first)
	}
	return nil
}
