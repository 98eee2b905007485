package dlq

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/header"
)

// DefaultIdle is how long a replay or purge waits for one more dead letter
// before it ends, when [DrainOptions.Idle] is zero.
const DefaultIdle = 2 * time.Second

// FirstWait is how long a replay or purge waits for its first dead letter
// when a browse saw some, however short [DrainOptions.Idle] is: joining a
// Kafka consumer group takes seconds (group.initial.rebalance.delay.ms,
// then the rebalance), and ending before it would leave every dead letter
// unreached.
const FirstWait = 30 * time.Second

// DrainOptions shape one replay or purge.
type DrainOptions struct {
	// Filter selects the dead letters; others are handed back and stay.
	Filter Filter `json:"filter"`
	// Limit stops the run after that many dead letters; 0: no limit.
	Limit int `json:"limit,omitempty"`
	// Idle ends the run when no new dead letter came for that long
	// (before the first one, at least [FirstWait] when a browse saw some).
	// Default [DefaultIdle].
	Idle time.Duration `json:"idle,omitempty"`
	// Rate is at most that many dead letters per second; 0: no limit.
	Rate float64 `json:"rate,omitempty"`
	// DryRun only browses: the result lists what a run would deal with
	// and nothing changes.
	DryRun bool `json:"dry_run,omitempty"`
	// Progress, when set, is called after each dead letter dealt with,
	// from the goroutine running the operation.
	Progress func(Progress) `json:"-"`
}

// Progress is how far a replay or purge got.
type Progress struct {
	// Done dead letters so far; Total expected, 0 when unknown (the
	// broker cannot browse).
	Done, Total int
}

// Validate reports every invalid option at once.
func (o DrainOptions) Validate() error {
	err := o.Filter.Validate()
	if o.Limit < 0 {
		err = errors.Join(err, fmt.Errorf("dlq: limit: %d, want >= 0 (0: no limit)", o.Limit))
	}
	if o.Idle < 0 {
		err = errors.Join(err, fmt.Errorf("dlq: idle: %s, want > 0 (0: %s)", o.Idle, DefaultIdle))
	}
	if o.Rate < 0 {
		err = errors.Join(err, fmt.Errorf("dlq: rate: %g, want > 0 per second (0: no limit)", o.Rate))
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidOption, err)
	}
	return nil
}

// Result is what a replay or purge did.
type Result struct {
	Topic  string `json:"topic"`
	DryRun bool   `json:"dry_run"`
	// IDs are the dead letters replayed or purged (would be, on a dry
	// run), in the order dealt with.
	IDs []string `json:"ids"`
	// Count is len(IDs).
	Count int `json:"count"`
	// NotMatching dead letters did not pass the filter and stay.
	NotMatching int `json:"left_not_matching"`
	// NotReached dead letters were present at the start but never handed
	// out: in flight elsewhere, or behind a non-matching dead letter with
	// the same key. A second run retries them.
	NotReached int `json:"left_not_reached"`
	// NoTopic dead letters matched but name no original topic
	// (sy_dlq_topic), so a replay left them where they are.
	NoTopic int `json:"left_without_original_topic,omitempty"`
	// Letters are the matching dead letters of a dry run.
	Letters []Letter `json:"letters,omitempty"`
}

// Replay sends the dead letters of topic that pass o.Filter back to their
// original topic, addressed to the consumer group that gave up on them (see
// the package doc). It consumes the dead-letter group, acking a dead letter
// only after its replay was confirmed and handing back any other. It ends
// when every dead letter present at the start was seen, after o.Limit
// replays, when none came for o.Idle, or when ctx is done (with the work
// done so far and ctx's error). A replayed message that fails again is
// dead-lettered again; it is not replayed twice in one run.
func (c *Client) Replay(ctx context.Context, topic string, o DrainOptions) (Result, error) {
	return c.drain(ctx, topic, o, func(ctx context.Context, m *message.Message) (bool, error) {
		to, out, ok := ReplayMessage(m)
		if !ok {
			return true, nil
		}
		out.SetContext(ctx)
		if err := c.b.Publisher().Publish(to, out); err != nil {
			return false, fmt.Errorf("dlq: replay %s to %q: %w", m.UUID, to, err)
		}
		return false, nil
	})
}

// Purge deletes the dead letters of topic that pass o.Filter for good,
// acking them as the dead-letter group; it ends as [Client.Replay] does.
// A caller confirming with an operator first runs it with DryRun and shows
// the count.
func (c *Client) Purge(ctx context.Context, topic string, o DrainOptions) (Result, error) {
	return c.drain(ctx, topic, o, func(context.Context, *message.Message) (bool, error) { return false, nil })
}

// ReplayMessage builds what a replay publishes for dead letter m: the
// original message addressed to the group that failed, without the failure
// metadata, with its replay counted. ok is false when m does not name its
// original topic.
func ReplayMessage(m *message.Message) (topic string, out *message.Message, ok bool) {
	topic = m.Metadata.Get(header.DeadLetterTopic)
	if topic == "" {
		return "", nil, false
	}
	out = message.NewMessage(m.UUID, m.Payload)
	for k, v := range m.Metadata {
		if strings.HasPrefix(k, "sy_dlq_") {
			continue
		}
		out.Metadata[k] = v
	}
	delete(out.Metadata, header.Attempt)
	delete(out.Metadata, header.FirstFailure)
	delete(out.Metadata, header.RetryTarget)
	n, _ := strconv.Atoi(m.Metadata.Get(header.ReplayCount))
	out.Metadata[header.ReplayCount] = strconv.Itoa(n + 1)
	if g := m.Metadata.Get(header.DeadLetterGroup); g != "" {
		out.Metadata[header.RetryTarget] = g
	}
	return topic, out, true
}

