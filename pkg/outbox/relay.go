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
	// DefaultMaxAttempts is how many failed publishes park a record when
	// MaxAttempts is zero: with the default backoff about 6.5 minutes of
	// failures.
	DefaultMaxAttempts = 20
	// outageFailures is how many failed publishes, with none succeeding,
	// end a batch early: the broker looks unreachable, and trying every
	// record of the batch would only count attempts against all of them.
	outageFailures = 3
	// commitTimeout bounds the commit of a batch whose context was
	// cancelled after its publishes were confirmed.
	commitTimeout = 5 * time.Second
)

// Relay publishes the records of a [Store] through a broker publisher, oldest
// first, and marks them published once the broker has confirmed them.
// Several relays (one per service instance) may run on one store: each
// record is published by one of them at a time, and per-key order holds.
//
// A record whose publish fails is retried on its own schedule (Backoff)
// and holds back only the later records of its key; other keys and topics
// keep flowing. After MaxAttempts failed publishes it is parked: kept in
// the store with its attempts and last error, visible and unparkable
// through the store's [Parker], and its key's later records wait behind it
// so that unparking it restores the key's order.
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
	// Backoff spaces the retries of a record whose publish failed, and of
	// the relay when its database fails: exponential from
	// Backoff.InitialInterval (100ms) to Backoff.MaxInterval (here 30s),
	// with jitter. Its MaxAttempts and MaxElapsed are ignored; see
	// MaxAttempts below.
	Backoff retry.Policy `yaml:"backoff"`
	// MaxAttempts is how many failed publishes of a record park it.
	// Default 20.
	MaxAttempts int `yaml:"max_attempts"`
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
	if r.MaxAttempts == 0 {
		r.MaxAttempts = DefaultMaxAttempts
	}
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
	if r.MaxAttempts < 0 {
		err = errors.Join(err, fmt.Errorf("outbox.relay.max_attempts: %d, want >= 1 (0 means the default %d)", r.MaxAttempts, DefaultMaxAttempts))
	}
	return errors.Join(err, r.Backoff.Validate("outbox.relay.backoff"))
}

