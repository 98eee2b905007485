package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-go/switchyard/pkg/broker"
)

var (
	_ broker.Provisioner = (*Broker)(nil)
	_ broker.Browser     = (*Broker)(nil)
)

// browseIdle bounds how long Browse waits for the next record of a
// partition whose captured high watermark it has not reached. It only
// matters when the last offsets below the watermark hold no data records
// (transaction markers, compacted away): the partition then ends early.
const browseIdle = 5 * time.Second

// Provision implements [broker.Provisioner]: it creates topic if it is
// missing (Config.Partitions, Config.ReplicationFactor). Kafka keeps every
// record for its retention time whoever consumes it, so nothing else is
// needed for the group to see what is published from now on, with one
// exception:
//
//   - InitialOffset "earliest" (the default): nothing is committed. A group
//     without committed offsets starts at the beginning of the topic, so it
//     sees everything published from now on, and also what was published
//     before (for a dead-letter topic, every dead letter is what operators
//     want).
//   - InitialOffset "latest": a group without committed offsets would start
//     at the end when it first subscribes, losing what was published in
//     between. So the current end offsets are committed for group on every
//     partition where it has no committed offset yet. Partitions where it
//     has one are never moved; if the group has active members, nothing is
//     committed (they hold a position already).
//
// Provision is idempotent and cheap: one CreateTopics request the first
// time a Broker sees topic, plus, with "latest" only, an offset fetch (and
// a list and a commit while offsets are missing).
func (b *Broker) Provision(ctx context.Context, topic, group string) error {
	fail := func(err error) error {
		return fmt.Errorf("kafka: provision %q for %q: %w", topic, group, err)
	}
	if topic == "" || group == "" {
		return fail(errors.New("topic and group required"))
	}
	if b.isClosed() {
		return fail(broker.ErrClosed)
	}
	if err := b.ensureTopics(ctx, topic); err != nil {
		return fail(err)
	}
	if err := b.ensureRetryTopics(ctx, b.retryTopics(topic, group)...); err != nil {
		return fail(err)
	}
	if b.cfg.InitialOffset != OffsetLatest {
		return nil
	}
	committed, err := b.adm.FetchOffsetsForTopics(ctx, group, topic)
	if err != nil {
		return fail(fmt.Errorf("fetch committed offsets: %w", err))
	}
	var ends kadm.ListedOffsets
	pin := kadm.Offsets{}
	for attempt := 0; ; attempt++ {
		ends, err = b.adm.ListEndOffsets(ctx, topic)
		if err == nil {
			err = ends.Error()
		}
		// A topic created a moment ago may not have leaders yet.
		if err == nil || attempt == 10 || !kerr.IsRetriable(err) {
			break
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return fail(ctx.Err())
		}
	}
	if err != nil {
		return fail(fmt.Errorf("list end offsets: %w", err))
	}
	ends.Each(func(e kadm.ListedOffset) {
		if c, ok := committed.Lookup(topic, e.Partition); ok && c.Err == nil && c.At >= 0 {
			return
		}
		pin.Add(kadm.Offset{Topic: topic, Partition: e.Partition, At: e.Offset, LeaderEpoch: -1})
	})
	if len(pin) == 0 {
		return nil
	}
	resp, err := b.adm.CommitOffsets(ctx, group, pin)
	if err == nil {
		err = resp.Error()
	}
	if errors.Is(err, kerr.UnknownMemberID) || errors.Is(err, kerr.IllegalGeneration) || errors.Is(err, kerr.RebalanceInProgress) {
		return nil // the group has members: they hold its position
	}
	if err != nil {
		return fail(fmt.Errorf("commit end offsets: %w", err))
	}
	return nil
}

