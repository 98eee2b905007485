package memory

import (
	"context"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/header"
)

var (
	_ broker.Provisioner = (*Broker)(nil)
	_ broker.Browser     = (*Broker)(nil)
)

// Provision registers group for topic, so that every message published to
// topic from now on is kept for group until a subscriber of group acks it.
// It consumes nothing. Like a first subscription, the first group
// provisioned for a topic receives the messages kept for the topic while no
// group was registered.
//
// A group that Provision registers never holds back publishers while no
// subscription consumes it: its queue keeps every message, without the
// BufferSize bound and without dropping any (see [Config].BufferSize for the
// memory this costs). A dead-letter topic's [broker.DeadLetterGroup], which
// nobody consumes until an operator replays or purges, therefore cannot
// freeze the consumers that dead-letter. While a subscription consumes the
// group, it gets backpressure like any group; when the last one stops,
// waiting publishers go on. A group that a subscriber registered first
// (Subscribe, SubscribeInitialize, [Broker.Delay]) stays bounded: Provision
// does not change it.
func (b *Broker) Provision(ctx context.Context, topic, group string) error {
	if group == "" {
		return fmt.Errorf("memory: provision %q: %w", topic, ErrInvalidGroup)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory: provision %q for %q: %w", topic, group, err)
	}
	if _, err := b.register(topic, group, true); err != nil {
		return fmt.Errorf("memory: provision %q for %q: %w", topic, group, err)
	}
	return nil
}

// Browse calls fn with a copy of each message group has on topic and has not
// acked, oldest first, until fn returns false; it neither consumes, delays
// nor reorders anything. It works on a snapshot taken when it starts, and
// fn runs without any lock held, so fn may publish, subscribe or ack.
//
// What it sees: messages queued for the group and messages waiting to be
// redelivered (after a Nack backoff or a [Broker.Delay]). Messages handed
// out to a subscriber and not acked or nacked yet are not seen: the memory
// broker keeps them only in the subscriber that holds them.
//
// Order: messages with the same key come in publish order. Across keys,
// messages are merged by the time they were dead-lettered
// ([header.DeadLetterLastFailure]), else by event time ([header.Time]);
// the memory broker keeps no publish sequence of its own. A message with
// neither header counts as older than any with one.
//
// A topic no group has registered for yet shows the messages kept for the
// first group to register, whatever group is asked for. An unknown topic or
// group has no messages.
func (b *Broker) Browse(ctx context.Context, topicName, group string, fn func(*message.Message) bool) error {
	if group == "" {
		return fmt.Errorf("memory: browse %q: %w", topicName, ErrInvalidGroup)
	}
	if b.closed.Load() {
		return fmt.Errorf("memory: browse %q for %q: %w", topicName, group, broker.ErrClosed)
	}
	b.mu.RLock()
	t, ok := b.topics[topicName]
	b.mu.RUnlock()
	if !ok {
		return nil
	}
	entries := snapshot(t, group)
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("memory: browse %q for %q: %w", topicName, group, err)
		}
		msg := e.message()
		if !fn(msg) {
			return nil
		}
	}
	return nil
}

// snapshot returns the entries Browse shows, oldest first.
func snapshot(t *topic, group string) []*entry {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.order) == 0 {
		out := make([]*entry, 0, t.backlog.len())
		for i := 0; i < t.backlog.n; i++ {
			out = append(out, t.backlog.buf[(t.backlog.head+i)%len(t.backlog.buf)])
		}
		return out
	}
	q, ok := t.groups[group]
	if !ok {
		return nil
	}
	// Sequences that are each in publish order: a key's chain head (ready
	// or delayed) followed by the entries waiting behind it; a key whose
	// head is in flight contributes its waiting entries alone.
	var seqs [][]*entry
	headed := map[string]bool{}
	withChain := func(e *entry) []*entry {
		s := []*entry{e}
		if e.key != "" && e.held {
			if c, ok := q.chains[e.key]; ok && !headed[e.key] {
				headed[e.key] = true
				for i := 0; i < c.waiting.n; i++ {
					s = append(s, c.waiting.buf[(c.waiting.head+i)%len(c.waiting.buf)])
				}
			}
		}
		return s
	}
	for i := 0; i < q.ready.n; i++ {
		seqs = append(seqs, withChain(q.ready.buf[(q.ready.head+i)%len(q.ready.buf)]))
	}
	var delayed []*entry
	for e := range q.pending {
		delayed = append(delayed, e)
	}
	sortByTime(delayed)
	for _, e := range delayed {
		seqs = append(seqs, withChain(e))
	}
	for k, c := range q.chains {
		if headed[k] || c.waiting.n == 0 {
			continue
		}
		s := make([]*entry, 0, c.waiting.n)
		for i := 0; i < c.waiting.n; i++ {
			s = append(s, c.waiting.buf[(c.waiting.head+i)%len(c.waiting.buf)])
		}
		seqs = append(seqs, s)
	}
	return merge(seqs)
}

// entryTime is when e was dead-lettered, else its event time, else zero.
func entryTime(e *entry) time.Time {
	for _, k := range []string{header.DeadLetterLastFailure, header.Time} {
		if v := e.get(k); v != "" {
			if ts, err := time.Parse(time.RFC3339Nano, v); err == nil {
				return ts
			}
		}
	}
	return time.Time{}
}

func sortByTime(es []*entry) {
	// Insertion sort: stable, and delayed entries are few.
	for i := 1; i < len(es); i++ {
		for j := i; j > 0 && entryTime(es[j]).Before(entryTime(es[j-1])); j-- {
			es[j], es[j-1] = es[j-1], es[j]
		}
	}
}

// merge interleaves sequences oldest first, keeping each sequence's order;
// ties go to the earlier sequence, and entries without a time count as
// older than any other.
func merge(seqs [][]*entry) []*entry {
	n := 0
	for _, s := range seqs {
		n += len(s)
	}
	out := make([]*entry, 0, n)
	pos := make([]int, len(seqs))
	times := make(map[*entry]time.Time, n)
	for _, s := range seqs {
		for _, e := range s {
			times[e] = entryTime(e)
		}
	}
	for len(out) < n {
		best := -1
		var bestT time.Time
		for i, s := range seqs {
			if pos[i] == len(s) {
				continue
			}
			ts := times[s[pos[i]]]
			if best < 0 || ts.Before(bestT) {
				best, bestT = i, ts
			}
		}
		out = append(out, seqs[best][pos[best]])
		pos[best]++
	}
	return out
}
