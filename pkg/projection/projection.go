package projection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/eventstore"
	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// ErrRebuildSuperseded is returned by [Projection.Rebuild] when the
// rebuild it was running was finished or replaced by another one (another
// process ran Rebuild too).
var ErrRebuildSuperseded = errors.New("projection: rebuild superseded")

var nameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,47}$`)

// Projection is a named read model built from typed events. Register its
// handlers with [Handle]; feed it from the event store with
// [Projection.Run] or from a broker with [Projection.Subscribe]; rebuild
// it with [Projection.Rebuild]. Its methods are safe for concurrent use.
type Projection struct {
	name     string
	store    Store
	dec      *eventstore.Decoder
	handlers map[string]func(context.Context, event.Event) error
	subs     []func(svc *service.Service, opts []service.HandlerOption) error

	setup      func(ctx context.Context, target string) error
	onSwitch   func(ctx context.Context, from, to string) error
	targetName func(generation int) string
	batch      int
	poll       time.Duration
	wake       <-chan struct{}
	logger     *slog.Logger
	// brokerFed and storeFed say how this process feeds the projection:
	// a rebuild marks the events it replays seen unless it is known to
	// be fed by the store only (see Rebuild).
	brokerFed, storeFed atomic.Bool

	mu     sync.Mutex
	status Status
}

// Option configures a [Projection].
type Option func(*Projection)

// WithSetup sets fn to prepare a new target before anything is written to
// it: the first one, and each rebuild's (create the table). It runs in the
// unit of work that records the target, so on PostgreSQL the table and the
// checkpoint that names it commit together.
func WithSetup(fn func(ctx context.Context, target string) error) Option {
	return func(p *Projection) { p.setup = fn }
}

// WithSwitch sets fn to run when a target becomes live, in the same unit
// of work as the checkpoint that makes it live: the first target (from is
// empty) and each rebuild's, when it replaces from. On PostgreSQL: create
// or replace the view readers query, drop the old table. Readers that look
// the target up ([Projection.Target]) need none.
func WithSwitch(fn func(ctx context.Context, from, to string) error) Option {
	return func(p *Projection) { p.onSwitch = fn }
}

// WithTargetName sets how targets are named from their generation (1,
// 2, ...). Default: the projection name, "_v" and the generation
// ("order_summaries_v1").
func WithTargetName(fn func(generation int) string) Option {
	return func(p *Projection) { p.targetName = fn }
}

// WithBatchSize sets how many events [Projection.Run] and
// [Projection.Rebuild] apply per unit of work. Default 100.
func WithBatchSize(n int) Option { return func(p *Projection) { p.batch = n } }

// WithPollInterval sets how often a caught-up [Projection.Run] looks for
// new events. Default 200ms.
func WithPollInterval(d time.Duration) Option { return func(p *Projection) { p.poll = d } }

// WithWake makes a caught-up [Projection.Run] look for new events at once
// when ch receives (see eventstore.SubscriptionConfig.Wake). A receive
// takes the wake-up: give each projection a channel of its own.
func WithWake(ch <-chan struct{}) Option { return func(p *Projection) { p.wake = ch } }

// WithLogger sets the logger; nil discards.
func WithLogger(l *slog.Logger) Option { return func(p *Projection) { p.logger = l } }

// New returns a projection named name (lowercase letters, digits and
// underscores: it names the checkpoint and the default targets), keeping
// its checkpoint in store and decoding events with dec (nil: a new
// decoder; pass the service's to share its upcasters).
func New(name string, store Store, dec *eventstore.Decoder, opts ...Option) (*Projection, error) {
	p := &Projection{name: name, store: store, dec: dec, handlers: map[string]func(context.Context, event.Event) error{}}
	for _, o := range opts {
		o(p)
	}
	var err error
	if !nameRE.MatchString(name) {
		err = errors.Join(err, fmt.Errorf("projection: name %q, want [a-z_][a-z0-9_]* of at most 48 characters", name))
	}
	if store == nil {
		err = errors.Join(err, fmt.Errorf("projection %q: store: required", name))
	}
	if p.batch < 0 {
		err = errors.Join(err, fmt.Errorf("projection %q: batch size %d, want >= 1 (0: 100)", name, p.batch))
	}
	if p.poll < 0 {
		err = errors.Join(err, fmt.Errorf("projection %q: poll interval %v, want > 0 (0: 200ms)", name, p.poll))
	}
	if err != nil {
		return nil, err
	}
	if p.dec == nil {
		p.dec = eventstore.NewDecoder(nil, nil)
	}
	if p.targetName == nil {
		p.targetName = func(g int) string { return fmt.Sprintf("%s_v%d", name, g) }
	}
	if p.batch == 0 {
		p.batch = 100
	}
	if p.poll == 0 {
		p.poll = 200 * time.Millisecond
	}
	if p.logger == nil {
		p.logger = slog.New(slog.DiscardHandler)
	}
	p.status.Name = name
	return p, nil
}

// Name returns the projection's name.
func (p *Projection) Name() string { return p.name }

// Handle makes p apply events of type T with fn, and registers T with p's
// decoder. fn writes to the read model named by [Target](ctx), through
// the unit of work in ctx (postgres.TxFrom(ctx) on PostgreSQL); an error
// rolls the unit of work back and it is tried again. Register every
// handler before Run or Subscribe.
func Handle[T event.Event](p *Projection, fn func(ctx context.Context, e T) error) error {
	var zero T
	typ := zero.EventType()
	if _, dup := p.handlers[typ]; dup {
		return fmt.Errorf("projection %q: a handler for %s is already registered", p.name, typ)
	}
	if err := eventstore.Register[T](p.dec); err != nil {
		return fmt.Errorf("projection %q: %w", p.name, err)
	}
	p.handlers[typ] = func(ctx context.Context, e event.Event) error { return fn(ctx, e.(T)) }
	p.subs = append(p.subs, func(svc *service.Service, opts []service.HandlerOption) error {
		opts = append([]service.HandlerOption{service.Group(p.name), service.Concurrency(1)}, opts...)
		return service.Handle(svc, p.name+"."+typ, func(ctx context.Context, e T) error {
			return p.applyMessage(ctx, e)
		}, opts...)
	})
	return nil
}

// Types returns the event types p handles, sorted.
func (p *Projection) Types() []string {
	var ts []string
	for t := range p.handlers {
		ts = append(ts, t)
	}
	slices.Sort(ts)
	return ts
}

type ctxKey struct{}

type applyInfo struct {
	target string
	env    event.Envelope
}

// Target returns the read model the event being handled goes to (a table
// name on PostgreSQL); empty outside a projection handler.
func Target(ctx context.Context) string {
	i, _ := ctx.Value(ctxKey{}).(*applyInfo)
	if i == nil {
		return ""
	}
	return i.target
}

// Envelope returns the envelope of the event being handled (its id, stream
// key, time); the zero value outside a projection handler.
func Envelope(ctx context.Context) event.Envelope {
	i, _ := ctx.Value(ctxKey{}).(*applyInfo)
	if i == nil {
		return event.Envelope{}
	}
	return i.env
}

// begin opens a unit of work and makes sure the projection has a target,
// creating the first one.
func (p *Projection) begin(ctx context.Context) (Tx, Checkpoint, error) {
	tx, err := p.store.Begin(ctx, p.name)
	if err != nil {
		return nil, Checkpoint{}, err
	}
	cp := tx.Checkpoint()
	if cp.Target == "" {
		cp.Generation = 1
		cp.Target = p.targetName(1)
		if err := p.runSetup(ctx, tx, cp.Target); err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
			return nil, Checkpoint{}, err
		}
		if err := p.runSwitch(ctx, tx, "", cp.Target); err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
			return nil, Checkpoint{}, err
		}
	}
	return tx, cp, nil
}

func (p *Projection) runSwitch(ctx context.Context, tx Tx, from, to string) error {
	if p.onSwitch == nil {
		return nil
	}
	if err := recovered(func() error { return p.onSwitch(tx.Context(ctx), from, to) }); err != nil {
		return fmt.Errorf("projection %q: switch %q to %q: %w", p.name, from, to, err)
	}
	return nil
}

func (p *Projection) runSetup(ctx context.Context, tx Tx, target string) error {
	if p.setup == nil {
		return nil
	}
	if err := recovered(func() error { return p.setup(tx.Context(ctx), target) }); err != nil {
		return fmt.Errorf("projection %q: set up %q: %w", p.name, target, err)
	}
	return nil
}

// recovered runs fn, turning a panic into a permanent error of reason
// panic: Run and Rebuild run user code on their own goroutine, where a
// panic would take the whole process down, not just the projection. As
// for a service handler, a panic is a bug, not worth retrying: Run stops
// with the checkpoint before the event.
func recovered(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = failure.WithReason(failure.ReasonPanic, failure.NewPanicError(r))
		}
	}()
	return fn()
}

// apply decodes rec and runs its handler against target; events of types
// without a handler are skipped.
func (p *Projection) apply(ctx context.Context, tx Tx, target string, rec eventstore.Record, dedupe bool) error {
	h, ok := p.handlers[rec.Envelope.Type]
	if !ok {
		return nil
	}
	if dedupe {
		seen, err := tx.MarkSeen(ctx, target, rec.Envelope.ID)
		if err != nil {
			return fmt.Errorf("projection %q: mark %s seen: %w", p.name, rec.Envelope.ID, err)
		}
		if seen {
			return nil
		}
	}
	e, err := p.dec.Decode(rec)
	if err != nil {
		return fmt.Errorf("projection %q: position %d: %w", p.name, rec.Position, err)
	}
	hctx := context.WithValue(tx.Context(ctx), ctxKey{}, &applyInfo{target: target, env: rec.Envelope})
	if err := recovered(func() error { return h(hctx, e) }); err != nil {
		return fmt.Errorf("projection %q: %s at position %d (%s version %d): %w", p.name, rec.Envelope.Type, rec.Position, rec.StreamID, rec.Version, err)
	}
	return nil
}

// Run feeds p from src's global stream, from its checkpoint: history in
// batches, then new events as they commit, each batch applied and
// checkpointed in one unit of work. It blocks until ctx ends (then it
// returns nil) or an event cannot be applied for good (an undecodable
// event, a permanent handler error, a panic in a handler: Run returns it,
// and the checkpoint stays before it). Other errors are retried with
// backoff, except one before the first read (the store unreachable at
// start), which Run returns. Several processes may run the same
// projection: the store's lock lets one batch at a time commit, and a
// process whose checkpoint was moved continues from the new one.
func (p *Projection) Run(ctx context.Context, src eventstore.AllReader) error {
	p.storeFed.Store(true)
	tx, cp, err := p.begin(ctx)
	if err != nil {
		return p.stopped(ctx, err)
	}
	if err := tx.Commit(ctx, cp); err != nil {
		return p.stopped(ctx, fmt.Errorf("projection %q: commit: %w", p.name, err))
	}
	p.observe(cp, nil)
	sub, err := eventstore.NewSubscription(src, cp.Position, eventstore.SubscriptionConfig{
		Types: p.Types(), BatchSize: p.batch, PollInterval: p.poll, Wake: p.wake,
	})
	if err != nil {
		return err
	}
	p.setRunning(true)
	defer p.setRunning(false)
	backoff := p.poll
	wake := p.wake
	var wait *time.Timer
	for {
		from := sub.Position()
		recs, err := sub.Read(ctx)
		if err == nil && len(recs) == 0 {
			// Caught up: note the head, wait for new events.
			p.observeIdle(sub)
			if wait == nil {
				wait = time.NewTimer(p.poll)
				defer wait.Stop()
			} else {
				wait.Reset(p.poll)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-wait.C:
			case _, ok := <-wake:
				if !ok {
					wake = nil // closed (its listener stopped): poll only
				}
			}
			continue
		}
		if err == nil {
			err = p.applyBatch(ctx, sub, from, recs)
		}
		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil:
			backoff = p.poll
			continue
		case failure.IsPermanent(err):
			p.setError(err)
			return err
		}
		p.setError(err)
		p.logger.LogAttrs(ctx, slog.LevelWarn, "projection batch failed, retrying",
			slog.String("projection", p.name), slog.Int64("after", from), slog.Any("error", err))
		sub.SetPosition(from)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (p *Projection) stopped(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// applyBatch applies recs, read after position from, in one unit of work.
// When an event fails for good, the events before it are applied in a unit
// of work of their own, so that the checkpoint stops right before it.
func (p *Projection) applyBatch(ctx context.Context, sub *eventstore.Subscription, from int64, recs []eventstore.Record) error {
	n, err := p.commitBatch(ctx, sub, from, recs)
	if err != nil && failure.IsPermanent(err) && n > 0 {
		if _, err2 := p.commitBatch(ctx, sub, from, recs[:n]); err2 != nil {
			return errors.Join(err, err2)
		}
	}
	return err
}

// commitBatch applies recs in one unit of work; on error it returns the
// index of the event that failed.
func (p *Projection) commitBatch(ctx context.Context, sub *eventstore.Subscription, from int64, recs []eventstore.Record) (int, error) {
	tx, cp, err := p.begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if cp.Position != from {
		// Another process or a rebuild's switch moved the checkpoint:
		// what was read is stale, continue from the checkpoint.
		sub.SetPosition(cp.Position)
		p.observe(cp, sub)
		return 0, nil
	}
	for i, r := range recs {
		if err := p.apply(ctx, tx, cp.Target, r, false); err != nil {
			return i, err
		}
	}
	cp.Position = recs[len(recs)-1].Position
	if err := tx.Commit(ctx, cp); err != nil {
		return 0, fmt.Errorf("projection %q: commit at position %d: %w", p.name, cp.Position, err)
	}
	if sub.Position() != cp.Position { // a partial batch
		sub.SetPosition(cp.Position)
	}
	p.observe(cp, sub)
	p.applied(len(recs))
	return len(recs), nil
}

// Subscribe feeds p from the broker: for each event type it registers a
// service handler named "<projection>.<event type>" in consumer group
// named after the projection (opts may override both, or set the topic).
// Each message is applied in a unit of work of its own that also records
// its message id, so a redelivered message changes nothing: exactly-once
// effects on PostgreSQL. Units of work of one projection run one at a
// time, so the handlers' concurrency defaults to 1 (more only lets
// deliveries wait in the store's turn).
func (p *Projection) Subscribe(svc *service.Service, opts ...service.HandlerOption) error {
	p.brokerFed.Store(true)
	for _, s := range p.subs {
		if err := s(svc, opts); err != nil {
			return fmt.Errorf("projection %q: %w", p.name, err)
		}
	}
	return nil
}

func (p *Projection) applyMessage(ctx context.Context, e event.Event) error {
	d := middleware.DeliveryFrom(ctx)
	if d == nil {
		return fmt.Errorf("projection %q: applyMessage outside a service delivery", p.name)
	}
	tx, cp, err := p.begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	seen, err := tx.MarkSeen(ctx, cp.Target, d.Envelope.ID)
	if err != nil {
		return fmt.Errorf("projection %q: mark %s seen: %w", p.name, d.Envelope.ID, err)
	}
	if !seen {
		hctx := context.WithValue(tx.Context(ctx), ctxKey{}, &applyInfo{target: cp.Target, env: d.Envelope})
		if err := p.handlers[e.EventType()](hctx, e); err != nil {
			return err
		}
	}
	if err := tx.Commit(ctx, cp); err != nil {
		return fmt.Errorf("projection %q: commit %s: %w", p.name, d.Envelope.ID, err)
	}
	p.observe(cp, nil)
	if !seen {
		p.applied(1)
	}
	return nil
}

// Rebuild replays every event of src from position zero into a new target
// while the live one keeps serving, then switches: in one unit of work it
// applies what committed meanwhile, runs the [WithSwitch] function and
// makes the new target live. It returns once switched, or when ctx ends
// (the rebuild's progress is checkpointed: a later Rebuild resumes it).
// The events it replays are marked seen in the new target (by message id),
// so that a broker-fed projection's deliveries after the switch of events
// the rebuild already applied (a consumer group's backlog) change
// nothing; only a process that runs the projection with Run and never
// Subscribe skips that.
func (p *Projection) Rebuild(ctx context.Context, src eventstore.AllReader) error {
	tx, cp, err := p.begin(ctx)
	if err != nil {
		return err
	}
	if cp.Rebuild == nil {
		g := cp.Generation + 1
		cp.Rebuild = &RebuildState{Target: p.targetName(g), Generation: g}
		if err := p.runSetup(ctx, tx, cp.Rebuild.Target); err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
			return err
		}
		if err := tx.Commit(ctx, cp); err != nil {
			return fmt.Errorf("projection %q: start rebuild: %w", p.name, err)
		}
	} else {
		_ = tx.Rollback(ctx)
	}
	rb := *cp.Rebuild
	p.observe(cp, nil)
	p.logger.LogAttrs(ctx, slog.LevelInfo, "projection rebuild",
		slog.String("projection", p.name), slog.String("target", rb.Target), slog.Int64("from", rb.Position))
	sub, err := eventstore.NewSubscription(src, rb.Position, eventstore.SubscriptionConfig{Types: p.Types(), BatchSize: p.batch})
	if err != nil {
		return err
	}
	for {
		from := sub.Position()
		recs, err := sub.Read(ctx)
		if err != nil {
			return err
		}
		switched, err := p.rebuildBatch(ctx, sub, rb, from, recs)
		if err != nil || switched {
			return err
		}
	}
}

// rebuildBatch applies one batch of a rebuild; with none left (caught up)
// it drains what committed since, under the projection's lock, and
// switches.
func (p *Projection) rebuildBatch(ctx context.Context, sub *eventstore.Subscription, rb RebuildState, from int64, recs []eventstore.Record) (switched bool, err error) {
	tx, cp, err := p.begin(ctx)
	if err != nil {
		return false, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if cp.Rebuild == nil || cp.Rebuild.Target != rb.Target {
		return false, fmt.Errorf("projection %q: rebuild into %q: %w", p.name, rb.Target, ErrRebuildSuperseded)
	}
	if cp.Rebuild.Position != from {
		sub.SetPosition(cp.Rebuild.Position)
		return false, nil
	}
	n, err := p.applyAll(ctx, tx, rb.Target, recs, cp.Rebuild)
	if err != nil {
		return false, err
	}
	if len(recs) == p.batch {
		// A full batch: more may follow. Commit it and go on.
		if err := tx.Commit(ctx, cp); err != nil {
			return false, fmt.Errorf("projection %q: rebuild commit at %d: %w", p.name, cp.Rebuild.Position, err)
		}
		p.observeRebuild(cp, sub)
		p.applied(n)
		return false, nil
	}
	// Caught up as of that read. This unit of work holds the projection's
	// lock, so whatever the live side applied committed before it began
	// and is visible now: read on until nothing is left, then switch.
	for {
		more, err := sub.Read(ctx)
		if err != nil {
			return false, err
		}
		if len(more) == 0 {
			break
		}
		m, err := p.applyAll(ctx, tx, rb.Target, more, cp.Rebuild)
		if err != nil {
			return false, err
		}
		n += m
	}
	old := cp.Target
	if err := p.runSwitch(ctx, tx, old, rb.Target); err != nil {
		return false, err
	}
	next := Checkpoint{Position: max(cp.Rebuild.Position, cp.Position), Target: rb.Target, Generation: rb.Generation}
	if err := tx.Commit(ctx, next); err != nil {
		return false, fmt.Errorf("projection %q: switch to %q: %w", p.name, rb.Target, err)
	}
	p.observeRebuild(next, sub)
	p.applied(n)
	p.logger.LogAttrs(ctx, slog.LevelInfo, "projection switched",
		slog.String("projection", p.name), slog.String("from", old), slog.String("to", rb.Target), slog.Int64("position", next.Position))
	return true, nil
}

// applyAll applies recs to a rebuild's target and advances its position.
func (p *Projection) applyAll(ctx context.Context, tx Tx, target string, recs []eventstore.Record, rb *RebuildState) (int, error) {
	for _, r := range recs {
		if err := p.apply(ctx, tx, target, r, p.brokerFed.Load() || !p.storeFed.Load()); err != nil {
			return 0, err
		}
		rb.Position = r.Position
	}
	return len(recs), nil
}

// Target returns the live target as of the store's checkpoint, for
// readers that look it up rather than read a view switched by
// [WithSwitch]. It does not wait for a unit of work in progress; it
// creates the first target if there is none yet.
func (p *Projection) Target(ctx context.Context) (string, error) {
	cp, err := p.store.Checkpoint(ctx, p.name)
	if err != nil {
		return "", err
	}
	if cp.Target != "" {
		return cp.Target, nil
	}
	tx, cp, err := p.begin(ctx)
	if err != nil {
		return "", err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := tx.Commit(ctx, cp); err != nil {
		return "", err
	}
	p.observe(cp, nil)
	return cp.Target, nil
}
