package schedule

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// Headers of a message waiting in the broker's delay machinery: where it
// goes when due, and when that is (Unix milliseconds). They are removed
// before it is published to its topic.
const (
	TargetHeader = "switchyard_schedule_target"
	DueHeader    = "switchyard_schedule_due"
)

// Defaults of [BrokerConfig].
const (
	DefaultRelayTopic = "switchyard.scheduled"
	DefaultRelayGroup = "switchyard-scheduler"
)

// BrokerConfig configures an [OnBroker] scheduler.
type BrokerConfig struct {
	// Topic is the relay topic that scheduled messages wait on. Give each
	// service (or namespace) its own. Default "switchyard.scheduled".
	Topic string `yaml:"topic"`
	// Group is the relay's consumer group. Default "switchyard-scheduler".
	Group string `yaml:"group"`
	// Logger receives the relay's warnings. Nil: discard.
	Logger *slog.Logger `yaml:"-"`
}

// OnBroker is a [service.Scheduler] without a database: a scheduled message
// waits in the broker's own delay machinery ([broker.Delayer]: RabbitMQ's
// delay-tier queues, Kafka's retry topics, memory timers) on a relay topic,
// for the relay's consumer group; when it is handed out, due, the relay
// publishes it to its topic, where every group receives it, and only then
// acknowledges it. It is as durable as the broker (RabbitMQ quorum delay
// tiers and queues, Kafka topics); a relay killed before the ack gets it
// again. It cannot cancel ([service.ErrCancelUnsupported]), and the
// broker's tiers may make it late (RabbitMQ rounds a delay up to a tier),
// never early.
type OnBroker struct {
	b       broker.Broker
	delayer broker.Delayer
	cfg     BrokerConfig
	err     error

	provision sync.Once
	provErr   error

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
	sub    message.Subscriber
	failed chan error // see Failed
}

var (
	_ service.Scheduler        = (*OnBroker)(nil)
	_ service.FailingCompanion = (*OnBroker)(nil)
)

