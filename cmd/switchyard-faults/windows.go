//go:build !switchyard_no_kafka && !switchyard_no_amqp

package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// handling is one recorded handling of the membership scenarios: who
// handled which message, where it came from and when.
type handling struct {
	id      string
	pid     int
	key     string
	seq     int
	part    int64 // Kafka partition, -1 on RabbitMQ
	off     int64 // Kafka offset, -1 on RabbitMQ
	started int64 // Unix microseconds, when the handler began
	ended   int64 // Unix microseconds, when its row was written
}

// loadHandlings reads every handling of table (rows the windowed recorder
// wrote; the others have no window and are skipped).
func loadHandlings(ctx context.Context, pool *pgxpool.Pool, table string) ([]handling, error) {
	rows, err := pool.Query(ctx, "SELECT id, pid, key, seq, coalesce(part, -1), coalesce(off, -1), started, ended FROM "+
		table+" WHERE started IS NOT NULL AND ended IS NOT NULL")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []handling
	for rows.Next() {
		var h handling
		if err := rows.Scan(&h.id, &h.pid, &h.key, &h.seq, &h.part, &h.off, &h.started, &h.ended); err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// windows is what the handling windows of a membership scenario show.
type windows struct {
	// overlaps counts handlings that began while another consumer was
	// still handling a message of the same key: one key on two members
	// at once.
	overlaps       int
	overlapSamples []string
	// orderViolations counts first handlings, per consumer and key, of a
	// message older (lower offset on Kafka, lower sequence number on
	// RabbitMQ) than one the same consumer had already begun.
	orderViolations int
	orderSamples    []string
	// redeliveredBehind counts handlings, per key across consumers, of a
	// message older than one already begun by any consumer: a redelivery
	// that went behind later messages of its key (at-least-once at work;
	// each is also a duplicate or follows a failed attempt).
	redeliveredBehind int
	// Repeated handlings (duplicates) by cause: afterLeave re-handle what
	// a member that was leaving had handled (the re-handling began after
	// that member was sent SIGTERM); the others (afterRebalance) repeat
	// what a member that stayed had handled, which the revoke drain exists
	// to prevent.
	afterLeave, afterRebalance int
	rebalanceSamples           []string
	// streams is, per stream (a Kafka partition, or the RabbitMQ queue), the
	// gaps between consecutive handlings while the producer streamed.
	streams  map[string][]int64 // ended times, sorted
	from, to int64
}

// position is where a handling stands in its key's order: the Kafka offset
// (one key is on one partition), else the producer's sequence number (the
// RabbitMQ scenarios publish from one goroutine, so per key the sequence
// is the publish order).
func (h handling) position() int64 {
	if h.off >= 0 {
		return h.off
	}
	return int64(h.seq)
}

// stream is the unit that makes progress in order: a Kafka partition, or
// the one RabbitMQ queue.
func (h handling) stream() string {
	if h.part >= 0 {
		return "partition " + strconv.FormatInt(h.part, 10)
	}
	return "queue"
}

// analyseWindows checks the handlings for overlapping keys and per-key
// order, and collects the progress of each stream between from and to
// (the time the producer streamed).
func analyseWindows(hs []handling, names map[int]string, leftAt map[int]time.Time, from, to time.Time) *windows {
	w := &windows{streams: map[string][]int64{}, from: from.UnixMicro(), to: to.UnixMicro()}
	name := func(pid int) string {
		if n, ok := names[pid]; ok {
			return n
		}
		return strconv.Itoa(pid)
	}
	byKey := map[string][]handling{}
	byID := map[string][]handling{}
	for _, h := range hs {
		byKey[h.key] = append(byKey[h.key], h)
		byID[h.id] = append(byID[h.id], h)
		if h.ended >= w.from && h.ended <= w.to {
			w.streams[h.stream()] = append(w.streams[h.stream()], h.ended)
		}
	}
	for id, list := range byID {
		if len(list) < 2 {
			continue
		}
		slices.SortFunc(list, func(a, b handling) int { return cmp.Compare(a.started, b.started) })
		for i := 1; i < len(list); i++ {
			prev, h := list[i-1], list[i]
			if t, ok := leftAt[prev.pid]; ok && h.started >= t.UnixMicro() {
				w.afterLeave++
				continue
			}
			w.afterRebalance++
			if len(w.rebalanceSamples) < 5 {
				w.rebalanceSamples = append(w.rebalanceSamples, fmt.Sprintf("%s (%s pos %d): %s at %s, again by %s at %s",
					id, h.stream(), h.position(), name(prev.pid), micros(prev.started), name(h.pid), micros(h.started)))
			}
		}
	}
	// first is when each id was first handled: the order check looks at
	// first handlings only, because a repeat (a redelivery, or a batch the
	// producer published again after a nack) is a duplicate, counted as
	// such, and comes back behind later messages by nature.
	first := map[string]int64{}
	for id, list := range byID {
		first[id] = list[0].started // sorted above when it has repeats
	}
	for key, list := range byKey {
		slices.SortFunc(list, func(a, b handling) int {
			return cmp.Or(cmp.Compare(a.started, b.started), cmp.Compare(a.ended, b.ended))
		})
		lastEnd := map[int]handling{} // per consumer: its handling that ends last so far
		maxPos := map[int]int64{}     // per consumer: highest position begun
		overall := int64(-1)
		for _, h := range list {
			for pid, o := range lastEnd {
				if pid != h.pid && o.ended > h.started {
					w.overlaps++
					if len(w.overlapSamples) < 5 {
						w.overlapSamples = append(w.overlapSamples, fmt.Sprintf(
							"key %s: %s handled %s (pos %d) until %s while %s began %s (pos %d) at %s",
							key, name(o.pid), o.id, o.position(), micros(o.ended), name(h.pid), h.id, h.position(), micros(h.started)))
					}
					break
				}
			}
			if o, ok := lastEnd[h.pid]; !ok || h.ended > o.ended {
				lastEnd[h.pid] = h
			}
			pos := h.position()
			if m, ok := maxPos[h.pid]; ok && pos < m && first[h.id] == h.started {
				w.orderViolations++
				if len(w.orderSamples) < 5 {
					w.orderSamples = append(w.orderSamples, fmt.Sprintf("key %s: %s began %s (pos %d) at %s after pos %d",
						key, name(h.pid), h.id, pos, micros(h.started), m))
				}
			}
			if m, ok := maxPos[h.pid]; !ok || pos > m {
				maxPos[h.pid] = pos
			}
			if pos < overall {
				w.redeliveredBehind++
			}
			overall = max(overall, pos)
		}
	}
	for _, ends := range w.streams {
		slices.Sort(ends)
	}
	return w
}

// stall is a stretch of time in which a stream made no progress.
type stall struct {
	stream   string
	from, to int64 // Unix microseconds
}

func (s stall) length() time.Duration { return time.Duration(s.to-s.from) * time.Microsecond }

// longestStall is the longest gap between consecutive handlings of any
// one stream that intersects [from, to] (Unix microseconds), or the zero
// stall when no stream made progress there twice.
func (w *windows) longestStall(from, to int64) stall {
	var best stall
	for name, ends := range w.streams {
		for i := 1; i < len(ends); i++ {
			a, b := ends[i-1], ends[i]
			if b < from || a > to {
				continue
			}
			if b-a > best.to-best.from {
				best = stall{stream: name, from: a, to: b}
			}
		}
	}
	return best
}

// stallsOver counts the gaps longer than d over the whole stream.
func (w *windows) stallsOver(d time.Duration) int {
	n := 0
	for _, ends := range w.streams {
		for i := 1; i < len(ends); i++ {
			if time.Duration(ends[i]-ends[i-1])*time.Microsecond > d {
				n++
			}
		}
	}
	return n
}

func micros(us int64) string { return time.UnixMicro(us).UTC().Format("15:04:05.000000") }
