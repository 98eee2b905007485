package switchyardtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/goleak"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// TB is what the harness needs of a test: *testing.T and *testing.B
// satisfy it; [Standalone] gives one for Example functions and programs.
type TB interface {
	Helper()
	Cleanup(func())
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// Define registers a service's handlers and policies on svc. Write it once
// and use it in main, in [Start] and in package conformance.
type Define func(svc *service.Service) error

// DefaultTimeout bounds every wait of a harness unless [Timeout] says
// otherwise.
const DefaultTimeout = 10 * time.Second

// Option configures [Start].
type Option func(*settings)

type settings struct {
	svcOpts  []service.Option
	memCfg   memory.Config
	clock    *Clock
	manual   bool
	timeout  time.Duration
	settle   time.Duration
	logger   *slog.Logger
	level    slog.Level
	leaks    bool
	leakOpts []goleak.Option
	codec    event.Codec
}

// ServiceOptions passes options to [service.New] (source, defaults,
// overrides, idempotency, middleware...). The harness's own go first, so
// yours win, except that the harness always installs its clock, its
// [Probe] and its recorder.
func ServiceOptions(opts ...service.Option) Option {
	return func(s *settings) { s.svcOpts = append(s.svcOpts, opts...) }
}

// MemoryConfig configures the in-memory broker. Zero fields take the
// harness's defaults: the memory broker's, except a nack backoff of 1ms
// (up to 20ms) so that redeliveries do not slow tests down.
func MemoryConfig(c memory.Config) Option { return func(s *settings) { s.memCfg = c } }

// WithClock makes the harness use c (to share it with an idempotency
// store, say). Default: [NewClock] at [DefaultStart].
func WithClock(c *Clock) Option { return func(s *settings) { s.clock = c } }

// ManualClock makes the harness clock manual: retry backoffs and delayed
// retries wait until the test calls [Clock.Advance].
func ManualClock() Option { return func(s *settings) { s.manual = true } }

// Timeout bounds each wait of the harness (start, WaitIdle, WaitFor, Stop).
// Default [DefaultTimeout].
func Timeout(d time.Duration) Option { return func(s *settings) { s.timeout = d } }

// Settle is how long the service must stay idle for [Harness.WaitIdle].
// Default 10ms.
func Settle(d time.Duration) Option { return func(s *settings) { s.settle = d } }

// Logger sends the service's and the broker's logs to l instead of the
// test log.
func Logger(l *slog.Logger) Option { return func(s *settings) { s.logger = l } }

// LogLevel is the lowest level written to the test log. Default warn:
// retries and dead letters show, the startup report does not.
func LogLevel(l slog.Level) Option { return func(s *settings) { s.level = l } }

// SkipLeakCheck turns off the goroutine leak check of [Harness.Stop], for
// tests that run in parallel with others (the check cannot tell their
// goroutines from the harness's).
func SkipLeakCheck() Option { return func(s *settings) { s.leaks = false } }

// IgnoreGoroutines adds goleak options to the leak check, for goroutines
// your handlers start on purpose and outlive the service.
func IgnoreGoroutines(opts ...goleak.Option) Option {
	return func(s *settings) { s.leakOpts = append(s.leakOpts, opts...) }
}

// Codec is the codec of the service (it is passed to it) and of the
// harness's decoding and Send. Default JSON.
func Codec(c event.Codec) Option {
	return func(s *settings) { s.codec = c }
}

// Harness runs one service on an in-memory broker for a test, records what
// happens and answers questions about it. Create it with [Start]. Its
// methods must be called from the test's goroutine, like t.Fatal.
type Harness struct {
	tb     TB
	set    settings
	define Define
	broker *testBroker
	clock  *Clock
	probe  *Probe
	log    *publishLog
	logOut *testWriter
	leakOK goleak.Option // goroutines that ran before Start

	mu      sync.Mutex
	svc     *service.Service
	cancel  context.CancelFunc
	done    chan error
	runs    int
	stopped atomic.Bool
}

// Start creates an in-memory broker and a service on it, calls define to
// register the handlers, runs the service and waits until it is subscribed.
// The test's cleanup calls [Harness.Stop].
func Start(tb TB, define Define, opts ...Option) *Harness {
	tb.Helper()
	set := settings{timeout: DefaultTimeout, settle: 10 * time.Millisecond, level: slog.LevelWarn, leaks: true, codec: event.JSON{}}
	for _, o := range opts {
		o(&set)
	}
	h := &Harness{tb: tb, set: set, define: define, probe: NewProbe(), log: newPublishLog(), leakOK: goleak.IgnoreCurrent()}
	h.clock = set.clock
	if h.clock == nil {
		h.clock = newClock(time.Time{}, set.manual)
	}
	logger := set.logger
	if logger == nil {
		h.logOut = &testWriter{tb: tb}
		logger = slog.New(slog.NewTextHandler(h.logOut, &slog.HandlerOptions{Level: set.level}))
	}
	h.set.logger = logger
	cfg := set.memCfg
	if cfg.NackBackoff == 0 {
		cfg.NackBackoff = time.Millisecond
		if cfg.MaxNackBackoff == 0 {
			cfg.MaxNackBackoff = 20 * time.Millisecond
		}
	}
	mb, err := memory.New(cfg, logger)
	if err != nil {
		tb.Fatalf("switchyardtest: %v", err)
	}
	h.broker = &testBroker{Broker: mb, clock: h.clock, log: h.log}
	tb.Cleanup(h.Stop)
	h.startService()
	return h
}

// startService makes a new service on the broker, defines it and runs it.
func (h *Harness) startService() {
	h.tb.Helper()
	opts := []service.Option{
		service.WithLogger(h.set.logger),
		service.WithSource("switchyardtest"),
		service.WithShutdownTimeout(h.set.timeout),
		service.WithCodec(h.set.codec),
	}
	h.mu.Lock()
	h.runs++
	instance := fmt.Sprintf("run-%d", h.runs)
	h.mu.Unlock()
	opts = append(opts, h.probe.Options(instance)...)
	opts = append(opts, h.set.svcOpts...)
	opts = append(opts, service.WithClock(h.clock))
	svc := service.New(h.broker, opts...)
	if err := svc.Err(); err != nil {
		h.tb.Fatalf("switchyardtest: %v", err)
	}
	if h.define != nil {
		if err := h.define(svc); err != nil {
			h.tb.Fatalf("switchyardtest: define the service: %v", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	timer := time.NewTimer(h.set.timeout)
	defer timer.Stop()
	select {
	case <-svc.Ready():
	case err := <-done:
		cancel()
		h.tb.Fatalf("switchyardtest: the service did not start: %v", err)
	case <-timer.C:
		cancel()
		h.tb.Fatalf("switchyardtest: the service was not subscribed after %s", h.set.timeout)
	}
	h.mu.Lock()
	h.svc, h.cancel, h.done = svc, cancel, done
	h.mu.Unlock()
}

// stopService stops the running service gracefully and reports what Run
// returned.
func (h *Harness) stopService() {
	h.tb.Helper()
	h.mu.Lock()
	cancel, done := h.cancel, h.done
	h.cancel, h.done = nil, nil
	h.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	timer := time.NewTimer(h.set.timeout + 5*time.Second)
	defer timer.Stop()
	select {
	case err := <-done:
		if err != nil {
			h.tb.Errorf("switchyardtest: the service's Run returned: %v", err)
		}
	case <-timer.C:
		h.tb.Errorf("switchyardtest: the service did not stop within %s\nin flight:\n%s", h.set.timeout+5*time.Second, h.probe.Journal(20))
	}
}

// Restart stops the service gracefully (in-flight handlers finish, what
// was not started goes back to the broker) and starts a new one on the same
// broker, defined again, as a redeployment would. Records are kept.
func (h *Harness) Restart() {
	h.tb.Helper()
	h.stopService()
	h.startService()
}

// Stop stops the service gracefully and closes the broker, then fails the
// test if goroutines started since Start are still running (unless
// [SkipLeakCheck]). It is idempotent; the test's cleanup calls it.
func (h *Harness) Stop() {
	h.tb.Helper()
	if h.stopped.Swap(true) {
		return
	}
	h.stopService()
	_ = h.broker.Close()
	if h.set.leaks {
		if err := goleak.Find(append([]goleak.Option{h.leakOK}, h.set.leakOpts...)...); err != nil {
			h.tb.Errorf("switchyardtest: goroutines leaked after Stop (a handler or middleware that outlives its context?):\n%v", err)
		}
	}
	if h.logOut != nil {
		h.logOut.close()
	}
}

// Service returns the running service, for Publish and reports.
func (h *Harness) Service() *service.Service {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.svc
}

// Broker returns the in-memory broker under the harness (Depth, Stats,
// Browse, Idle...).
func (h *Harness) Broker() *memory.Broker { return h.broker.Broker }

// Clock returns the harness's clock.
func (h *Harness) Clock() *Clock { return h.clock }

// Probe returns the probe that watches every attempt (and can fail or hold
// them: [Probe.Inject]).
func (h *Harness) Probe() *Probe { return h.probe }

// Counts returns what the runtime reported for handler ("" for every
// handler).
func (h *Harness) Counts(handler string) Counts { return h.probe.Counts(handler) }

// Attempts returns every attempt of handler ("" for every handler), in the
// order they started.
func (h *Harness) Attempts(handler string) []Attempt { return h.probe.Attempts(handler) }

// Journal describes what happened: the messages that went to the broker
// and the handlers' attempts, the last 50 of each. Failure messages of the
// harness end with it.
func (h *Harness) Journal() string {
	return "messages to the broker:\n" + h.log.journal(50) + "attempts:\n" + h.probe.Journal(50)
}

// Publish publishes e through the service, as code outside a handler
// would (a chain of its own, see [service.Service.Publish]); a failure
// fails the test.
func (h *Harness) Publish(e event.Event, opts ...service.PublishOption) {
	h.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), h.set.timeout)
	defer cancel()
	if err := h.Service().Publish(ctx, e, opts...); err != nil {
		h.tb.Fatalf("switchyardtest: publish %s: %v", e.EventType(), err)
	}
}

// WaitIdle waits until nothing is queued, in flight or delayed for every
// consumer group, and it stayed so for the settle time ([Settle]): every
// consequence of what was published has played out. Dead letters kept for
// operators do not count. It fails the test after the harness timeout,
// saying what is still pending.
func (h *Harness) WaitIdle() {
	h.tb.Helper()
	if err := h.waitIdle(); err != nil {
		h.tb.Fatalf("switchyardtest: WaitIdle: %v\n%s", err, h.Journal())
	}
}

func (h *Harness) waitIdle() error {
	deadline := time.NewTimer(h.set.timeout)
	defer deadline.Stop()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	var since time.Time
	for {
		waits, _ := h.clock.Waiting()
		idle := h.broker.Idle() && waits == 0 && h.probe.InFlight() == 0
		switch {
		case !idle:
			since = time.Time{}
		case since.IsZero():
			since = time.Now()
		case time.Since(since) >= h.set.settle:
			return nil
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			return h.pending()
		}
	}
}

// pending describes what keeps the service busy.
func (h *Harness) pending() error {
	var parts []string
	for _, q := range h.broker.Stats() {
		if q.Group == "" || q.Queued+q.InFlight+q.Delayed == 0 {
			continue
		}
		parts = append(parts, fmt.Sprintf("group %q on %q: %d queued, %d in flight, %d delayed", q.Group, q.Topic, q.Queued, q.InFlight, q.Delayed))
	}
	if n, next := h.clock.Waiting(); n > 0 {
		parts = append(parts, fmt.Sprintf("%d waits on the manual clock, the next ends in %s: call Clock().Advance", n, next))
	}
	if n := h.probe.InFlight(); n > 0 {
		parts = append(parts, fmt.Sprintf("%d attempts running", n))
	}
	if len(parts) == 0 {
		parts = append(parts, "busy again and again: something keeps publishing")
	}
	return fmt.Errorf("not idle after %s: %s", h.set.timeout, strings.Join(parts, "; "))
}

// waitChange blocks until the probe, the log or the clock changes, a
// millisecond passes (for the broker's own state), or the deadline.
func (h *Harness) waitChange(deadline <-chan time.Time) bool {
	t := time.NewTimer(time.Millisecond)
	defer t.Stop()
	select {
	case <-h.probe.Changed():
	case <-h.log.Changed():
	case <-h.clock.Changed():
	case <-t.C:
	case <-deadline:
		return false
	}
	return true
}

// Eventually waits until cond holds, re-checking it whenever something
// happens, and fails the test with the journal after the harness timeout.
func (h *Harness) Eventually(what string, cond func() bool) {
	h.tb.Helper()
	deadline := time.NewTimer(h.set.timeout)
	defer deadline.Stop()
	for !cond() {
		if !h.waitChange(deadline.C) {
			h.tb.Fatalf("switchyardtest: timed out after %s waiting for %s\n%s", h.set.timeout, what, h.Journal())
		}
	}
}

// testWriter writes log lines to the test log until the harness stopped:
// a test log written after the test ended panics.
type testWriter struct {
	mu     sync.Mutex
	tb     TB
	closed bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.tb.Logf("%s", strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}

// Standalone returns a [TB] for Example functions and programs, where no
// *testing.T exists: a failure panics with its message, Logf discards, and
// Close runs the cleanups (Stop) in reverse order. In a test, pass t.
func Standalone() *StandaloneTB { return &StandaloneTB{} }

// StandaloneTB is the [TB] of [Standalone].
type StandaloneTB struct {
	mu       sync.Mutex
	cleanups []func()
	failed   []string
}

func (s *StandaloneTB) Helper()             {}
func (s *StandaloneTB) Logf(string, ...any) {}
func (s *StandaloneTB) Cleanup(fn func()) {
	s.mu.Lock()
	s.cleanups = append(s.cleanups, fn)
	s.mu.Unlock()
}
func (s *StandaloneTB) Fatalf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }

// Errorf records the failure; Close panics with every one recorded.
func (s *StandaloneTB) Errorf(f string, a ...any) {
	s.mu.Lock()
	s.failed = append(s.failed, fmt.Sprintf(f, a...))
	s.mu.Unlock()
}

// Close runs the cleanups, then panics if anything failed.
func (s *StandaloneTB) Close() {
	s.mu.Lock()
	fns := s.cleanups
	s.cleanups = nil
	s.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.failed) > 0 {
		panic(errors.New(strings.Join(s.failed, "\n")))
	}
}
