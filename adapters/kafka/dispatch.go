package kafka

import (
	"context"
	"math"
	"slices"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"
)

// run is the dispatcher: it owns the partition state, hands records out in
// order per partition within the prefetch window, tracks acks, schedules
// redeliveries, drains revoked partitions and marks commit points.
func (s *subscription) run() {
	defer close(s.done)
	ticker := time.NewTicker(s.b.cfg.CommitInterval)
	defer ticker.Stop()
	// revokeTimer ends the drain of the oldest revoke.
	revokeTimer := time.NewTimer(time.Hour)
	revokeTimer.Stop()
	defer revokeTimer.Stop()
	var revokeAt time.Time
	// dueTimer wakes the dispatcher when a nacked record's backoff is over
	// or a held retry partition is due; it is armed only while something
	// waits, and re-armed only when that time changes.
	dueTimer := time.NewTimer(time.Hour)
	dueTimer.Stop()
	defer dueTimer.Stop()
	var dueAt time.Time
	// sweepTimer looks for out-of-order acks behind the oldest pending
	// entry; armed only while more than one entry is pending.
	sweepTimer := time.NewTimer(time.Hour)
	sweepTimer.Stop()
	defer sweepTimer.Stop()
	sweepArmed := false
	sweepEvery := minSweep

	intake := s.intakeCtx.Done()
	open := true
	drained := false
	var (
		pend    *entry
		pendMsg *message.Message
	)
	drop := func() { pend, pendMsg = nil, nil }
	burst := 0

	for {
		// Fast path: collect acks at the front and hand the next message
		// to a receiver already waiting, without the full select; after
		// maxBurst rounds the full select runs so that events and timers
		// are served.
		if len(s.pending) > 0 && s.reap() {
			drop() // a nacked record may have to go first
		}
		if open {
			if pend == nil && s.inflight < s.prefetch {
				if pend = s.pick(); pend != nil {
					if pend.msg == nil { // a redelivery
						pend.msg = s.toMessage(pend.p, pend.rec)
					}
					pendMsg = pend.msg
				}
			}
			for _, src := range []*source{s.main, s.retry} {
				if !src.polling && src.queued < src.budget {
					select {
					case src.want <- struct{}{}:
						src.polling = true
					default:
					}
				}
			}
		} else if !drained && s.inflight == 0 {
			drained = true
			go s.shutdown() //nolint:errcheck // errors are logged; Close reports them
		}
		if pend != nil && burst < maxBurst {
			burst++
			select {
			case s.out <- pendMsg:
				s.handedOut(pend)
				drop()
				continue
			default:
			}
		}
		burst = 0
		var outCh chan<- *message.Message
		if pend != nil {
			outCh = s.out
		}
		if due, ok := s.nextDue(); ok {
			if !due.Equal(dueAt) {
				dueAt = due
				dueTimer.Reset(max(time.Until(due), 0))
			}
		} else if !dueAt.IsZero() {
			dueAt = time.Time{}
			dueTimer.Stop()
		}
		if len(s.revokes) > 0 {
			s.finishRevokes(false)
		}
		if len(s.revokes) > 0 {
			if d := s.revokes[0].deadline; !d.Equal(revokeAt) {
				revokeAt = d
				revokeTimer.Reset(max(time.Until(d), 0))
			}
		} else if !revokeAt.IsZero() {
			revokeAt = time.Time{}
			revokeTimer.Stop()
		}
		if len(s.pending) > 1 && !sweepArmed {
			sweepArmed = true
			sweepTimer.Reset(sweepEvery)
		}
		var headAck, headNack <-chan struct{}
		if len(s.pending) > 0 {
			h := s.pending[0].msg
			headAck, headNack = h.Acked(), h.Nacked()
		}

		select {
		case outCh <- pendMsg:
			s.handedOut(pend)
			drop()

		case <-headAck:
			if s.reap() {
				drop() // a nacked record may have to go first
			}
		case <-headNack:
			if s.reap() {
				drop()
			}

		case <-sweepTimer.C:
			sweepArmed = false
			if found, nacked := s.sweep(); found {
				sweepEvery = minSweep
				if nacked {
					drop()
				}
			} else {
				sweepEvery = min(2*sweepEvery, maxSweep)
			}

		case ev := <-s.events:
			switch ev := ev.(type) {
			case batchEv:
				ev.src.polling = false
				if open {
					s.enqueue(ev.recs)
				}
			case assignEv:
				s.assign(ev.src, ev.parts)
				close(ev.reply)
			case revokeEv:
				drop()
				s.sweep() // count every ack made before the revoke
				if open {
					s.takeBack() // buffered in the channel: not handed out
				}
				s.startRevoke(ev)
			case finalEv:
				s.sweep() // count every ack made before Close
				s.mark(true)
				close(ev.reply)
			case forwardedEv:
				s.forwarded(ev)
			case failEv:
				if open {
					s.stopIntake() // the intake case closes the channel
				}
			}

		case <-dueTimer.C:

		case <-revokeTimer.C:
			revokeAt = time.Time{}
			s.sweep()
			s.finishRevokes(true)

		case <-ticker.C:
			s.sweep()
			s.mark(false)

		case <-intake:
			intake = nil
			open = false
			drop()
			s.takeBack()
			close(s.out)

		case <-s.stop:
			return
		}
	}
}

