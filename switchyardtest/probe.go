package switchyardtest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/metrics"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// Attempt is one attempt of one handler at one message, as a [Probe] saw
// it: after the broker delivered it and before the handler ran.
type Attempt struct {
	// Seq numbers attempts in the order they started, from 1.
	Seq int
	// Instance names the service instance (see [Probe.Options]).
	Instance string
	// Handler, Group and Topic say who handled it. A message no handler
	// could take (bad envelope, unknown type) is attempted by the
	// subscription's dispatcher, named "<group>/dispatch".
	Handler, Group, Topic string
	// Envelope is the message's envelope as delivered.
	Envelope event.Envelope
	// Metadata is a copy of the delivered message's headers.
	Metadata map[string]string
	// Payload is the delivered payload.
	Payload []byte
	// Number is the attempt's number, from 1, counting attempts made
	// before a delayed redelivery.
	Number int
	// Start and End are wall-clock times; End is zero while it runs.
	Start, End time.Time
	// Done is false while the attempt runs.
	Done bool
	// Err is what the attempt returned: nil when the handler succeeded.
	Err error
	// Injected is true when the probe's injection failed the attempt
	// before the handler ran.
	Injected bool
}

// String is one line of a journal.
func (a Attempt) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "#%d attempt %d of %s id=%s", a.Seq, a.Number, a.Envelope.Type, a.Envelope.ID)
	if a.Envelope.Key != "" {
		fmt.Fprintf(&b, " key=%s", a.Envelope.Key)
	}
	fmt.Fprintf(&b, " by %s", a.Handler)
	if a.Instance != "" {
		fmt.Fprintf(&b, " (%s)", a.Instance)
	}
	switch {
	case !a.Done:
		b.WriteString(": running")
	case a.Err == nil:
		b.WriteString(": ok")
	case a.Injected:
		fmt.Fprintf(&b, ": injected error: %v", a.Err)
	default:
		fmt.Fprintf(&b, ": error: %v", firstLine(a.Err.Error()))
	}
	return b.String()
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

// Counts are what the runtime reported for one handler (or all of them):
// the [metrics.Recorder] events, plus attempts the probe saw.
type Counts struct {
	// Attempts is how many attempts the probe saw start.
	Attempts int
	// Handled counts deliveries the handler completed.
	Handled int
	// Retried counts retries scheduled: in-process waits and delayed
	// redeliveries alike.
	Retried int
	// DeadLettered counts dead letters the broker confirmed, by reason in
	// Reasons.
	DeadLettered int
	Reasons      map[string]int
	// Nacked counts deliveries handed back to the broker unsettled.
	Nacked int
	// Duplicates counts deliveries the idempotency store skipped.
	Duplicates int
}

// Probe watches a service from inside: a middleware that records every
// attempt of every handler (and can fail or hold attempts on purpose) and a
// [metrics.Recorder] that counts per handler. The harness installs one;
// install one yourself with [Probe.Options] to watch a service on any
// broker, as package conformance does. It is safe for concurrent use.
type Probe struct {
	mu       sync.Mutex
	attempts []*Attempt
	counts   map[string]*Counts // by handler
	inFlight int
	changed  chan struct{}
	inject   func(ctx context.Context, d *middleware.Delivery) error
}

// NewProbe returns a probe that has seen nothing.
func NewProbe() *Probe {
	return &Probe{counts: map[string]*Counts{}, changed: make(chan struct{})}
}

// Options returns the service options that install the probe on one
// service instance, named instance in its records. Give them to
// [service.New] before your own [service.WithMiddleware]: the probe is then
// the outermost middleware you add, inside Retry, so it sees every attempt.
func (p *Probe) Options(instance string) []service.Option {
	return []service.Option{
		service.WithMiddleware(p.middleware(instance)),
		service.WithRecorder(probeRecorder{p}),
	}
}

// Inject sets a function that runs before every attempt, before the
// handler: when it returns an error the attempt fails with it and the
// handler does not run. It may block (to hold a handler in flight) and
// should then watch ctx. nil removes it.
func (p *Probe) Inject(fn func(ctx context.Context, d *middleware.Delivery) error) {
	p.mu.Lock()
	p.inject = fn
	p.mu.Unlock()
}

