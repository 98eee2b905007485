package service

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/metrics"
	"github.com/switchyard-go/switchyard/pkg/middleware"
)

// Framework defaults for [BatchPolicy].
const (
	DefaultBatchSize   = 100
	DefaultBatchWindow = 100 * time.Millisecond
)

// BatchPolicy is how a batch handler gathers messages: a batch is handed
// to the handler once it holds Size messages, or Window after its first
// message arrived, whichever comes first. Zero fields inherit, as the
// other fields of [Policy] do.
type BatchPolicy struct {
	// Size is the most messages in one batch. Default 100.
	Size int `yaml:"size"`
	// Window is how long a batch waits for more messages after its first
	// one. Default 100ms.
	Window time.Duration `yaml:"window"`
}

func (b BatchPolicy) inherit(base BatchPolicy) BatchPolicy {
	if b.Size == 0 {
		b.Size = base.Size
	}
	if b.Window == 0 {
		b.Window = base.Window
	}
	return b
}

func (b BatchPolicy) withDefaults() BatchPolicy {
	return b.inherit(BatchPolicy{Size: DefaultBatchSize, Window: DefaultBatchWindow})
}

// maxBatchSize bounds Size: every message of a batch holds a worker of
// the subscription while the batch gathers, and the broker's prefetch
// follows it.
const maxBatchSize = 10_000

// maxBatchHeld bounds Concurrency × Size, the messages a batch handler's
// subscription holds at once, which becomes its prefetch: the largest
// prefetch a broker takes (AMQP's basic.qos count is 16-bit).
const maxBatchHeld = 65535

// checkBatchHeld refuses a batch handler's effective policy whose batches
// hold more messages at once than a broker's prefetch allows. Checked at
// registration, where the policy is final, so that the error names the
// fields the user set rather than a prefetch the adapter refuses at Run.
func checkBatchHeld(prefix string, p Policy) error {
	if held := p.Concurrency * p.Batch.Size; held > maxBatchHeld {
		return fmt.Errorf("%s: batch.size %d × concurrency %d = %d messages held at once (the subscription's prefetch), want at most %d, the largest prefetch a broker takes; lower batch.size or concurrency",
			prefix, p.Batch.Size, p.Concurrency, held, maxBatchHeld)
	}
	return nil
}

func (b BatchPolicy) validate(prefix string) error {
	var err error
	if b.Size < 0 || b.Size > maxBatchSize {
		err = errors.Join(err, fmt.Errorf("%s.size: %d, want 1 to %d (0 means the default %d)", prefix, b.Size, maxBatchSize, DefaultBatchSize))
	}
	if b.Window < 0 {
		err = errors.Join(err, fmt.Errorf("%s.window: %s, want > 0 (0 means the default %s)", prefix, b.Window, DefaultBatchWindow))
	}
	return err
}

// noBatchPolicy refuses a batch policy given to a handler that is not a
// batch handler: it would be silently ignored.
func noBatchPolicy(name string, code, override Policy) error {
	switch {
	case code.Batch != BatchPolicy{}:
		return fmt.Errorf("service: handler %q: BatchSize or BatchWindow given to Handle; register it with HandleBatch to handle batches", name)
	case override.Batch != BatchPolicy{}:
		return fmt.Errorf("service: handlers.%s.batch: %+v, but %q is not a batch handler (registered with Handle, not HandleBatch)", name, override.Batch, name)
	}
	return nil
}

// BatchSize sets the most messages in one batch of a batch handler; see
// [BatchPolicy.Size].
func BatchSize(n int) HandlerOption { return func(h *handlerSpec) { h.policy.Batch.Size = n } }

// BatchWindow sets how long a batch waits for more messages after its
// first one; see [BatchPolicy.Window].
func BatchWindow(d time.Duration) HandlerOption {
	return func(h *handlerSpec) { h.policy.Batch.Window = d }
}

// Item is one message of a batch.
type Item[T any] struct {
	// Event is the decoded event.
	Event T
	// ID is the event id: the key of the item's outcome in [BatchErrors].
	ID string
	// Key is the event's key (aggregate id); "" for none.
	Key string
	// Attempt is the number of this attempt at the message, starting at 1.
	Attempt int

	ctx context.Context
}

// Context returns the message's own context: publish with it
// (svc.Publish(item.Context(), ...)) to continue the message's chain
// (correlation, causation, hop count) as a [Handle] handler's context
// does. It is valid while the batch handler runs, like the batch.
func (it Item[T]) Context() context.Context { return it.ctx }

// BatchErrors is the outcome of a batch whose messages did not all
// succeed: the error of each failed item, by [Item.ID]. Items it does not
// name succeeded and are acked; each named one goes on through its own
// failure path (retried with backoff in a later batch, or dead-lettered
// once its attempts are spent or at once for a [failure.Permanent] error).
// An empty BatchErrors, nil included, means every item succeeded.
type BatchErrors map[string]error

