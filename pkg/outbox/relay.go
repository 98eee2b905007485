package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pkg/retry"
)

// Relay defaults.
const (
	DefaultBatchSize    = 100
	DefaultPollInterval = time.Second
	// DefaultMaxBackoff caps the wait between retries of a failing publish
	// when Backoff.MaxInterval is zero.
	DefaultMaxBackoff = 30 * time.Second
	// commitTimeout bounds the commit of a batch whose context was
	// cancelled after its publishes were confirmed.
	commitTimeout = 5 * time.Second
)

// Relay publishes the records of a [Store] through a broker publisher, oldest
// first, and marks them published once the broker has confirmed them.
// Several relays (one per service instance) may run on one store: each
// record is published by one of them at a time, and per-key order holds.
//
// The scalar fields are what a configuration file may set; the zero value of
// each means its default.
type Relay struct {
	// Store holds the records. Required. If it implements [Waker] the relay
	// wakes as soon as records are committed instead of at the next poll.
	Store Store `yaml:"-"`
	// Publisher is the broker publisher; its Publish must return only once
	// the broker has confirmed the messages (every Switchyard adapter's
	// does). Required.
	Publisher message.Publisher `yaml:"-"`
	// BatchSize is the most records fetched, published and marked in one
	// database transaction. Default 100.
	BatchSize int `yaml:"batch_size"`
	// PollInterval is how long the relay sleeps when it found nothing to
	// publish. Default 1s.
	PollInterval time.Duration `yaml:"poll_interval"`
	// Backoff spaces the retries of a failing publish: exponential from
	// Backoff.InitialInterval (100ms) to Backoff.MaxInterval (here 30s),
	// with jitter. MaxAttempts and MaxElapsed are ignored: a record is
	// retried until it is published.
	Backoff retry.Policy `yaml:"backoff"`
	// Logger receives failures (warn) and batches (debug). Nil discards.
	Logger *slog.Logger `yaml:"-"`
}

func (r *Relay) setDefaults() {
	if r.BatchSize == 0 {
		r.BatchSize = DefaultBatchSize
	}
	if r.PollInterval == 0 {
		r.PollInterval = DefaultPollInterval
	}
	if r.Backoff.MaxInterval == 0 {
		r.Backoff.MaxInterval = DefaultMaxBackoff
	}
	r.Backoff = r.Backoff.WithDefaults()
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every problem of the relay's settings at once.
func (r *Relay) Validate() error {
	var err error
	if r.Store == nil {
		err = errors.Join(err, errors.New("outbox.relay.store: required"))
	}
	if r.Publisher == nil {
		err = errors.Join(err, errors.New("outbox.relay.publisher: required"))
	}
	if r.BatchSize < 0 {
		err = errors.Join(err, fmt.Errorf("outbox.relay.batch_size: %d, want >= 1 (0 means the default %d)", r.BatchSize, DefaultBatchSize))
	}
	if r.PollInterval < 0 {
		err = errors.Join(err, fmt.Errorf("outbox.relay.poll_interval: %s, want > 0 (0 means the default %s)", r.PollInterval, DefaultPollInterval))
	}
	return errors.Join(err, r.Backoff.Validate("outbox.relay.backoff"))
}

// Run relays records until ctx is cancelled, then returns nil; it returns
// an error only for invalid settings. A failing publish or database call
// is logged and retried with backoff. A batch whose publishes were
// confirmed when ctx was cancelled is still committed (bounded by 5s).
func (r *Relay) Run(ctx context.Context) error {
	if err := r.Validate(); err != nil {
		return err
	}
	c := *r // Run and Flush may run at once: leave r as given
	c.setDefaults()
	return c.run(ctx)
}

func (r *Relay) run(ctx context.Context) error {
	var wake <-chan struct{}
	if w, ok := r.Store.(Waker); ok {
		ch, err := w.Listen(ctx)
		if err != nil {
			r.Logger.LogAttrs(ctx, slog.LevelWarn, "outbox: listen for new records failed, polling only", slog.Any("error", err))
		} else {
			wake = ch
		}
	}
	failures := 0
	for {
		n, full, err := r.batch(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var wait time.Duration
		listen := wake
		switch {
		case err != nil:
			failures++
			wait = r.Backoff.Backoff(failures, nil)
			listen = nil // a wake-up must not cut the backoff short
			r.Logger.LogAttrs(ctx, slog.LevelWarn, "outbox: relay batch failed, retrying",
				slog.Int("published", n), slog.Int("failures", failures), slog.Duration("backoff", wait), slog.Any("error", err))
		case full:
			failures = 0
			continue
		default:
			failures = 0
			wait = r.PollInterval
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		case _, ok := <-listen:
			t.Stop()
			if !ok {
				wake = nil
			}
		}
	}
}

// Flush publishes every record that is ready now, batch after batch, and
// returns how many it published. It stops at the first error (a failed
// publish or database call) and returns it; the failed record and those
// behind it stay unpublished.
func (r *Relay) Flush(ctx context.Context) (int, error) {
	if err := r.Validate(); err != nil {
		return 0, err
	}
	c := *r
	c.setDefaults()
	total := 0
	for {
		n, full, err := c.batch(ctx)
		total += n
		if err != nil || !full {
			return total, err
		}
	}
}

// batch fetches, publishes and commits one batch. full reports a batch of
// BatchSize records all published: more may be waiting.
func (r *Relay) batch(ctx context.Context) (published int, full bool, err error) {
	b, err := r.Store.Fetch(ctx, r.BatchSize)
	if err != nil {
		return 0, false, fmt.Errorf("outbox: fetch: %w", err)
	}
	defer func() { _ = b.Rollback(context.WithoutCancel(ctx)) }()
	recs := b.Records()
	if len(recs) == 0 {
		return 0, false, nil
	}
	var pubErr error
	for i := 0; i < len(recs); {
		// Consecutive records to one topic go in one Publish call, which
		// the adapters confirm as a batch and keep in order.
		j := i + 1
		for j < len(recs) && recs[j].Topic == recs[i].Topic {
			j++
		}
		group := recs[i:j]
		msgs := make([]*message.Message, len(group))
		ids := make([]int64, len(group))
		for k, rec := range group {
			rec.Message.SetContext(ctx)
			msgs[k], ids[k] = rec.Message, rec.ID
		}
		if err := r.Publisher.Publish(group[0].Topic, msgs...); err != nil {
			pubErr = fmt.Errorf("outbox: publish record %d (%s) to %q: %w", group[0].ID, group[0].Message.UUID, group[0].Topic, err)
			for _, id := range ids {
				if err := b.MarkFailed(ctx, id, err); err != nil {
					pubErr = errors.Join(pubErr, fmt.Errorf("outbox: record failure of %d: %w", id, err))
					break
				}
			}
			break // records behind a failure wait: per-key order
		}
		if err := b.MarkPublished(ctx, ids...); err != nil {
			// Published but not marked: they will be published again.
			return published, false, fmt.Errorf("outbox: mark %d records published: %w", len(ids), err)
		}
		published += len(ids)
		i = j
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	if err := b.Commit(cctx); err != nil {
		return 0, false, errors.Join(pubErr, fmt.Errorf("outbox: commit batch (%d published records will be published again): %w", published, err))
	}
	r.Logger.LogAttrs(ctx, slog.LevelDebug, "outbox: batch relayed", slog.Int("published", published), slog.Int("fetched", len(recs)))
	return published, pubErr == nil && len(recs) == r.BatchSize, pubErr
}