func (p *Probe) middleware(instance string) middleware.Middleware {
	return func(next middleware.Handler) middleware.Handler {
		return func(ctx context.Context, d *middleware.Delivery) error {
			a := &Attempt{
				Instance: instance,
				Handler:  d.Handler.Name, Group: d.Handler.Group, Topic: d.Handler.Topic,
				Envelope: d.Envelope,
				Metadata: maps.Clone(map[string]string(d.Msg.Metadata)),
				Payload:  slices.Clone(d.Msg.Payload),
				Number:   d.Attempt,
				Start:    time.Now(),
			}
			p.mu.Lock()
			a.Seq = len(p.attempts) + 1
			p.attempts = append(p.attempts, a)
			p.countsOf(a.Handler).Attempts++
			p.inFlight++
			inject := p.inject
			p.notifyLocked()
			p.mu.Unlock()

			var err error
			injected := false
			if inject != nil {
				err = inject(ctx, d)
				injected = err != nil
			}
			if err == nil {
				err = next(ctx, d)
			}
			p.mu.Lock()
			a.End, a.Done, a.Err, a.Injected = time.Now(), true, err, injected
			p.inFlight--
			p.notifyLocked()
			p.mu.Unlock()
			return err
		}
	}
}

func (p *Probe) countsOf(handler string) *Counts {
	c := p.counts[handler]
	if c == nil {
		c = &Counts{Reasons: map[string]int{}}
		p.counts[handler] = c
	}
	return c
}

// notifyLocked wakes everyone waiting on Changed. Caller holds p.mu.
func (p *Probe) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// Changed returns a channel closed at the next thing the probe records.
func (p *Probe) Changed() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.changed
}

// Attempts returns copies of the attempts seen, in the order they started;
// handler "" means every handler.
func (p *Probe) Attempts(handler string) []Attempt {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Attempt, 0, len(p.attempts))
	for _, a := range p.attempts {
		if handler == "" || a.Handler == handler {
			out = append(out, *a)
		}
	}
	return out
}

// InFlight is how many attempts are running.
func (p *Probe) InFlight() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inFlight
}

// Counts returns the counts of handler, or of every handler for "".
func (p *Probe) Counts(handler string) Counts {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := Counts{Reasons: map[string]int{}}
	for name, c := range p.counts {
		if handler != "" && name != handler {
			continue
		}
		out.Attempts += c.Attempts
		out.Handled += c.Handled
		out.Retried += c.Retried
		out.DeadLettered += c.DeadLettered
		out.Nacked += c.Nacked
		out.Duplicates += c.Duplicates
		for r, n := range c.Reasons {
			out.Reasons[r] += n
		}
	}
	return out
}

// Journal describes the last max attempts (all for max <= 0), one a line,
// and the counts of every handler: what did happen, for failure messages.
func (p *Probe) Journal(max int) string {
	attempts := p.Attempts("")
	var b strings.Builder
	writeLast(&b, attempts, max, "attempts", "no handler attempted anything")
	p.mu.Lock()
	names := slices.Sorted(maps.Keys(p.counts))
	for _, name := range names {
		c := p.counts[name]
		fmt.Fprintf(&b, "  %s: attempts=%d handled=%d retried=%d dead_lettered=%d nacked=%d duplicates=%d",
			name, c.Attempts, c.Handled, c.Retried, c.DeadLettered, c.Nacked, c.Duplicates)
		if len(c.Reasons) > 0 {
			fmt.Fprintf(&b, " reasons=%v", c.Reasons)
		}
		b.WriteString("\n")
	}
	p.mu.Unlock()
	return b.String()
}

// probeRecorder counts the runtime's recorder events per handler.
type probeRecorder struct{ p *Probe }

var _ metrics.Recorder = probeRecorder{}

func (r probeRecorder) add(handler string, fn func(*Counts)) {
	r.p.mu.Lock()
	fn(r.p.countsOf(handler))
	r.p.notifyLocked()
	r.p.mu.Unlock()
}

func (probeRecorder) Published(string, string) {}
func (r probeRecorder) Handled(h string, _ time.Duration) {
	r.add(h, func(c *Counts) { c.Handled++ })
}
func (r probeRecorder) Retried(h string) { r.add(h, func(c *Counts) { c.Retried++ }) }
func (r probeRecorder) DeadLettered(h, reason string) {
	r.add(h, func(c *Counts) { c.DeadLettered++; c.Reasons[reason]++ })
}
func (r probeRecorder) Nacked(h string)    { r.add(h, func(c *Counts) { c.Nacked++ }) }
func (r probeRecorder) Duplicate(h string) { r.add(h, func(c *Counts) { c.Duplicates++ }) }