func (e BatchErrors) Error() string {
	ids := slices.Sorted(maps.Keys(e))
	var b strings.Builder
	fmt.Fprintf(&b, "%d messages of the batch failed:", len(ids))
	for _, id := range ids {
		fmt.Fprintf(&b, " %s: %v;", id, e[id])
	}
	return strings.TrimSuffix(b.String(), ";")
}

// Unwrap returns the items' errors, so that errors.Is and errors.As see
// them.
func (e BatchErrors) Unwrap() []error {
	out := make([]error, 0, len(e))
	for _, id := range slices.Sorted(maps.Keys(e)) {
		out = append(out, e[id])
	}
	return out
}

// HandleBatch registers fn as the batch handler named name for events of
// type T: fn receives up to [BatchPolicy.Size] events at once, or fewer
// once [BatchPolicy.Window] passed since the first of them arrived (or the
// service shuts down).
//
// Each message keeps its own outcome and its own failure path, as with
// [Handle]: fn returns nil when every item succeeded, a [BatchErrors]
// naming the items that failed (the others are acked), or any other error
// when the whole batch failed (every item fails with it). A failed item is
// retried with its handler's backoff in a later batch, with the messages
// that arrived meanwhile, and dead-lettered with the usual failure metadata
// once its attempts are spent; idempotency, the circuit breaker and the
// rate limit count items, not batches. A panic in fn fails every item.
//
// Order per key: a batch holds at most one message of a key, because the
// subscription handles a key's messages one after another (see the package
// doc); a key's later message joins a later batch, after the earlier one
// succeeded or was given up on, so a retry keeps the key's order exactly
// as it does for [Handle] (see [Policy.OrderOnRetry]). A batch gathers
// messages of different keys, and messages without a key.
//
// [Policy.Timeout] bounds each call of fn (the gathering does not count);
// fn's context ends then, and at the end of the shutdown timeout. The
// subscription handles up to Concurrency batches at once, so up to
// Concurrency x Size messages; when no prefetch is set, the broker's
// prefetch is that number, so that a batch can fill.
func HandleBatch[T event.Event](s *Service, name string, fn func(ctx context.Context, batch []Item[T]) error, opts ...HandlerOption) error {
	if fn == nil {
		return fmt.Errorf("service: batch handler %q: fn is nil", name)
	}
	return register[T](s, name, opts, true, func(h *handler) middleware.Handler {
		b := &batcher[T]{
			name:     name,
			policy:   h.policy.Batch,
			timeout:  h.policy.Timeout,
			fn:       fn,
			recorder: s.recorder,
		}
		h.batch = b
		decode := decoder[T](s)
		return func(ctx context.Context, d *middleware.Delivery) error {
			ev, err := decode(d)
			if err != nil {
				return err // never joins a batch: dead-lettered on its own
			}
			var stopping <-chan struct{}
			if d.Slot != nil {
				stopping = d.Slot.Stopping()
			}
			it := Item[T]{Event: ev, ID: d.Envelope.ID, Key: d.Envelope.Key, Attempt: d.Attempt, ctx: ctx}
			if err := b.handle(ctx, stopping, it); err != nil {
				return err
			}
			s.recorder.Handled(name, time.Since(d.Received))
			return nil
		}
	})
}

// batchRunner is what the runtime asks of a batch handler's batcher.
type batchRunner interface {
	// start gives the batcher the context its calls run under, the
	// service's handler context of the Run that starts.
	start(handlerCtx context.Context)
}

// batcher gathers the attempts of one batch handler into batches. Each
// attempt runs in its own worker, through its own stack; its terminal
// joins the open batch and waits for the item's outcome. Whoever closes a
// batch calls fn for it: the attempt that filled it, the window's timer,
// or an attempt that saw the subscription stop (so that a shutdown hands
// the gathering batch over at once instead of waiting out the window).
type batcher[T any] struct {
	name     string
	policy   BatchPolicy
	timeout  time.Duration
	fn       func(context.Context, []Item[T]) error
	recorder metrics.Recorder
	base     atomic.Pointer[context.Context]

	mu   sync.Mutex
	open *gathering[T]
}

// gathering is one batch, from its first item to its outcomes.
type gathering[T any] struct {
	entries []*entry[T]
	live    int           // entries not withdrawn: what counts against Size
	taken   bool          // closed to new items; fn is called or about to be
	done    chan struct{} // closed once every entry has its outcome
	timer   *time.Timer
}

type entry[T any] struct {
	item Item[T]
	err  error
	gone bool // withdrawn before the batch was taken: its attempt ended
}

func (b *batcher[T]) start(ctx context.Context) { b.base.Store(&ctx) }

// handle adds it to the open batch and returns its outcome.
func (b *batcher[T]) handle(ctx context.Context, stopping <-chan struct{}, it Item[T]) error {
	g, e, full := b.join(it)
	if full {
		b.run(g)
		return e.err
	}
	select {
	case <-g.done:
	case <-stopping:
		b.flush(g)
		<-g.done
	case <-ctx.Done():
		if b.withdraw(g, e) {
			return ctx.Err()
		}
		<-g.done // fn has it: its outcome stands
	}
	return e.err
}