// drain runs a replay or purge: act deals with a matching dead letter
// before it is acked; skip leaves it in the topic.
func (c *Client) drain(ctx context.Context, topic string, o DrainOptions, act func(context.Context, *message.Message) (skip bool, err error)) (Result, error) {
	res := Result{Topic: topic, DryRun: o.DryRun, IDs: []string{}}
	if err := o.Validate(); err != nil {
		return res, err
	}
	if o.Idle == 0 {
		o.Idle = DefaultIdle
	}
	// Browse first: the ids present now tell the run when it has seen
	// everything, and how many to expect.
	known := map[string]bool{}
	var matching []*message.Message
	err := c.browse(ctx, topic, func(m *message.Message) bool {
		known[m.UUID] = true
		if o.Filter.Match(m) && (o.Limit <= 0 || len(matching) < o.Limit) {
			matching = append(matching, m)
		}
		return true
	})
	switch {
	case o.DryRun:
		if err != nil {
			return res, err
		}
		for _, m := range matching {
			res.IDs = append(res.IDs, m.UUID)
			res.Letters = append(res.Letters, NewLetter(topic, m))
		}
		res.Count = len(res.IDs)
		res.NotMatching = len(known) - res.Count
		return res, nil
	case errors.Is(err, ErrNoBrowser):
		known, matching = nil, nil // consume until idle
	case err != nil:
		return res, err
	case len(matching) == 0:
		res.NotMatching = len(known)
		return res, nil
	}
	err = c.consume(ctx, topic, o, known, len(matching), act, &res)
	res.Count = len(res.IDs)
	return res, err
}

// consume takes topic's dead letters as the dead-letter group until the
// run is over (see [Client.Replay]).
func (c *Client) consume(ctx context.Context, topic string, o DrainOptions, known map[string]bool, total int,
	act func(context.Context, *message.Message) (bool, error), res *Result) error {
	sub, err := c.b.Subscriber(broker.DeadLetterGroup, broker.SubscriberOptions{})
	if err != nil {
		return fmt.Errorf("dlq: subscribe to %q: %w", topic, err)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		_ = sub.Close()
	}()
	msgs, err := sub.Subscribe(sctx, topic)
	if err != nil {
		return fmt.Errorf("dlq: subscribe to %q: %w", topic, err)
	}
	var interval time.Duration
	if o.Rate > 0 {
		interval = time.Duration(float64(time.Second) / o.Rate)
	}
	first := o.Idle
	if len(known) > 0 {
		first = max(first, FirstWait)
	}
	idle := time.NewTimer(first)
	defer idle.Stop()
	seen := map[string]bool{}
	seenKnown := 0
	var last time.Time
	defer func() {
		for id := range known {
			if !seen[id] {
				res.NotReached++
			}
		}
	}()
	for {
		if o.Limit > 0 && len(res.IDs) >= o.Limit {
			return nil
		}
		if known != nil && seenKnown == len(known) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-idle.C:
			return nil
		case m, ok := <-msgs:
			if !ok {
				return nil
			}
			if seen[m.UUID] { // handed back earlier in this run, or dead-lettered again
				m.Nack()
				continue
			}
			seen[m.UUID] = true
			if known[m.UUID] {
				seenKnown++
			}
			idle.Reset(o.Idle)
			if !o.Filter.Match(m) {
				res.NotMatching++
				if err := c.handBack(topic, m); err != nil {
					return err
				}
				continue
			}
			if interval > 0 && !last.IsZero() {
				if wait := time.Until(last.Add(interval)); wait > 0 {
					t := time.NewTimer(wait)
					select {
					case <-ctx.Done():
						t.Stop()
						m.Nack()
						return ctx.Err()
					case <-t.C:
					}
				}
			}
			last = time.Now()
			skip, err := act(ctx, m)
			if err != nil {
				m.Nack()
				return err
			}
			if skip {
				res.NoTopic++
				if err := c.handBack(topic, m); err != nil {
					return err
				}
				continue
			}
			m.Ack()
			res.IDs = append(res.IDs, m.UUID)
			if o.Progress != nil {
				o.Progress(Progress{Done: len(res.IDs), Total: total})
			}
		}
	}
}

// handBack leaves dead letter m on topic (see [WithMoveSkipped]). A copy
// the broker did not confirm leaves the original nacked: nothing is lost.
func (c *Client) handBack(topic string, m *message.Message) error {
	if !c.move {
		m.Nack()
		return nil
	}
	cp := message.NewMessage(m.UUID, m.Payload)
	maps.Copy(cp.Metadata, m.Metadata)
	if err := c.b.Publisher().Publish(topic, cp); err != nil {
		m.Nack()
		return fmt.Errorf("dlq: move %s to the end of %q: %w", m.UUID, topic, err)
	}
	m.Ack()
	return nil
}
