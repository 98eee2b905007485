package schedule

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pkg/service"
)

// Entry is one scheduled message.
type Entry struct {
	// ID is the message's id (its UUID), the id Cancel takes.
	ID string
	// Topic is where the message is published when due.
	Topic string
	// Message is the broker message as the service built it.
	Message *message.Message
	// Due is the earliest time it may be published.
	Due time.Time
}

// Store keeps scheduled entries until they are published or cancelled.
// Implementations: [Memory] and the PostgreSQL store in adapters/postgres.
type Store interface {
	// Add stores e. Adding an id that is already stored is a no-op.
	Add(ctx context.Context, e Entry) error
	// Cancel deletes the entry with id unless a relay has claimed it;
	// an error wrapping [service.ErrScheduleNotFound] otherwise.
	Cancel(ctx context.Context, id string) error
	// Claim returns up to limit entries due at now, earliest first, that
	// no other claim holds, and holds them for lease: until then no other
	// Claim returns them and Cancel refuses them.
	Claim(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]Entry, error)
	// Done deletes a claimed entry once it is published.
	Done(ctx context.Context, id string) error
	// Release ends the claim of entries that were not published (the
	// broker refused them, the relay is stopping): the next Claim may
	// return them again.
	Release(ctx context.Context, ids ...string) error
}

// Defaults of [Config].
const (
	DefaultPollInterval = 200 * time.Millisecond
	DefaultBatchSize    = 100
	DefaultLease        = 30 * time.Second
)

// Config tunes a [Scheduler]; the zero value of each field is its default.
type Config struct {
	// PollInterval is how often the relay looks for due entries: how late
	// a message may be at most, beyond its publish. Default 200ms.
	PollInterval time.Duration `yaml:"poll_interval"`
	// BatchSize is the most entries claimed at once. Default 100.
	BatchSize int `yaml:"batch_size"`
	// Lease is how long a claim holds an entry: a relay that died holding
	// it lets another publish it after this long. It must be longer than a
	// publish takes. Default 30s.
	Lease time.Duration `yaml:"lease"`
	// Logger receives the relay's warnings (a failed publish). Nil: discard.
	Logger *slog.Logger `yaml:"-"`
}

func (c *Config) setDefaults() {
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.Lease == 0 {
		c.Lease = DefaultLease
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every invalid field at once.
func (c Config) Validate() error {
	var err error
	if c.PollInterval < 0 {
		err = errors.Join(err, fmt.Errorf("schedule.poll_interval: %s, want >= 0", c.PollInterval))
	}
	if c.BatchSize < 0 {
		err = errors.Join(err, fmt.Errorf("schedule.batch_size: %d, want >= 0", c.BatchSize))
	}
	if c.Lease < 0 {
		err = errors.Join(err, fmt.Errorf("schedule.lease: %s, want >= 0", c.Lease))
	}
	return err
}

// Scheduler is a [service.Scheduler] on a [Store] and a
// [service.Companion] whose relay publishes due entries while the service
// runs. Give it to the service with both options:
//
//	service.New(b, service.WithScheduler(sch), service.WithCompanion(sch))
type Scheduler struct {
	store Store
	cfg   Config
	err   error

	mu      sync.Mutex
	wake    chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
	now     func() time.Time
	publish func(topic string, msg *message.Message) error
}

var (
	_ service.Scheduler = (*Scheduler)(nil)
	_ service.Companion = (*Scheduler)(nil)
)

// New returns a scheduler on store. An invalid cfg is reported by Schedule
// and by Start (so the service does not run).
func New(store Store, cfg Config) *Scheduler {
	err := cfg.Validate()
	if store == nil {
		err = errors.Join(err, errors.New("schedule: store is nil"))
	}
	cfg.setDefaults()
	return &Scheduler{store: store, cfg: cfg, err: err, wake: make(chan struct{}, 1), now: time.Now}
}

// Schedule stores msg for topic at at; see [service.Scheduler].
func (s *Scheduler) Schedule(ctx context.Context, topic string, msg *message.Message, at time.Time) error {
	if s.err != nil {
		return s.err
	}
	if topic == "" || msg == nil || msg.UUID == "" {
		return errors.New("schedule: a message needs a topic and an id")
	}
	if err := s.store.Add(ctx, Entry{ID: msg.UUID, Topic: topic, Message: msg, Due: at}); err != nil {
		return err
	}
	if !at.After(s.now().Add(s.cfg.PollInterval)) {
		select { // due before the next poll: look now
		case s.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// Cancel removes the entry id if no relay claimed it yet.
func (s *Scheduler) Cancel(ctx context.Context, id string) error {
	if s.err != nil {
		return s.err
	}
	return s.store.Cancel(ctx, id)
}

// Start starts the relay on svc's broker publisher.
func (s *Scheduler) Start(ctx context.Context, svc *service.Service) error {
	if s.err != nil {
		return s.err
	}
	return s.start(ctx, func(topic string, msg *message.Message) error {
		return svc.PublishMessage(msg.Context(), topic, msg)
	})
}

func (s *Scheduler) start(ctx context.Context, publish func(string, *message.Message) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done != nil {
		return errors.New("schedule: relay already started")
	}
	ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.done = make(chan struct{})
	s.publish = publish
	go s.loop(ctx)
	return nil
}

// Stop stops the relay and waits for a publish in progress (bounded by ctx).
// What it claimed but did not publish is published after the lease.
func (s *Scheduler) Stop(ctx context.Context) error {
	s.mu.Lock()
	cancel, done := s.cancel, s.done
	s.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("schedule: stop: %w", ctx.Err())
	}
	s.mu.Lock()
	s.cancel, s.done = nil, nil // a later Run starts it again
	s.mu.Unlock()
	return nil
}

func (s *Scheduler) loop(ctx context.Context) {
	defer close(s.done)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-t.C:
		}
		full := s.relayOnce(ctx)
		wait := s.cfg.PollInterval
		if full {
			wait = 0
		}
		t.Reset(wait)
	}
}

// relayOnce claims and publishes one batch; it reports whether the batch
// was full (more may be due).
func (s *Scheduler) relayOnce(ctx context.Context) bool {
	entries, err := s.store.Claim(ctx, s.now(), s.cfg.BatchSize, s.cfg.Lease)
	if err != nil {
		if ctx.Err() == nil {
			s.cfg.Logger.Warn("schedule: claim due messages", "error", err)
		}
		return false
	}
	for i, e := range entries {
		if ctx.Err() == nil {
			e.Message.SetContext(ctx)
			err = s.publish(e.Topic, e.Message)
		}
		if ctx.Err() != nil || err != nil {
			if err != nil && ctx.Err() == nil {
				s.cfg.Logger.Warn("schedule: publish due message (retried at the next poll)", "id", e.ID, "topic", e.Topic, "error", err)
			}
			// Released, not left to the lease, so that a broker back up
			// gets them at the next poll.
			ids := make([]string, 0, len(entries)-i)
			for _, r := range entries[i:] {
				ids = append(ids, r.ID)
			}
			if rerr := s.store.Release(context.WithoutCancel(ctx), ids...); rerr != nil {
				s.cfg.Logger.Warn("schedule: release claims (published after the lease)", "error", rerr)
			}
			return false
		}
		if err := s.store.Done(context.WithoutCancel(ctx), e.ID); err != nil {
			s.cfg.Logger.Warn("schedule: mark published (it will be published again)", "id", e.ID, "error", err)
		}
	}
	return len(entries) == s.cfg.BatchSize
}
