package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-go/switchyard/pkg/broker"
)

// Name is the adapter's name in configuration.
const Name = "kafka"

// Broker is a connection to a Kafka cluster: one shared producing client, an
// admin client that creates topics, and one consumer-group client per
// subscription. It implements [broker.Broker], [broker.Delayer],
// [broker.Provisioner] and [broker.Browser].
type Broker struct {
	cfg    Config
	logger *slog.Logger
	opts   []kgo.Opt // shared client options (brokers, TLS, SASL, logger)

	admCl *kgo.Client
	adm   *kadm.Client
	pub   *Publisher

	topicsMu sync.RWMutex
	topics   map[string]struct{} // topics known to exist

	mu     sync.Mutex
	subs   []*Subscriber
	closed bool
	// instances holds the static-membership numbers in use per group and
	// topic (Config.InstanceID).
	instances map[string]map[int]bool
	inboxes   inboxes // see OpenInbox
}

// instanceSeq returns the lowest number not in use by a subscription of
// group on topic, and takes it. A subscription reopened after it closed
// gets its old number back, so its static member (which does not leave
// the group on close) gets its partitions back instead of holding them
// unconsumed until the session times out.
func (b *Broker) instanceSeq(group, topic string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.instances == nil {
		b.instances = map[string]map[int]bool{}
	}
	k := group + "\x00" + topic
	if b.instances[k] == nil {
		b.instances[k] = map[int]bool{}
	}
	n := 0
	for b.instances[k][n] {
		n++
	}
	b.instances[k][n] = true
	return n
}

// releaseInstance gives back a number taken by instanceSeq.
func (b *Broker) releaseInstance(group, topic string, n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.instances[group+"\x00"+topic], n)
}

var (
	_ broker.Broker  = (*Broker)(nil)
	_ broker.Delayer = (*Broker)(nil)
)

// New connects to the cluster named by cfg after applying defaults and
// validating it. It fails if no broker answers before ctx is done.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*Broker, error) {
	cfg.Brokers = append([]string(nil), cfg.Brokers...)
	cfg.DelayTiers = append([]time.Duration(nil), cfg.DelayTiers...)
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("kafka: invalid config: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts, err := cfg.clientOpts()
	if err != nil {
		return nil, err
	}
	opts = append(opts, kgo.WithLogger(kgoLogger{logger}))
	b := &Broker{cfg: cfg, logger: logger, opts: opts, topics: map[string]struct{}{}}

	b.admCl, err = kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: admin client: %w", err)
	}
	if err := b.admCl.Ping(ctx); err != nil {
		b.admCl.Close()
		return nil, fmt.Errorf("kafka: connect to %v: %w", cfg.Brokers, err)
	}
	b.adm = kadm.NewClient(b.admCl)

	// AllowIdempotentProduceCancellation makes publish_timeout bound every
	// record. Without it franz-go's idempotent producer never fails a batch
	// written in a request that got no response (it cannot tell whether
	// the broker stored it): a broker that dies with a produce request in
	// flight leaves that batch, and every record buffered behind it (up to
	// kgo.MaxBufferedRecords), unanswered until the broker is back, so a
	// PublishAsync promise or a Publish could wait for ever. With it such a
	// record fails at its delivery timeout like any other; it may have been
	// stored, so a caller's retry can duplicate it: the at-least-once
	// contract Publish already states. The transactional clients (txn.go)
	// cannot take it and keep franz-go's default.
	prod, err := kgo.NewClient(append(append(append([]kgo.Opt(nil), opts...), cfg.producerOpts()...),
		kgo.AllowIdempotentProduceCancellation())...)
	if err != nil {
		b.admCl.Close()
		return nil, fmt.Errorf("kafka: producer client: %w", err)
	}
	b.pub = &Publisher{b: b, cl: prod}
	return b, nil
}

// Name returns "kafka".
func (b *Broker) Name() string { return Name }

// Publisher returns the broker's shared publisher.
func (b *Broker) Publisher() message.Publisher { return b.pub }

// Subscriber returns a subscriber consuming as consumer group group. Every
// Subscribe call on it joins the group with its own client, so two
// subscribers of one group share the topic's partitions.
func (b *Broker) Subscriber(group string, opts broker.SubscriberOptions) (message.Subscriber, error) {
	if group == "" {
		return nil, errors.New("kafka: subscriber: consumer group required")
	}
	if opts.Prefetch < 0 {
		return nil, fmt.Errorf("kafka: subscriber %q: prefetch %d, want >= 0", group, opts.Prefetch)
	}
	prefetch := opts.Prefetch
	if prefetch == 0 {
		prefetch = b.cfg.Prefetch
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, broker.ErrClosed
	}
	s := &Subscriber{b: b, group: group, prefetch: prefetch, exactlyOnce: opts.ExactlyOnce,
		subs: map[*subscription]struct{}{}, txns: map[*txnSubscription]struct{}{}}
	b.subs = append(b.subs, s)
	return s, nil
}

// Capabilities: at-least-once, per-key order, delayed redelivery through
// retry topics, durable; a nack holds back the partition's committed offset
// (NackRewinds); exactly-once subscriptions in transactions.
func (b *Broker) Capabilities() broker.Capabilities {
	return broker.Capabilities{
		Delivery:          "at-least-once",
		Ordering:          broker.OrderPerKey,
		DelayedRedelivery: true,
		Durable:           true,
		NackRewinds:       true,
		ExactlyOnce:       true,
	}
}

// Close closes every subscriber (committing acked offsets and leaving their
// groups), then the publisher (flushing what is buffered) and the admin
// client. It is idempotent.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	subs := b.subs
	b.subs = nil
	b.mu.Unlock()

	var errs []error
	for _, s := range subs {
		errs = append(errs, s.Close())
	}
	b.inboxes.closeAll()
	errs = append(errs, b.pub.Close())
	b.admCl.Close()
	return errors.Join(errs...)
}

// kgoLogger forwards franz-go's log lines to the broker's logger, at warn and
// above only: franz-go's info lines are per-connection chatter.
type kgoLogger struct{ l *slog.Logger }

func (k kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lv := slog.LevelWarn
	if level == kgo.LogLevelError {
		lv = slog.LevelError
	}
	k.l.Log(context.Background(), lv, "kafka: "+msg, keyvals...)
}