// Bounds of the interval between sweeps for out-of-order acks: it starts at
// minSweep and doubles while sweeps find nothing.
const (
	minSweep = time.Millisecond
	maxSweep = 50 * time.Millisecond
)

// maxOutBuffer bounds the buffer of a subscription's channel. Messages in
// the buffer count as handed out (they are within the prefetch window); those
// still there when intake stops are taken back and not acked, so the group
// gets them again. The buffer lets the dispatcher run ahead of a consumer
// instead of meeting it for every message.
const maxOutBuffer = 64

// maxBurst bounds how many messages the dispatcher hands out in a row
// without serving events and timers.
const maxBurst = 64

// takeBack removes the messages still buffered in the channel: they were
// never received, so they count as not handed out and are not acked (the
// commit stops before them, and the group gets them again).
func (s *subscription) takeBack() {
	for {
		select {
		case m := <-s.out:
			for i := len(s.pending) - 1; i >= 0; i-- {
				if e := s.pending[i]; e.msg == m {
					s.pending = slices.Delete(s.pending, i, i+1)
					s.unhand(e)
					break
				}
			}
		default:
			return
		}
	}
}

// resolved reports whether m was acked or nacked.
func resolved(m *message.Message) (acked, done bool) {
	select {
	case <-m.Acked():
		return true, true
	case <-m.Nacked():
		return false, true
	default:
		return false, false
	}
}

// reap processes the resolved entries at the front of pending, and reports
// whether one of them was nacked.
func (s *subscription) reap() (nacked bool) {
	n := 0
	for _, e := range s.pending {
		ok, done := resolved(e.msg)
		if !done {
			break
		}
		s.acked(e, ok)
		nacked = nacked || !ok
		n++
	}
	if n > 0 { // shift down, keeping the capacity for later appends
		m := copy(s.pending, s.pending[n:])
		clear(s.pending[m:])
		s.pending = s.pending[:m]
	}
	return nacked
}

// sweep processes every resolved entry of pending.
func (s *subscription) sweep() (found, nacked bool) {
	j := 0
	for _, e := range s.pending {
		if ok, done := resolved(e.msg); done {
			s.acked(e, ok)
			found = true
			nacked = nacked || !ok
			continue
		}
		s.pending[j] = e
		j++
	}
	clear(s.pending[j:])
	s.pending = s.pending[:j]
	return found, nacked
}

