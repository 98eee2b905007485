package eventstore

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// SubscriptionConfig configures a [Subscription]. The zero value reads
// every type, 100 records at a time, polling every 200ms once caught up.
type SubscriptionConfig struct {
	// Types, if set, are the only event types read.
	Types []string
	// BatchSize is the most records one [Subscription.Next] returns.
	// Default 100.
	BatchSize int
	// PollInterval is how long a caught-up Next waits before reading
	// again. Default 200ms.
	PollInterval time.Duration
	// Wake, if set, makes a caught-up Next read again at once when it
	// receives, without waiting for the poll interval: feed it from a
	// notification (PostgreSQL LISTEN/NOTIFY) to cut the latency of
	// following the store live. A missed wake only costs one interval; a
	// closed channel leaves polling.
	Wake <-chan struct{}
}

func (c *SubscriptionConfig) setDefaults() {
	if c.BatchSize == 0 {
		c.BatchSize = 100
	}
	if c.PollInterval == 0 {
		c.PollInterval = 200 * time.Millisecond
	}
}

// Validate reports every problem at once.
func (c SubscriptionConfig) Validate() error {
	var err error
	if c.BatchSize < 0 {
		err = errors.Join(err, fmt.Errorf("eventstore: subscription.batch_size: %d, want >= 1 (0: 100)", c.BatchSize))
	}
	if c.PollInterval < 0 {
		err = errors.Join(err, fmt.Errorf("eventstore: subscription.poll_interval: %v, want > 0 (0: 200ms)", c.PollInterval))
	}
	return err
}

// Subscription is a catch-up subscription to a store's global stream: from
// a position it reads history in batches, then follows new events as they
// commit. It relies on the store's positions following commit order (see
// [AllReader]), so continuing from the last position read never skips an
// event that committed late with a lower position. A Subscription is used
// by one goroutine.
//
//	sub, err := eventstore.NewSubscription(store, checkpoint, eventstore.SubscriptionConfig{})
//	for {
//		recs, err := sub.Next(ctx) // blocks until there is at least one
//		if err != nil {
//			return err // ctx ended, or the store failed
//		}
//		// apply recs, then store recs[len(recs)-1].Position as the checkpoint
//	}
type Subscription struct {
	src     AllReader
	cfg     SubscriptionConfig
	pos     int64 // last position returned, or the start
	scanned int64 // every position <= scanned of the wanted types was returned
	head    int64
}

// NewSubscription returns a subscription to src that reads the records
// after position after (0: from the start).
func NewSubscription(src AllReader, after int64, cfg SubscriptionConfig) (*Subscription, error) {
	if src == nil {
		return nil, errors.New("eventstore: subscription: source is nil")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	return &Subscription{src: src, cfg: cfg, pos: after, scanned: after}, nil
}

// Position returns the position of the last record Next returned (or the
// start position, or the last SetPosition).
func (s *Subscription) Position() int64 { return s.pos }

// SetPosition makes the next read continue after position after, for a reader
// whose checkpoint was moved by someone else (a rebuild, another instance).
func (s *Subscription) SetPosition(after int64) { s.pos, s.scanned = after, after }

// Lag returns how many positions the subscription is behind the head it
// saw last: 0 once it has returned everything of its types committed up to
// that head. Positions may have gaps, so it is an upper bound on the
// number of events.
func (s *Subscription) Lag() int64 { return max(0, s.head-max(s.pos, s.scanned)) }

// Head returns the store's head position seen by the last read.
func (s *Subscription) Head() int64 { return s.head }

// Read reads the next batch without waiting: none when caught up.
func (s *Subscription) Read(ctx context.Context) ([]Record, error) {
	// The head is read before the records: whatever committed at or
	// below it is visible to the read that follows (commit order), so a
	// short read means everything up to it was seen.
	head, err := s.src.Head(ctx)
	if err != nil {
		return nil, fmt.Errorf("eventstore: subscription: head: %w", err)
	}
	// Read on from what was scanned, not from the last record returned:
	// with a type filter the records of other types after it were read
	// past already, and reading them again on every poll of a caught-up
	// subscription to a rare type would scan the whole tail each time.
	from := max(s.pos, s.scanned)
	recs, err := s.src.ReadAll(ctx, from, s.cfg.BatchSize, s.cfg.Types...)
	if err != nil {
		return nil, fmt.Errorf("eventstore: subscription: read after %d: %w", from, err)
	}
	s.head = max(s.head, head)
	if len(recs) > 0 {
		last := recs[len(recs)-1].Position
		if last <= from {
			return nil, fmt.Errorf("eventstore: subscription: read after %d returned position %d: the store's positions do not increase", from, last)
		}
		s.pos = last
		s.head = max(s.head, last)
	}
	if len(recs) < s.cfg.BatchSize {
		s.scanned = max(s.scanned, head)
	}
	return recs, nil
}

// Next returns the next batch of records, waiting for new ones when caught
// up: polling every PollInterval, or at once on a Wake. It returns ctx's
// error when ctx ends first.
func (s *Subscription) Next(ctx context.Context) ([]Record, error) {
	var t *time.Timer
	for {
		recs, err := s.Read(ctx)
		if err != nil || len(recs) > 0 {
			return recs, err
		}
		if t == nil {
			t = time.NewTimer(s.cfg.PollInterval)
			defer t.Stop()
		} else {
			t.Reset(s.cfg.PollInterval)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		case _, ok := <-s.cfg.Wake:
			if !ok {
				s.cfg.Wake = nil // closed (its listener stopped): poll only
			}
		}
	}
}
