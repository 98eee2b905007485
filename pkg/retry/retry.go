// Package retry computes backoff delays: exponential growth from an initial
// interval, capped at a maximum, with random jitter so that many consumers
// failing at once do not retry in lockstep.
package retry

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Policy says how often and how patiently a failing message is retried.
// The zero value of a field means its default.
type Policy struct {
	// MaxAttempts is the total number of attempts, the first included.
	// Default 5. 1 means no retry.
	MaxAttempts int `yaml:"max_attempts"`
	// InitialInterval is the wait before the second attempt. Default 100ms.
	InitialInterval time.Duration `yaml:"initial_interval"`
	// MaxInterval caps any single wait. Default 5s, which is also the
	// runtime's default longest in-process wait, so the defaults work on
	// brokers that cannot delay redelivery.
	MaxInterval time.Duration `yaml:"max_interval"`
	// Multiplier grows the wait after each attempt. Default 2.
	Multiplier float64 `yaml:"multiplier"`
	// Jitter is the fraction of each wait that is randomized: a wait w becomes
	// a uniform value in [w*(1-Jitter), w*(1+Jitter)], between 0 and 1.
	// Default 0.2 (0 means the default); [NoJitter] (-1) means none.
	Jitter float64 `yaml:"jitter"`
	// MaxElapsed stops retrying once this much time has passed since the first
	// failure, even if attempts remain. Zero means no limit.
	MaxElapsed time.Duration `yaml:"max_elapsed"`
}

// Defaults.
const (
	DefaultMaxAttempts     = 5
	DefaultInitialInterval = 100 * time.Millisecond
	DefaultMaxInterval     = 5 * time.Second
	DefaultMultiplier      = 2.0
	DefaultJitter          = 0.2
)

// NoJitter as [Policy.Jitter] turns jitter off (0 means the default).
const NoJitter = -1.0

// WithDefaults returns p with every zero field set to its default. It is
// idempotent.
func (p Policy) WithDefaults() Policy {
	if p.MaxAttempts == 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.InitialInterval == 0 {
		p.InitialInterval = DefaultInitialInterval
	}
	if p.MaxInterval == 0 {
		p.MaxInterval = DefaultMaxInterval
	}
	if p.Multiplier == 0 {
		p.Multiplier = DefaultMultiplier
	}
	// NoJitter stays NoJitter (Backoff ignores jitter <= 0): turning it into
	// 0 would read as "the default" to the next WithDefaults, and the
	// runtime applies them twice (the effective policy, then Retry).
	if p.Jitter == 0 {
		p.Jitter = DefaultJitter
	}
	return p
}

// Validate reports every invalid field at once; prefix names the policy's
// place in the configuration, e.g. "handlers.inventory.retry".
func (p Policy) Validate(prefix string) error {
	var err error
	if p.MaxAttempts < 0 {
		err = errors.Join(err, fmt.Errorf("%s.max_attempts: %d, want >= 1 (0 means the default %d)", prefix, p.MaxAttempts, DefaultMaxAttempts))
	}
	if p.InitialInterval < 0 {
		err = errors.Join(err, fmt.Errorf("%s.initial_interval: %s, want > 0", prefix, p.InitialInterval))
	}
	if p.MaxInterval < 0 {
		err = errors.Join(err, fmt.Errorf("%s.max_interval: %s, want > 0", prefix, p.MaxInterval))
	}
	if p.InitialInterval > 0 && p.MaxInterval > 0 && p.MaxInterval < p.InitialInterval {
		err = errors.Join(err, fmt.Errorf("%s.max_interval: %s, want >= initial_interval (%s)", prefix, p.MaxInterval, p.InitialInterval))
	}
	if p.Multiplier != 0 && p.Multiplier < 1 {
		err = errors.Join(err, fmt.Errorf("%s.multiplier: %g, want >= 1", prefix, p.Multiplier))
	}
	if p.Jitter > 1 || (p.Jitter < 0 && p.Jitter != NoJitter) {
		err = errors.Join(err, fmt.Errorf("%s.jitter: %g, want between 0 and 1 (0 means the default %g), or -1 for none", prefix, p.Jitter, DefaultJitter))
	}
	if p.MaxElapsed < 0 {
		err = errors.Join(err, fmt.Errorf("%s.max_elapsed: %s, want >= 0", prefix, p.MaxElapsed))
	}
	return err
}

// Backoff returns the wait after the given failed attempt (1 for the first
// attempt). rnd returns a uniform value in [0, 1); nil uses math/rand/v2.
// The policy must already have its defaults.
func (p Policy) Backoff(attempt int, rnd func() float64) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	d := float64(p.InitialInterval) * math.Pow(p.Multiplier, float64(attempt-1))
	if d > float64(p.MaxInterval) || math.IsInf(d, 0) || math.IsNaN(d) {
		d = float64(p.MaxInterval)
	}
	if p.Jitter > 0 {
		if rnd == nil {
			rnd = rand.Float64
		}
		d = d * (1 - p.Jitter + 2*p.Jitter*rnd())
		if d > float64(p.MaxInterval) {
			d = float64(p.MaxInterval)
		}
	}
	return time.Duration(d)
}
