package kafka

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// revoking is a revoke of partitions whose in-flight work is being drained.
// The dispatcher finishes it once no record of its partitions is being
// handled, or at its deadline; the revoke callback waits for reply.
type revoking struct {
	src      *source
	parts    []*partState
	lost     bool
	deadline time.Time
	reply    chan struct{}
}

// drainTimeout is how long a revoke waits for the records of the revoked
// partitions being handled: three quarters of the rebalance timeout, so
// that the commit and the rejoin still fit in it.
func (s *subscription) drainTimeout() time.Duration {
	return s.b.cfg.RebalanceTimeout * 3 / 4
}

// startRevoke stops handing out records of the revoked partitions and drops
// what was fetched of them and not handed out; what is being handled is
// waited for by finishRevokes. Lost partitions, and partitions revoked
// because the subscription closes, are not waited for.
func (s *subscription) startRevoke(ev revokeEv) {
	r := &revoking{src: ev.src, lost: ev.lost, reply: ev.reply, deadline: time.Now().Add(s.drainTimeout())}
	if ev.lost || s.closing.Load() {
		r.deadline = time.Now()
	}
	for topic, ps := range ev.parts {
		for _, p := range ps {
			st := s.parts[tp{topic, p}]
			if st == nil || st.revoking {
				continue
			}
			st.revoking = true
			st.src.queued -= len(st.queue)
			clear(st.queue)
			st.queue = nil
			st.redeliver, st.blocked, st.heldUntil = nil, nil, time.Time{}
			r.parts = append(r.parts, st)
		}
	}
	s.revokes = append(s.revokes, r)
	s.finishRevokes(false)
}

// finishRevokes finishes every revoke whose partitions are idle or whose
// deadline passed (the oldest one's, with expired): it cancels the
// contexts of records still being handled (their acks are ignored; the new
// owner redelivers them), marks the commit points of the partitions (unless
// lost) so that the revoke callback commits them, and drops their state.
func (s *subscription) finishRevokes(expired bool) {
	now := time.Now()
	kept := s.revokes[:0]
	for i, r := range s.revokes {
		idle := true
		for _, st := range r.parts {
			idle = idle && st.busy == 0
		}
		if !idle && !(expired && i == 0) && now.Before(r.deadline) {
			kept = append(kept, r)
			continue
		}
		marks := map[string]map[int32]kgo.EpochOffset{}
		resume := map[string][]int32{}
		for _, st := range r.parts {
			if st.busy > 0 {
				s.log.Warn("kafka: revoked partition still busy after the drain time; cancelling its messages",
					"partition_topic", st.topic, "partition", st.part, "in_flight", st.busy, "drain", s.drainTimeout())
			}
			st.cancel()
			advance(st)
			if !r.lost && st.hasCommit {
				if marks[st.topic] == nil {
					marks[st.topic] = map[int32]kgo.EpochOffset{}
				}
				marks[st.topic][st.part] = st.commit
			}
			if st.paused {
				resume[st.topic] = append(resume[st.topic], st.part)
			}
			delete(s.parts, st.tp)
		}
		if len(marks) > 0 {
			r.src.cl.MarkCommitOffsets(marks)
		}
		if len(resume) > 0 {
			r.src.cl.ResumeFetchPartitions(resume)
		}
		close(r.reply)
	}
	clear(s.revokes[len(kept):])
	s.revokes = kept
	order := s.order[:0]
	for _, st := range s.order {
		if s.parts[st.tp] == st {
			order = append(order, st)
		}
	}
	clear(s.order[len(order):])
	s.order = order
	if s.rr >= len(s.order) {
		s.rr = 0
	}
}

// unhand takes back a handed-out entry that nobody received (it was still
// buffered in the channel): it goes back first in line of its partition,
// as a redelivery due now, with the same message.
func (s *subscription) unhand(e *entry) {
	s.inflight--
	st := e.p
	st.busy--
	if s.parts[st.tp] != st {
		return
	}
	i := len(st.redeliver)
	for i > 0 && st.redeliver[i-1].rec.Offset > e.rec.Offset {
		i--
	}
	e.due = time.Time{}
	st.redeliver = slices.Insert(st.redeliver, i, e)
	if k := string(e.rec.Key); k != "" {
		if st.blocked == nil {
			st.blocked = map[string]int{}
		}
		st.blocked[k]++
	}
}

// forward produces a chained retry record to the tier its remaining delay
// goes to, off the dispatcher, retrying until it succeeds or the partition
// is revoked; the record counts as busy meanwhile. Once forwarded it is
// done on this tier (forwarded); if it never was, the commit never passes
// it and the group reads it again.
func (s *subscription) forward(e *entry, until time.Time) {
	st := e.p
	st.busy++
	go func() {
		m := recordMessage(e.rec)
		backoff := s.b.cfg.NackBackoff
		for {
			ctx, cancel := context.WithTimeout(st.ctx, s.b.cfg.PublishTimeout)
			err := s.b.delayUntil(ctx, s.topic, s.group, m, until, true)
			cancel()
			if err == nil {
				s.send(forwardedEv{e: e, ok: true})
				return
			}
			s.log.Warn("kafka: forward a chained delay failed; retrying", "error", err)
			select {
			case <-time.After(backoff):
				backoff = min(2*backoff, s.b.cfg.MaxNackBackoff)
			case <-st.ctx.Done():
				s.send(forwardedEv{e: e})
				return
			}
		}
	}()
}

// forwarded ends the forward of e: if it was produced and the partition is
// still this subscription's, e is done on its tier.
func (s *subscription) forwarded(ev forwardedEv) {
	st := ev.e.p
	st.busy--
	if !ev.ok || s.parts[st.tp] != st {
		return
	}
	ev.e.acked = true
	advance(st)
}

// fatal reports whether a client error will not heal by retrying, so the
// subscription ends with it ([broker.Failer]) instead of retrying for ever:
// authentication and authorization failures, and a static member fenced by
// another with the same instance id.
func fatal(err error) bool {
	for _, f := range []error{
		kerr.TopicAuthorizationFailed, kerr.GroupAuthorizationFailed, kerr.ClusterAuthorizationFailed,
		kerr.SaslAuthenticationFailed, kerr.UnsupportedSaslMechanism, kerr.IllegalSaslState,
		kerr.FencedInstanceID, kerr.InvalidGroupID,
	} {
		if errors.Is(err, f) {
			return true
		}
	}
	return false
}