// Browse implements [broker.Browser]: it calls fn with each record of topic
// that group has not consumed yet, until fn returns false or none is left.
// It neither joins the group nor commits: it reads the partitions directly
// with a client of its own, so the group's consumers are not disturbed.
//
// What it sees, per partition: the records from the group's committed offset
// (or, without one or when it is out of range, from the start with
// InitialOffset "earliest", from the end with "latest") up to the high
// watermark captured when Browse starts. Records a consumer of the group has
// acked but whose offsets are not committed yet (Config.CommitInterval) are
// still shown; records published after Browse started are not.
//
// Order: oldest first within each partition (offset order, so messages with
// one key keep their publish order); across partitions the records are
// merged by record timestamp, ties by partition number. Messages are built
// as the subscriber builds them, with [MetadataTopic], [MetadataPartition]
// and [MetadataOffset]. A missing topic has no messages.
func (b *Broker) Browse(ctx context.Context, topic, group string, fn func(*message.Message) bool) error {
	fail := func(err error) error {
		return fmt.Errorf("kafka: browse %q for %q: %w", topic, group, err)
	}
	if topic == "" || group == "" {
		return fail(errors.New("topic and group required"))
	}
	if b.isClosed() {
		return fail(broker.ErrClosed)
	}
	from, end, err := b.browseRange(ctx, topic, group)
	if err != nil {
		return fail(err)
	}
	if len(from) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt(nil), b.opts...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: from}),
		kgo.FetchMaxWait(500*time.Millisecond),
	)...)
	if err != nil {
		return fail(err)
	}
	defer cl.Close()

	// queue holds fetched records per partition not shown yet; a partition
	// with records queued is paused, so at most one fetch per partition is
	// buffered while others catch up.
	queue := make(map[int32][]*kgo.Record, len(from))
	next := make(map[int32]int64, len(from)) // next offset expected
	for p, o := range from {
		next[p] = o.EpochOffset().Offset
	}
	for len(end) > 0 {
		var need []int32
		for p := range end {
			if len(queue[p]) == 0 {
				need = append(need, p)
			}
		}
		if len(need) > 0 {
			var full []int32 // partitions queued or done: no fetching
			for p := range from {
				if _, ok := end[p]; !ok || len(queue[p]) > 0 {
					full = append(full, p)
				}
			}
			cl.ResumeFetchPartitions(map[string][]int32{topic: need})
			if len(full) > 0 {
				cl.PauseFetchPartitions(map[string][]int32{topic: full})
			}
			pctx, cancel := context.WithTimeout(ctx, browseIdle)
			fs := cl.PollFetches(pctx)
			cancel()
			if err := ctx.Err(); err != nil {
				return fail(err)
			}
			var fetchErr error
			fs.EachError(func(_ string, p int32, err error) {
				if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
					fetchErr = fmt.Errorf("partition %d: %w", p, err)
				}
			})
			if fetchErr != nil {
				return fail(fetchErr)
			}
			got := false
			fs.EachRecord(func(r *kgo.Record) {
				if r.Topic != topic || r.Offset < next[r.Partition] {
					return
				}
				next[r.Partition] = r.Offset + 1
				if e, ok := end[r.Partition]; ok && r.Offset < e {
					queue[r.Partition] = append(queue[r.Partition], r)
					got = true
				}
			})
			for _, p := range need {
				if next[p] >= end[p] && len(queue[p]) == 0 {
					delete(end, p)
				}
			}
			if !got && fs.NumRecords() == 0 {
				// Nothing arrived for browseIdle: the rest of these
				// partitions holds no data records.
				for _, p := range need {
					if len(queue[p]) == 0 {
						delete(end, p)
					}
				}
			}
			continue
		}
		// Every partition left has a head: show the oldest.
		first := int32(-1)
		for p := range end {
			if first < 0 || older(queue[p][0], queue[first][0]) {
				first = p
			}
		}
		r := queue[first][0]
		queue[first][0] = nil
		queue[first] = queue[first][1:]
		if len(queue[first]) == 0 && next[first] >= end[first] {
			delete(end, first)
		}
		if !fn(recordMessage(r)) {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
	}
	return nil
}

// older orders records across partitions: by timestamp, then partition.
func older(a, b *kgo.Record) bool {
	if !a.Timestamp.Equal(b.Timestamp) {
		return a.Timestamp.Before(b.Timestamp)
	}
	return a.Partition < b.Partition
}

// browseRange returns, for every partition of topic with records group has
// not consumed, where Browse starts and the high watermark it stops at.
func (b *Broker) browseRange(ctx context.Context, topic, group string) (map[int32]kgo.Offset, map[int32]int64, error) {
	positions, err := b.groupPositions(ctx, topic, group)
	if err != nil {
		return nil, nil, err
	}
	from := map[int32]kgo.Offset{}
	end := map[int32]int64{}
	for p, pos := range positions {
		if pos.at < pos.end {
			from[p] = kgo.NewOffset().At(pos.at)
			end[p] = pos.end
		}
	}
	return from, end, nil
}

// position is where a group stands in one partition: at is the next
// offset it consumes, end the partition's high watermark.
type position struct{ at, end int64 }

// groupPositions returns group's position in every partition of topic:
// its committed offset, or where its consumers would start when it has
// none or it is out of range (Config.InitialOffset). A missing topic has
// no partitions.
func (b *Broker) groupPositions(ctx context.Context, topic, group string) (map[int32]position, error) {
	ends, err := b.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("list end offsets: %w", err)
	}
	if err := ends.Error(); err != nil {
		if errors.Is(err, kerr.UnknownTopicOrPartition) {
			return nil, nil
		}
		return nil, fmt.Errorf("list end offsets: %w", err)
	}
	starts, err := b.adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list start offsets: %w", err)
	}
	committed, err := b.adm.FetchOffsetsForTopics(ctx, group, topic)
	if err != nil {
		return nil, fmt.Errorf("fetch committed offsets of %q: %w", group, err)
	}
	out := map[int32]position{}
	ends.Each(func(e kadm.ListedOffset) {
		start, _ := starts.Lookup(topic, e.Partition)
		pos := int64(-1)
		if c, ok := committed.Lookup(topic, e.Partition); ok && c.Err == nil {
			pos = c.At
		}
		if pos < 0 || pos < start.Offset || pos > e.Offset {
			// No committed offset, or out of range: where the group's
			// consumers would start.
			if b.cfg.InitialOffset == OffsetLatest {
				pos = e.Offset
			} else {
				pos = start.Offset
			}
		}
		out[e.Partition] = position{at: pos, end: e.Offset}
	})
	return out, nil
}

func (b *Broker) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}