func (s *subscription) assign(src *source, parts map[string][]int32) {
	for topic, ps := range parts {
		for _, p := range ps {
			k := tp{topic, p}
			if _, ok := s.parts[k]; ok {
				continue
			}
			st := &partState{tp: k, src: src, isRetry: src.retry, sent: -1}
			st.ctx, st.cancel = context.WithCancel(s.msgCtx)
			s.parts[k] = st
			s.order = append(s.order, st)
		}
	}
}

// mark marks the commit point of every partition that has one on its
// client, for franz-go's autocommit of marks (and the commits on revoke and
// Close); with all false, only those that moved since they were last marked.
func (s *subscription) mark(all bool) {
	var main, retry map[string]map[int32]kgo.EpochOffset
	for _, st := range s.order {
		if !st.hasCommit || (!all && st.commit.Offset <= st.sent) {
			continue
		}
		m := &main
		if st.isRetry {
			m = &retry
		}
		if *m == nil {
			*m = map[string]map[int32]kgo.EpochOffset{}
		}
		if (*m)[st.topic] == nil {
			(*m)[st.topic] = map[int32]kgo.EpochOffset{}
		}
		(*m)[st.topic][st.part] = st.commit
		st.sent = st.commit.Offset
	}
	if main != nil {
		s.main.cl.MarkCommitOffsets(main)
	}
	if retry != nil {
		s.retry.cl.MarkCommitOffsets(retry)
	}
}

func (s *subscription) enqueue(recs []*entry) {
	var last *partState
	for _, e := range recs {
		st := last
		if st == nil || st.topic != e.rec.Topic || st.part != e.rec.Partition {
			st = s.parts[tp{e.rec.Topic, e.rec.Partition}]
			if st == nil {
				continue // not ours (any more); the owner fetches it
			}
			last = st
		}
		e.p = st
		e.ctx.parent = st.ctx
		st.queue = append(st.queue, e)
		st.src.queued++
	}
}

// lazyNow reads the clock at most once, and only if asked.
type lazyNow struct{ t time.Time }

func (l *lazyNow) now() time.Time {
	if l.t.IsZero() {
		l.t = time.Now()
	}
	return l.t
}

// pick returns the next record to hand out, round-robin across partitions.
func (s *subscription) pick() *entry {
	var clock lazyNow
	n := len(s.order)
	for i := range n {
		st := s.order[(s.rr+i)%n]
		if e := s.head(st, &clock); e != nil {
			s.rr = (s.rr + i + 1) % n
			return e
		}
	}
	return nil
}

// head returns the next record of one partition to hand out, or nil:
//   - first a nacked record whose backoff is over, lowest offset first, but
//     never ahead of an earlier nacked record with the same key;
//   - else the first fetched record whose key has no nacked record waiting
//     (records without a key are never held back);
//   - on a retry partition, records for other groups are skipped, a record
//     not due yet holds the partition (fetching is paused) until due, and
//     a due record whose chained delay is not over is forwarded to a tier.
//
// A partition being revoked hands nothing out.
func (s *subscription) head(st *partState, clock *lazyNow) *entry {
	if st.revoking {
		return nil
	}
	var waiting map[string]bool
	for i, e := range st.redeliver {
		k := string(e.rec.Key)
		if k != "" && waiting[k] {
			continue
		}
		if !clock.now().Before(e.due) {
			e.idx = i
			return e
		}
		if k != "" {
			if waiting == nil {
				waiting = map[string]bool{}
			}
			waiting[k] = true
		}
	}
	for i := 0; i < len(st.queue); i++ {
		qe := st.queue[i]
		r := qe.rec
		if st.isRetry {
			group, due, until := retryInfo(r)
			if group != s.group {
				// Meant for another group: done for this one.
				st.queue = slices.Delete(st.queue, i, i+1)
				st.src.queued--
				qe.acked, qe.msg = true, nil
				insertOut(st, qe)
				advance(st)
				i--
				continue
			}
			if clock.now().Before(due) {
				st.heldUntil = due
				if !st.paused {
					st.paused = true
					st.src.cl.PauseFetchPartitions(map[string][]int32{st.topic: {st.part}})
				}
				return nil
			}
			st.heldUntil = time.Time{}
			if st.paused {
				st.paused = false
				st.src.cl.ResumeFetchPartitions(map[string][]int32{st.topic: {st.part}})
			}
			if clock.now().Before(until) {
				// Chained: due on this tier, not yet in full.
				st.queue = slices.Delete(st.queue, i, i+1)
				st.src.queued--
				insertOut(st, qe)
				s.forward(qe, until)
				i--
				continue
			}
		}
		if len(r.Key) > 0 && st.blocked[string(r.Key)] > 0 {
			continue
		}
		qe.fresh, qe.idx = true, i
		return qe
	}
	return nil
}

