// Package breaker is a circuit breaker's state machine: it opens after
// too many consecutive failures or too high a failure rate over a sliding
// window, stays open for a while, then lets a few probes through and closes
// once they succeed.
//
// It keeps no goroutines and no clock: every call takes the current time,
// so it is deterministic under test. It is not safe for concurrent use; its
// caller serialises calls (the service runtime holds a lock around it).
package breaker

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Policy configures a [Breaker]. The breaker is off unless
// ConsecutiveFailures or FailureRate is set; the other fields then take
// their defaults when zero.
type Policy struct {
	// ConsecutiveFailures opens the breaker after this many failed attempts
	// in a row. 0: no such trigger.
	ConsecutiveFailures int `yaml:"consecutive_failures"`
	// FailureRate opens the breaker when the failed share of the attempts
	// within Window reaches it, once there were at least MinRequests of
	// them; between 0 and 1. 0: no such trigger.
	FailureRate float64 `yaml:"failure_rate"`
	// Window is the sliding window of FailureRate. Default 1m.
	Window time.Duration `yaml:"window"`
	// MinRequests is how many attempts Window must hold before FailureRate
	// is judged. Default 20.
	MinRequests int `yaml:"min_requests"`
	// OpenFor is how long the breaker stays open before it lets probes
	// through. Default 30s.
	OpenFor time.Duration `yaml:"open_for"`
	// HalfOpenProbes is how many probes may run at once while half-open,
	// and how many must succeed in a row to close it. Default 1.
	HalfOpenProbes int `yaml:"half_open_probes"`
}

// Defaults of [Policy] once the breaker is on.
const (
	DefaultWindow         = time.Minute
	DefaultMinRequests    = 20
	DefaultOpenFor        = 30 * time.Second
	DefaultHalfOpenProbes = 1
)

// Enabled reports whether the policy turns the breaker on.
func (p Policy) Enabled() bool { return p.ConsecutiveFailures > 0 || p.FailureRate > 0 }

// WithDefaults returns p with every zero field set to its default. It is
// idempotent and leaves a policy that is off alone.
func (p Policy) WithDefaults() Policy {
	if !p.Enabled() {
		return p
	}
	if p.Window == 0 {
		p.Window = DefaultWindow
	}
	if p.MinRequests == 0 {
		p.MinRequests = DefaultMinRequests
	}
	if p.OpenFor == 0 {
		p.OpenFor = DefaultOpenFor
	}
	if p.HalfOpenProbes == 0 {
		p.HalfOpenProbes = DefaultHalfOpenProbes
	}
	return p
}

// Inherit returns p with its zero fields taken from base.
func (p Policy) Inherit(base Policy) Policy {
	if p.ConsecutiveFailures == 0 {
		p.ConsecutiveFailures = base.ConsecutiveFailures
	}
	if p.FailureRate == 0 {
		p.FailureRate = base.FailureRate
	}
	if p.Window == 0 {
		p.Window = base.Window
	}
	if p.MinRequests == 0 {
		p.MinRequests = base.MinRequests
	}
	if p.OpenFor == 0 {
		p.OpenFor = base.OpenFor
	}
	if p.HalfOpenProbes == 0 {
		p.HalfOpenProbes = base.HalfOpenProbes
	}
	return p
}

// Validate reports every invalid field at once; prefix names the policy's
// place in the configuration, e.g. "handlers.inventory.breaker".
func (p Policy) Validate(prefix string) error {
	var err error
	if p.ConsecutiveFailures < 0 {
		err = errors.Join(err, fmt.Errorf("%s.consecutive_failures: %d, want >= 1 (0 means no such trigger)", prefix, p.ConsecutiveFailures))
	}
	if math.IsNaN(p.FailureRate) || p.FailureRate < 0 || p.FailureRate > 1 {
		err = errors.Join(err, fmt.Errorf("%s.failure_rate: %v, want a share between 0 and 1, e.g. 0.5 (0 means no such trigger)", prefix, p.FailureRate))
	}
	if p.Window < 0 {
		err = errors.Join(err, fmt.Errorf("%s.window: %s, want > 0 (0 means the default %s)", prefix, p.Window, DefaultWindow))
	}
	if p.MinRequests < 0 {
		err = errors.Join(err, fmt.Errorf("%s.min_requests: %d, want >= 1 (0 means the default %d)", prefix, p.MinRequests, DefaultMinRequests))
	}
	if p.OpenFor < 0 {
		err = errors.Join(err, fmt.Errorf("%s.open_for: %s, want > 0 (0 means the default %s)", prefix, p.OpenFor, DefaultOpenFor))
	}
	if p.HalfOpenProbes < 0 {
		err = errors.Join(err, fmt.Errorf("%s.half_open_probes: %d, want >= 1 (0 means the default %d)", prefix, p.HalfOpenProbes, DefaultHalfOpenProbes))
	}
	return err
}