// NewOnBroker returns the scheduler on b, which must implement
// [broker.Delayer]; a broker that does not is reported by Schedule and
// Start.
func NewOnBroker(b broker.Broker, cfg BrokerConfig) *OnBroker {
	if cfg.Topic == "" {
		cfg.Topic = DefaultRelayTopic
	}
	if cfg.Group == "" {
		cfg.Group = DefaultRelayGroup
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &OnBroker{b: b, cfg: cfg}
	d, ok := b.(broker.Delayer)
	if !ok {
		s.err = fmt.Errorf("schedule: broker %q cannot delay messages (no broker.Delayer); use a store-backed scheduler", brokerName(b))
	}
	s.delayer = d
	return s
}

func brokerName(b broker.Broker) string {
	if b == nil {
		return "<nil>"
	}
	return b.Name()
}

// Schedule hands a copy of msg, marked with its topic and due time, to
// the broker's delay machinery for the relay group.
func (s *OnBroker) Schedule(ctx context.Context, topic string, msg *message.Message, at time.Time) error {
	if s.err != nil {
		return s.err
	}
	if err := s.provisioned(ctx); err != nil {
		return err
	}
	m := msg.Copy()
	m.Metadata.Set(TargetHeader, topic)
	m.Metadata.Set(DueHeader, strconv.FormatInt(ceilMilli(at), 10))
	m.SetContext(ctx)
	return s.delayer.Delay(ctx, s.cfg.Topic, s.cfg.Group, m, max(time.Until(at), 0))
}

// provisioned makes sure the relay group's storage exists (the RabbitMQ
// queue that delayed messages dead-letter into) before the first Schedule,
// which may come before the relay subscribed.
func (s *OnBroker) provisioned(ctx context.Context) error {
	p, ok := s.b.(broker.Provisioner)
	if !ok {
		return nil
	}
	s.provision.Do(func() { s.provErr = p.Provision(ctx, s.cfg.Topic, s.cfg.Group) })
	if s.provErr != nil {
		return fmt.Errorf("schedule: provision relay %q for %q: %w", s.cfg.Topic, s.cfg.Group, s.provErr)
	}
	return nil
}

// Cancel is not supported: a delayed message cannot be taken back from
// the broker.
func (s *OnBroker) Cancel(context.Context, string) error {
	return fmt.Errorf("schedule: on the broker's delay machinery: %w", service.ErrCancelUnsupported)
}

// Start subscribes the relay.
func (s *OnBroker) Start(ctx context.Context, svc *service.Service) error {
	if s.err != nil {
		return s.err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done != nil {
		return errors.New("schedule: relay already started")
	}
	sub, err := s.b.Subscriber(s.cfg.Group, broker.SubscriberOptions{})
	if err != nil {
		return fmt.Errorf("schedule: relay subscriber: %w", err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	msgs, err := sub.Subscribe(ctx, s.cfg.Topic)
	if err != nil {
		cancel()
		sub.Close()
		return fmt.Errorf("schedule: relay subscribe %q: %w", s.cfg.Topic, err)
	}
	s.sub, s.cancel, s.done, s.failed = sub, cancel, make(chan struct{}), make(chan error, 1)
	go s.relay(ctx, svc, sub, msgs, s.done, s.failed)
	return nil
}

// Failed yields the error that ended the relay's subscription while the
// service ran (the broker refused it, say): nothing scheduled would be
// delivered any more, so the service shuts down with it.
func (s *OnBroker) Failed() <-chan error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

func (s *OnBroker) relay(ctx context.Context, svc *service.Service, sub message.Subscriber, msgs <-chan *message.Message, done chan<- struct{}, failed chan<- error) {
	defer close(done)
	for {
		var msg *message.Message
		select {
		case <-ctx.Done():
			return
		case m, ok := <-msgs:
			if !ok {
				if ctx.Err() == nil {
					failed <- s.ended(sub)
				}
				return
			}
			msg = m
		}
		if err := s.forward(ctx, svc, msg); err != nil {
			if ctx.Err() == nil {
				s.cfg.Logger.Warn("schedule: relay due message (redelivered by the broker)", "id", msg.UUID, "error", err)
			}
			msg.Nack()
			continue
		}
		msg.Ack()
	}
}

// ended is the error of a relay subscription that the broker closed
// while the relay ran: the broker's reason when it gives one.
func (s *OnBroker) ended(sub message.Subscriber) error {
	err := fmt.Errorf("schedule: the relay's subscription to %q (group %q) ended", s.cfg.Topic, s.cfg.Group)
	if f, ok := sub.(broker.Failer); ok && f.Failure() != nil {
		err = fmt.Errorf("%w: %w", err, f.Failure())
	}
	return err
}

// forward publishes a due message to its topic, or delays it again if the
// broker handed it out early.
func (s *OnBroker) forward(ctx context.Context, svc *service.Service, msg *message.Message) error {
	target := msg.Metadata.Get(TargetHeader)
	if target == "" {
		s.cfg.Logger.Warn("schedule: message without a target topic on the relay topic dropped", "id", msg.UUID, "topic", s.cfg.Topic)
		return nil
	}
	if ms, err := strconv.ParseInt(msg.Metadata.Get(DueHeader), 10, 64); err == nil {
		if wait := time.Until(time.UnixMilli(ms)); wait > 0 {
			return s.delayer.Delay(ctx, s.cfg.Topic, s.cfg.Group, msg.Copy(), wait)
		}
	}
	out := message.NewMessage(msg.UUID, msg.Payload)
	for k, v := range msg.Metadata {
		switch {
		case k == TargetHeader, k == DueHeader:
		case k == header.RetryTarget:
			// Set by the delay machinery for the relay group: left on,
			// every other group would drop the message as not theirs.
		case strings.HasPrefix(k, "sy_kafka_"):
			// Where the relay read it from (Kafka's adapter adds them).
		default:
			out.Metadata[k] = v
		}
	}
	return svc.PublishMessage(ctx, target, out)
}

// Stop stops the relay; what it did not acknowledge is redelivered.
func (s *OnBroker) Stop(ctx context.Context) error {
	s.mu.Lock()
	cancel, done, sub := s.cancel, s.done, s.sub
	s.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("schedule: stop relay: %w", ctx.Err())
	}
	s.mu.Lock()
	s.sub, s.cancel, s.done, s.failed = nil, nil, nil, nil // a later Run starts it again
	s.mu.Unlock()
	return sub.Close()
}

// ceilMilli is t in Unix milliseconds rounded up, so that a due time is
// never read back earlier than it was.
func ceilMilli(t time.Time) int64 {
	ms := t.UnixMilli()
	if time.UnixMilli(ms).Before(t) {
		ms++
	}
	return ms
}