// nextDue is the earliest time a held partition becomes ready.
func (s *subscription) nextDue() (time.Time, bool) {
	var due time.Time
	ok := false
	for _, st := range s.order {
		for _, e := range st.redeliver {
			if !ok || e.due.Before(due) {
				due, ok = e.due, true
			}
		}
		if !st.heldUntil.IsZero() && (!ok || st.heldUntil.Before(due)) {
			due, ok = st.heldUntil, true
		}
	}
	return due, ok
}

func (s *subscription) handedOut(e *entry) {
	st := e.p
	if e.fresh {
		e.fresh = false
		if e.idx == 0 {
			st.queue[0] = nil
			st.queue = st.queue[1:]
		} else {
			st.queue = slices.Delete(st.queue, e.idx, e.idx+1)
		}
		st.src.queued--
		insertOut(st, e)
	} else {
		st.redeliver = slices.Delete(st.redeliver, e.idx, e.idx+1)
		if k := string(e.rec.Key); k != "" {
			if st.blocked[k]--; st.blocked[k] <= 0 {
				delete(st.blocked, k)
			}
		}
	}
	s.pending = append(s.pending, e)
	s.inflight++
	st.busy++
}

func (s *subscription) acked(e *entry, ok bool) {
	s.inflight--
	e.msg = nil // a redelivery gets a new message
	st := e.p
	st.busy--
	if s.parts[st.tp] != st {
		return // revoked: the new owner redelivers it
	}
	if ok {
		e.acked = true
		advance(st)
		return
	}
	e.nacks++
	backoff := s.b.cfg.NackBackoff
	for i := 1; i < e.nacks && backoff < s.b.cfg.MaxNackBackoff; i++ {
		backoff *= 2
	}
	backoff = min(backoff, s.b.cfg.MaxNackBackoff)
	e.due = time.Now().Add(backoff)
	i := len(st.redeliver)
	for i > 0 && st.redeliver[i-1].rec.Offset > e.rec.Offset {
		i--
	}
	st.redeliver = slices.Insert(st.redeliver, i, e)
	if k := string(e.rec.Key); k != "" {
		if st.blocked == nil {
			st.blocked = map[string]int{}
		}
		st.blocked[k]++
	}
}

// insertOut adds a handed-out entry to st.out, keeping offset order.
func insertOut(st *partState, e *entry) {
	i := len(st.out)
	for i > 0 && st.out[i-1].rec.Offset > e.rec.Offset {
		i--
	}
	st.out = slices.Insert(st.out, i, e)
}

// advance moves the commit point past every acked record at the front,
// never past a fetched record that was not handed out yet.
func advance(st *partState) {
	limit := int64(math.MaxInt64)
	if len(st.queue) > 0 {
		limit = st.queue[0].rec.Offset
	}
	i := 0
	for i < len(st.out) && st.out[i].acked && st.out[i].rec.Offset < limit {
		r := st.out[i].rec
		st.commit = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset + 1}
		st.hasCommit = true
		i++
	}
	if i > 0 { // shift down, keeping the capacity for later appends
		n := copy(st.out, st.out[i:])
		clear(st.out[n:])
		st.out = st.out[:n]
	}
}