// State is a breaker's state.
type State string

// States of a [Breaker].
const (
	Closed   State = "closed"    // attempts run and are counted
	Open     State = "open"      // no attempt runs until OpenFor has passed
	HalfOpen State = "half_open" // up to HalfOpenProbes probes run
)

// Outcome is what an attempt tells the breaker.
type Outcome uint8

// Outcomes of an attempt.
const (
	// Success counts as a success.
	Success Outcome = iota
	// Failure counts as a failure.
	Failure
	// Ignored says nothing about the health of what the breaker guards
	// (a permanent error, a shutdown): it is not counted.
	Ignored
)

// buckets is how many slices the failure-rate window is cut into: the
// window slides one slice at a time.
const buckets = 10

type bucket struct {
	idx           int64 // which slice of time it counts; stale when old
	total, failed int
}

// Breaker is the state machine. Create it with [New].
type Breaker struct {
	p           Policy
	state       State
	consecutive int
	window      [buckets]bucket
	slice       time.Duration
	openUntil   time.Time
	probing     int // probes admitted and not yet recorded
	probeOK     int // probes that succeeded in a row
}

// New returns a closed breaker; p takes its defaults.
func New(p Policy) *Breaker {
	p = p.WithDefaults()
	return &Breaker{p: p, state: Closed, slice: max(p.Window/buckets, 1)}
}

// Policy is the breaker's policy, defaults applied.
func (b *Breaker) Policy() Policy { return b.p }

// State returns the state at now: an open breaker whose time is up turns
// half-open here.
func (b *Breaker) State(now time.Time) State {
	if b.state == Open && !now.Before(b.openUntil) {
		b.state, b.probing, b.probeOK = HalfOpen, 0, 0
	}
	return b.state
}

// OpenUntil is when an open breaker turns half-open.
func (b *Breaker) OpenUntil() time.Time { return b.openUntil }

// Allow reports whether an attempt may start at now, and whether it is a
// probe. A probe must be recorded with [Breaker.Record] and probe true.
func (b *Breaker) Allow(now time.Time) (ok, probe bool) {
	switch b.State(now) {
	case Closed:
		return true, false
	case HalfOpen:
		if b.probing < b.p.HalfOpenProbes {
			b.probing++
			return true, true
		}
	}
	return false, false
}

// Record counts the outcome of an attempt that [Breaker.Allow] let start,
// and returns the state before and after it. An attempt that started
// while closed and ends after the breaker opened is not counted: the
// breaker already knows.
func (b *Breaker) Record(now time.Time, probe bool, o Outcome) (from, to State) {
	from = b.State(now)
	if probe {
		if b.probing > 0 {
			b.probing--
		}
		if from != HalfOpen {
			return from, from // another probe reopened it meanwhile
		}
		switch o {
		case Success:
			b.probeOK++
			if b.probeOK >= b.p.HalfOpenProbes {
				b.close()
			}
		case Failure:
			b.open(now)
		}
		return from, b.state
	}
	if from != Closed || o == Ignored {
		return from, from
	}
	cur := b.bucket(now)
	cur.total++
	if o == Success {
		b.consecutive = 0
		return from, from
	}
	cur.failed++
	b.consecutive++
	if b.p.ConsecutiveFailures > 0 && b.consecutive >= b.p.ConsecutiveFailures {
		b.open(now)
	} else if b.p.FailureRate > 0 {
		total, failed := b.counts(now)
		if total >= b.p.MinRequests && float64(failed) >= b.p.FailureRate*float64(total) {
			b.open(now)
		}
	}
	return from, b.state
}

func (b *Breaker) open(now time.Time) {
	b.state, b.openUntil, b.probing, b.probeOK = Open, now.Add(b.p.OpenFor), 0, 0
}

func (b *Breaker) close() {
	b.state, b.consecutive, b.probing, b.probeOK = Closed, 0, 0, 0
	b.window = [buckets]bucket{} // what failed before opening is history
}

// bucket returns the window's slice for now, emptied if it held an older one.
func (b *Breaker) bucket(now time.Time) *bucket {
	idx := now.UnixNano() / int64(b.slice)
	i := idx % buckets
	if i < 0 {
		i += buckets // a time before 1970
	}
	bk := &b.window[i]
	if bk.idx != idx {
		*bk = bucket{idx: idx}
	}
	return bk
}

// counts sums the attempts of the window's slices that are still in it.
func (b *Breaker) counts(now time.Time) (total, failed int) {
	idx := now.UnixNano() / int64(b.slice)
	for _, bk := range b.window {
		if bk.idx > idx-buckets && bk.idx <= idx {
			total += bk.total
			failed += bk.failed
		}
	}
	return total, failed
}