// join adds it to the open batch, opening one if needed; full reports that
// it filled the batch, which the caller then runs.
func (b *batcher[T]) join(it Item[T]) (g *gathering[T], e *entry[T], full bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	g = b.open
	if g == nil {
		g = &gathering[T]{entries: make([]*entry[T], 0, min(b.policy.Size, 64)), done: make(chan struct{})}
		b.open = g
		if b.policy.Size > 1 {
			g.timer = time.AfterFunc(b.policy.Window, func() { b.flush(g) })
		}
	}
	e = &entry[T]{item: it}
	g.entries = append(g.entries, e)
	g.live++
	if g.live >= b.policy.Size {
		b.takeLocked(g)
		return g, e, true
	}
	return g, e, false
}

func (b *batcher[T]) takeLocked(g *gathering[T]) {
	g.taken = true
	if b.open == g {
		b.open = nil
	}
	if g.timer != nil {
		g.timer.Stop()
	}
}

// flush closes g, if no one did yet, and runs it.
func (b *batcher[T]) flush(g *gathering[T]) {
	b.mu.Lock()
	if g.taken {
		b.mu.Unlock()
		return
	}
	b.takeLocked(g)
	b.mu.Unlock()
	b.run(g)
}

// withdraw takes e out of g unless g was taken already.
func (b *batcher[T]) withdraw(g *gathering[T], e *entry[T]) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if g.taken {
		return false
	}
	e.gone = true
	g.live--
	return true
}

// run calls fn for the items of g and gives each entry its outcome.
func (b *batcher[T]) run(g *gathering[T]) {
	defer close(g.done)
	live := make([]*entry[T], 0, len(g.entries))
	for _, e := range g.entries {
		if !e.gone {
			live = append(live, e)
		}
	}
	if len(live) == 0 {
		return
	}
	items := make([]Item[T], len(live))
	for i, e := range live {
		items[i] = e.item
	}
	ctx := context.Background()
	if p := b.base.Load(); p != nil {
		ctx = *p
	}
	if b.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, b.timeout, middleware.ErrTimeout)
		defer cancel()
	}
	start := time.Now()
	err := b.call(ctx, items)
	if r, ok := b.recorder.(metrics.BatchRecorder); ok {
		r.Batch(b.name, len(items), time.Since(start))
	}
	outcome := b.outcomes(err, live)
	timedOut := errors.Is(context.Cause(ctx), middleware.ErrTimeout)
	for _, e := range live {
		e.err = outcome(e.item.ID)
		if e.err != nil && timedOut {
			e.err = fmt.Errorf("%w after %s: %w", middleware.ErrTimeout, b.timeout, e.err)
		}
	}
}

// call runs fn, turning a panic into an error for every item.
func (b *batcher[T]) call(ctx context.Context, items []Item[T]) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = failure.NewPanicError(r)
		}
	}()
	return b.fn(ctx, items)
}

// outcomes returns each item's error, by id, given fn's error.
func (b *batcher[T]) outcomes(err error, live []*entry[T]) func(id string) error {
	var be BatchErrors
	if err == nil || !errors.As(err, &be) {
		return func(string) error { return err }
	}
	ids := make(map[string]bool, len(live))
	for _, e := range live {
		ids[e.item.ID] = true
	}
	for _, id := range slices.Sorted(maps.Keys(be)) {
		if !ids[id] {
			// A slip (an id of the event's own instead of Item.ID): the
			// items it meant to fail must not be acked, so none is.
			err := fmt.Errorf("batch handler %q returned an outcome for message %q, which is not in its batch (key BatchErrors by Item.ID): every message of the batch fails", b.name, id)
			return func(string) error { return err }
		}
	}
	return func(id string) error { return be[id] }
}

// batchSubscription is the size of a batch handler's subscription: its
// workers, one per message of Concurrency batches gathering or running at
// once, and the prefetch that lets them fill (the policy's, if set).
// Ordered subscriptions keep the adapter's ordered prefetch unless set.
func batchSubscription(p Policy) (workers, prefetch int) {
	workers = p.Concurrency * p.Batch.Size
	prefetch = p.Prefetch
	if prefetch == 0 && !p.IsOrdered() {
		prefetch = workers
	}
	return workers, prefetch
}

// describeBatch says how the handler gathers batches, for the report.
func describeBatch(h *handler) string {
	if h.batch == nil {
		return "none"
	}
	p := h.policy
	prefetch := "the adapter's"
	if _, n := batchSubscription(p); n > 0 {
		prefetch = fmt.Sprint(n)
	}
	return fmt.Sprintf("up to %d messages, or what arrived within %s of the first; %d batch(es) at once; at most one message of a key per batch; prefetch %s",
		p.Batch.Size, p.Batch.Window, p.Concurrency, prefetch)
}