// Run relays records until ctx is cancelled, then returns nil; it returns
// an error only for invalid settings. A failing publish is logged (warn)
// and its record retried on its own backoff, or parked (error) after
// MaxAttempts; a failing database call, or a batch whose first publishes
// all failed (the broker looks down), is logged and the relay backs off.
// A batch whose publishes were confirmed when ctx was cancelled is still
// committed (bounded by 5s).
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
		res := r.batch(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var wait time.Duration
		listen := wake
		switch {
		case res.err != nil || res.outage:
			failures++
			wait = r.Backoff.Backoff(failures, nil)
			listen = nil // a wake-up must not cut the backoff short
			err := res.err
			if err == nil {
				err = res.pubErr
			}
			r.Logger.LogAttrs(ctx, slog.LevelWarn, "outbox: relay batch failed, retrying",
				slog.Int("published", res.published), slog.Int("failures", failures), slog.Duration("backoff", wait), slog.Any("error", err))
		case res.full:
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
// returns how many it published. A failing publish does not stop it: the
// record is scheduled for a retry (or parked) as in Run, the records of
// other keys are still published, and the publish errors are returned
// together at the end. A database error, or a batch whose first publishes
// all failed, stops it.
func (r *Relay) Flush(ctx context.Context) (int, error) {
	if err := r.Validate(); err != nil {
		return 0, err
	}
	c := *r
	c.setDefaults()
	total := 0
	var pubErrs error
	for {
		res := c.batch(ctx)
		total += res.published
		pubErrs = errors.Join(pubErrs, res.pubErr)
		if res.err != nil {
			return total, errors.Join(pubErrs, res.err)
		}
		if res.outage || !res.full {
			return total, pubErrs
		}
	}
}

// batchResult is what one batch did.
type batchResult struct {
	published int
	// full: the batch had BatchSize records and was not cut short, so
	// more may be waiting.
	full bool
	// outage: the batch stopped after outageFailures failed publishes
	// and no success; the relay backs off as a whole.
	outage bool
	// pubErr joins the failed publishes (their records were scheduled for
	// a retry or parked); err is a failure of the store.
	pubErr, err error
}

// batch fetches, publishes and commits one batch. A failing record is
// marked for a retry or parked, and the later records of its key in the
// batch are left for a later batch, which the store holds back until the
// failed one is due again.
func (r *Relay) batch(ctx context.Context) (res batchResult) {
	b, err := r.Store.Fetch(ctx, r.BatchSize)
	if err != nil {
		res.err = fmt.Errorf("outbox: fetch: %w", err)
		return res
	}
	defer func() { _ = b.Rollback(context.WithoutCancel(ctx)) }()
	recs := b.Records()
	if len(recs) == 0 {
		return res
	}
	blocked := map[string]bool{} // keys with a failed record in this batch
	failures := 0
	// fail marks one failed record; it reports false on a store error.
	fail := func(rec Record, cause error) bool {
		failures++
		attempts := rec.Attempts + 1
		perr := fmt.Errorf("outbox: publish record %d (%s) to %q, attempt %d of %d: %w", rec.ID, rec.Message.UUID, rec.Topic, attempts, r.MaxAttempts, cause)
		res.pubErr = errors.Join(res.pubErr, perr)
		if k := rec.Key(); k != "" {
			blocked[k] = true
		}
		var merr error
		if attempts >= r.MaxAttempts {
			merr = b.Park(ctx, rec.ID, cause)
			if merr == nil {
				r.Logger.LogAttrs(ctx, slog.LevelError, "outbox: record parked after its last attempt; unpark it with 'switchyard outbox retry'",
					slog.Int64("record", rec.ID), slog.String("topic", rec.Topic), slog.String("key", rec.Key()),
					slog.Int("attempts", attempts), slog.Any("error", cause))
			}
		} else {
			wait := r.Backoff.Backoff(attempts, nil)
			merr = b.MarkFailed(ctx, rec.ID, cause, wait)
			if merr == nil {
				r.Logger.LogAttrs(ctx, slog.LevelWarn, "outbox: publish failed; the record and its key wait for a retry",
					slog.Int64("record", rec.ID), slog.String("topic", rec.Topic), slog.String("key", rec.Key()),
					slog.Int("attempts", attempts), slog.Duration("retry_in", wait), slog.Any("error", cause))
			}
		}
		if merr != nil {
			res.err = fmt.Errorf("outbox: record the failure of record %d: %w", rec.ID, merr)
			return false
		}
		return true
	}
	publish := func(group []Record) error {
		msgs := make([]*message.Message, len(group))
		for k, rec := range group {
			rec.Message.SetContext(ctx)
			msgs[k] = rec.Message
		}
		return r.Publisher.Publish(group[0].Topic, msgs...)
	}
	markPublished := func(group []Record) bool {
		ids := make([]int64, len(group))
		for k, rec := range group {
			ids[k] = rec.ID
		}
		if err := b.MarkPublished(ctx, ids...); err != nil {
			// Published but not marked: they will be published again.
			res.err = fmt.Errorf("outbox: mark %d records published: %w", len(ids), err)
			return false
		}
		res.published += len(ids)
		return true
	}
	cut := false
	for i := 0; i < len(recs) && !cut; {
		// Consecutive records to one topic go in one Publish call, which
		// the adapters confirm as a batch and keep in order. Records of a
		// key that failed in this batch are skipped: per-key order.
		var group []Record
		j := i
		for ; j < len(recs) && recs[j].Topic == recs[i].Topic; j++ {
			if k := recs[j].Key(); k == "" || !blocked[k] {
				group = append(group, recs[j])
			}
		}
		i = j
		if len(group) == 0 {
			continue
		}
		err := publish(group)
		switch {
		case err == nil:
			if !markPublished(group) {
				return res
			}
		case len(group) == 1:
			if !fail(group[0], err) {
				return res
			}
		default:
			// Find the records that fail: one by one, in order, each
			// skipped once an earlier record of its key failed.
			for _, rec := range group {
				if k := rec.Key(); k != "" && blocked[k] {
					continue
				}
				if res.published == 0 && failures >= outageFailures {
					break
				}
				if err := publish([]Record{rec}); err != nil {
					if !fail(rec, err) {
						return res
					}
				} else if !markPublished([]Record{rec}) {
					return res
				}
			}
		}
		if res.published == 0 && failures >= outageFailures {
			res.outage, cut = true, true
		}
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	if err := b.Commit(cctx); err != nil {
		res.err = fmt.Errorf("outbox: commit batch (%d published records will be published again): %w", res.published, err)
		res.published = 0
		return res
	}
	r.Logger.LogAttrs(ctx, slog.LevelDebug, "outbox: batch relayed", slog.Int("published", res.published), slog.Int("fetched", len(recs)), slog.Int("failed", failures))
	res.full = !cut && len(recs) == r.BatchSize
	return res
}
