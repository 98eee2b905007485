package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/retry"
)

func deadLetter(pub *recordingPublisher, clock middleware.Clock, onDL func(*middleware.Delivery, failure.Reason, error)) middleware.Middleware {
	return middleware.DeadLetter(middleware.DeadLetterConfig{
		Publisher:    pub,
		Topic:        func(d *middleware.Delivery) string { return d.Handler.Group + ".dead_letter" },
		Clock:        clock,
		OnDeadLetter: onDL,
	})
}

func TestDeadLetterMetadata(t *testing.T) {
	pub := &recordingPublisher{}
	var dlReason failure.Reason
	d := newDelivery()
	d.Msg.Metadata.Set(header.RetryTarget, "inventory")
	d.Msg.Metadata.Set(header.Attempt, "2")
	d.Msg.Metadata.Set(header.FirstFailure, "2026-03-01T12:00:00Z")
	d.Attempt = 3
	d.FirstFailure = t0
	d.LastFailure = t0.Add(1500 * time.Millisecond)
	handlerErr := fmt.Errorf("gave up: %w", failure.WithReason(failure.ReasonDecode, errors.New("bad json")))
	err := middleware.Chain(func(context.Context, *middleware.Delivery) error { return handlerErr },
		deadLetter(pub, newClock(), func(_ *middleware.Delivery, r failure.Reason, _ error) { dlReason = r }))(context.Background(), d)
	if err != nil {
		t.Fatalf("err = %v, want nil after a confirmed dead-letter publish", err)
	}
	if len(pub.msgs) != 1 || pub.topics[0] != "inventory.dead_letter" {
		t.Fatalf("published %d messages to %v, want 1 to inventory.dead_letter", len(pub.msgs), pub.topics)
	}
	dl := pub.msgs[0]
	if dl.UUID != d.Msg.UUID || string(dl.Payload) != string(d.Msg.Payload) {
		t.Errorf("uuid/payload changed: %s %q", dl.UUID, dl.Payload)
	}
	want := map[string]string{
		header.DeadLetterReason:       "decode",
		header.DeadLetterError:        handlerErr.Error(),
		header.DeadLetterHandler:      "reserve",
		header.DeadLetterGroup:        "inventory",
		header.DeadLetterTopic:        "orders",
		header.DeadLetterAttempts:     "3",
		header.DeadLetterFirstFailure: "2026-03-01T12:00:00Z",
		header.DeadLetterLastFailure:  "2026-03-01T12:00:01.5Z",
		"x-custom":                    "kept",
		header.Type:                   "orders.order_placed",
		header.CorrelationID:          "corr-1",
		header.ID:                     "msg-1",
	}
	for k, v := range want {
		if got := dl.Metadata.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	for _, k := range []string{header.RetryTarget, header.Attempt, header.FirstFailure} {
		if _, ok := dl.Metadata[k]; ok {
			t.Errorf("delayed-retry header %s kept on the dead letter", k)
		}
	}
	if d.Msg.Metadata.Get(header.RetryTarget) != "inventory" {
		t.Error("the original message's headers were modified")
	}
	if dlReason != failure.ReasonDecode {
		t.Errorf("OnDeadLetter reason = %q", dlReason)
	}
}

func TestDeadLetterStampsTimesWhenUnset(t *testing.T) {
	pub := &recordingPublisher{}
	d := newDelivery()
	d.Attempt = 0
	err := deadLetter(pub, newClock(), nil)(func(context.Context, *middleware.Delivery) error { return errors.New("x") })(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	md := pub.msgs[0].Metadata
	if md.Get(header.DeadLetterFirstFailure) != "2026-03-01T12:00:00Z" || md.Get(header.DeadLetterLastFailure) != "2026-03-01T12:00:00Z" {
		t.Errorf("times = %s / %s, want the clock's now", md.Get(header.DeadLetterFirstFailure), md.Get(header.DeadLetterLastFailure))
	}
	if md.Get(header.DeadLetterAttempts) != "1" || md.Get(header.DeadLetterReason) != "retries_exhausted" {
		t.Errorf("attempts = %s, reason = %s", md.Get(header.DeadLetterAttempts), md.Get(header.DeadLetterReason))
	}
}

func TestDeadLetterPublishFails(t *testing.T) {
	errBroker := errors.New("connection refused")
	pub := &recordingPublisher{err: errBroker}
	called := false
	handlerErr := failure.Permanent(errors.New("negative total"))
	err := deadLetter(pub, newClock(), func(*middleware.Delivery, failure.Reason, error) { called = true })(
		func(context.Context, *middleware.Delivery) error { return handlerErr })(context.Background(), newDelivery())
	if err == nil {
		t.Fatal("err = nil: the message would be acked and lost")
	}
	var fpe *middleware.FailurePathError
	if !errors.As(err, &fpe) || fpe.Op != middleware.OpDeadLetter || !errors.Is(fpe.Err, errBroker) || fpe.Cause != handlerErr {
		t.Fatalf("err = %#v, want a FailurePathError with the publish and the handler error", err)
	}
	if failure.IsPermanent(err) {
		t.Error("a failed dead-letter publish reads as permanent: the runtime would give up instead of nacking")
	}
	if called {
		t.Error("OnDeadLetter called for an unconfirmed dead letter")
	}
}

func TestDeadLetterPassesShutdownThrough(t *testing.T) {
	pub := &recordingPublisher{}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := deadLetter(pub, newClock(), nil)(func(ctx context.Context, _ *middleware.Delivery) error {
		return fmt.Errorf("retry interrupted: %w", ctx.Err())
	})(ctx, newDelivery())
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled passed through", err)
	}
	if len(pub.msgs) != 0 {
		t.Errorf("dead-lettered %d messages on shutdown", len(pub.msgs))
	}
}

func TestDeadLetterSuccessPassesNil(t *testing.T) {
	pub := &recordingPublisher{}
	err := deadLetter(pub, nil, nil)(func(context.Context, *middleware.Delivery) error { return nil })(context.Background(), newDelivery())
	if err != nil || len(pub.msgs) != 0 {
		t.Errorf("err = %v, published %d", err, len(pub.msgs))
	}
}

func TestHopLimit(t *testing.T) {
	cases := []struct {
		max, hops int
		refused   bool
	}{
		{16, 16, false},
		{16, 17, true},
		{1, 0, false},
		{1, 2, true},
		{0, 1000, false},
		{-1, 1000, false},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("max=%d,hops=%d", tc.max, tc.hops), func(t *testing.T) {
			d := newDelivery()
			d.Envelope.HopCount = tc.hops
			called := false
			err := middleware.HopLimit(tc.max)(func(context.Context, *middleware.Delivery) error { called = true; return nil })(context.Background(), d)
			if !tc.refused {
				if err != nil || !called {
					t.Errorf("err = %v, called = %v; want the handler to run", err, called)
				}
				return
			}
			if called {
				t.Error("handler ran past the hop limit")
			}
			if !failure.IsPermanent(err) || failure.ReasonOf(err) != failure.ReasonHopLimit {
				t.Errorf("err = %v, want permanent with reason hop_limit", err)
			}
			for _, s := range []string{"reserve", "orders.order_placed", "corr-1"} {
				if err == nil || !strings.Contains(err.Error(), s) {
					t.Errorf("err %v does not name %q", err, s)
				}
			}
		})
	}
}

func TestTimeoutThenSuccessfulRetry(t *testing.T) {
	var retryErr error
	calls := 0
	h := func(ctx context.Context, _ *middleware.Delivery) error {
		calls++
		if calls == 1 {
			<-ctx.Done() // a handler stuck until its deadline
			return ctx.Err()
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("second attempt got an expired context: %w", err)
		}
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) <= 0 {
			return errors.New("second attempt has no fresh deadline")
		}
		return nil
	}
	err := middleware.Chain(h,
		middleware.Retry(middleware.RetryConfig{Policy: retry.Policy{MaxAttempts: 3}, Clock: newClock(),
			OnRetry: func(_ *middleware.Delivery, _ time.Duration, err error) { retryErr = err }}),
		middleware.Timeout(200*time.Millisecond), // long enough that the fresh deadline cannot pass under a loaded scheduler
	)(context.Background(), newDelivery())
	if err != nil {
		t.Fatalf("err = %v, want nil: the second attempt succeeds", err)
	}
	if calls != 2 {
		t.Errorf("calls = %d, want 2", calls)
	}
	if !errors.Is(retryErr, middleware.ErrTimeout) || !errors.Is(retryErr, context.DeadlineExceeded) {
		t.Errorf("first attempt's error = %v, want ErrTimeout wrapping DeadlineExceeded", retryErr)
	}
	if failure.IsPermanent(retryErr) {
		t.Error("a timeout must be retryable")
	}
}

func TestTimeoutDisabledAndOuterCancel(t *testing.T) {
	ctx := context.Background()
	err := middleware.Timeout(0)(func(c context.Context, _ *middleware.Delivery) error {
		if _, ok := c.Deadline(); ok {
			return errors.New("deadline set by a disabled timeout")
		}
		return nil
	})(ctx, newDelivery())
	if err != nil {
		t.Error(err)
	}
	// When the outer context ends (shutdown), the error is not called a timeout.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	err = middleware.Timeout(time.Hour)(func(c context.Context, _ *middleware.Delivery) error { return c.Err() })(cctx, newDelivery())
	if !errors.Is(err, context.Canceled) || errors.Is(err, middleware.ErrTimeout) {
		t.Errorf("err = %v, want context.Canceled and not ErrTimeout", err)
	}
}

func explodingHandler(context.Context, *middleware.Delivery) error {
	var m map[string]int
	m["boom"]++ // nil map write: a runtime panic
	return nil
}

func TestRecover(t *testing.T) {
	err := middleware.Recover()(explodingHandler)(context.Background(), newDelivery())
	var p *failure.PanicError
	if !errors.As(err, &p) {
		t.Fatalf("err = %v (%T), want *failure.PanicError", err, err)
	}
	if !strings.Contains(string(p.Stack), "middleware_test.explodingHandler") {
		t.Errorf("stack does not name the panicking function:\n%s", p.Stack)
	}
}

func TestPanicRetriedThenDeadLettered(t *testing.T) {
	pub := &recordingPublisher{}
	clock := newClock()
	calls := 0
	h := func(ctx context.Context, d *middleware.Delivery) error { calls++; return explodingHandler(ctx, d) }
	err := middleware.Chain(h,
		deadLetter(pub, clock, nil),
		middleware.Retry(middleware.RetryConfig{Policy: retry.Policy{MaxAttempts: 3}, Clock: clock}),
		middleware.Recover(),
	)(context.Background(), newDelivery())
	if err != nil {
		t.Fatalf("err = %v, want nil after dead-lettering", err)
	}
	if calls != 3 {
		t.Errorf("handler called %d times, want 3 (a panic is retried)", calls)
	}
	if len(pub.msgs) != 1 {
		t.Fatalf("dead letters = %d", len(pub.msgs))
	}
	md := pub.msgs[0].Metadata
	if md.Get(header.DeadLetterReason) != "panic" || md.Get(header.DeadLetterAttempts) != "3" {
		t.Errorf("reason = %q attempts = %q, want panic and 3", md.Get(header.DeadLetterReason), md.Get(header.DeadLetterAttempts))
	}
	if !strings.Contains(md.Get(header.DeadLetterError), "explodingHandler") {
		t.Errorf("dead-letter error lacks the stack: %q", md.Get(header.DeadLetterError))
	}
}

func TestCorrelation(t *testing.T) {
	logger, capture := newCapture()
	d := newDelivery()
	var seen *middleware.Delivery
	var corr string
	err := middleware.Chain(func(ctx context.Context, _ *middleware.Delivery) error {
		seen = middleware.DeliveryFrom(ctx)
		corr = middleware.CorrelationID(ctx)
		seen.Logger().InfoContext(ctx, "handling")
		return nil
	}, middleware.Correlation(logger))(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	if seen != d {
		t.Error("DeliveryFrom(ctx) is not the delivery")
	}
	if corr != "corr-1" {
		t.Errorf("CorrelationID = %q, want corr-1", corr)
	}
	recs := capture.Records()
	if len(recs) != 1 {
		t.Fatalf("records = %v", recs)
	}
	for k, v := range map[string]string{
		middleware.LogKeyCorrelationID: "corr-1", middleware.LogKeyCausationID: "cause-1",
		middleware.LogKeyMessageID: "msg-1", middleware.LogKeyEventType: "orders.order_placed",
		middleware.LogKeyHandler: "reserve",
	} {
		if recs[0][k] != v {
			t.Errorf("log attribute %s = %v, want %q", k, recs[0][k], v)
		}
	}

	// Outside a handler.
	bg := context.Background()
	if middleware.DeliveryFrom(bg) != nil || middleware.CorrelationID(bg) != "" {
		t.Error("a bare context has a delivery or correlation id")
	}
	if got := middleware.CorrelationID(middleware.WithCorrelationID(bg, "req-7")); got != "req-7" {
		t.Errorf("CorrelationID(WithCorrelationID) = %q", got)
	}
}

func TestRetryLogsWithCorrelation(t *testing.T) {
	logger, capture := newCapture()
	h, _ := failing(1, errTransient)
	err := middleware.Chain(h, middleware.Correlation(logger),
		middleware.Retry(middleware.RetryConfig{Clock: newClock(), Rand: func() float64 { return 0.5 }}))(context.Background(), newDelivery())
	if err != nil {
		t.Fatal(err)
	}
	recs := capture.Records()
	if len(recs) != 1 {
		t.Fatalf("records = %v, want one retry warning", recs)
	}
	r := recs[0]
	if r[middleware.LogKeyCorrelationID] != "corr-1" || r[middleware.LogKeyAttempt] != int64(1) ||
		r[middleware.LogKeyWait] != 100*time.Millisecond || r[middleware.LogKeyError] != errTransient.Error() {
		t.Errorf("retry log record = %v", r)
	}
}

func TestChainOrder(t *testing.T) {
	var order []string
	mw := func(name string) middleware.Middleware {
		return func(next middleware.Handler) middleware.Handler {
			return func(ctx context.Context, d *middleware.Delivery) error {
				order = append(order, name)
				return next(ctx, d)
			}
		}
	}
	_ = middleware.Chain(func(context.Context, *middleware.Delivery) error { order = append(order, "h"); return nil },
		mw("outer"), nil, mw("inner"))(context.Background(), newDelivery())
	if strings.Join(order, ",") != "outer,inner,h" {
		t.Errorf("order = %v", order)
	}
}

func TestTracing(t *testing.T) {
	if got := middleware.Tracing(nil)(nil); got != nil {
		t.Error("Tracing(nil) must leave the handler unwrapped")
	}
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	d := newDelivery()
	d.Envelope.TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	var inner trace.SpanContext
	err := middleware.Tracing(tp)(func(ctx context.Context, _ *middleware.Delivery) error {
		inner = trace.SpanContextFromContext(ctx)
		return errors.New("failed")
	})(context.Background(), d)
	if err == nil {
		t.Fatal("error swallowed")
	}
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("spans = %d", len(spans))
	}
	s := spans[0]
	if s.Name() != "process orders" || s.SpanKind() != trace.SpanKindConsumer {
		t.Errorf("span %q kind %v", s.Name(), s.SpanKind())
	}
	if s.Parent().TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || inner.TraceID() != s.Parent().TraceID() {
		t.Errorf("span not continued from the message's trace: parent %v", s.Parent())
	}
	if s.Status().Code.String() != "Error" || s.Status().Description != "nacked: failed" {
		t.Errorf("status = %v, want Error, \"nacked: failed\"", s.Status())
	}
}

// A handler interrupted by shutdown often reports its own error rather than
// one wrapping context.Canceled (a database driver's "conn closed", say).
// That is still a shutdown: the message must be nacked for redelivery, not
// dead-lettered after a single attempt.
func TestDeadLetterShutdownWithUnwrappedError(t *testing.T) {
	pub := &recordingPublisher{}
	ctx, cancel := context.WithCancel(context.Background())
	errAborted := errors.New("query aborted: connection closed")
	err := middleware.Chain(func(context.Context, *middleware.Delivery) error {
		cancel() // shutdown timeout passes while the handler runs
		return errAborted
	}, deadLetter(pub, newClock(), nil), middleware.Retry(middleware.RetryConfig{Clock: newClock()}))(ctx, newDelivery())
	if !errors.Is(err, errAborted) {
		t.Errorf("err = %v, want the handler's error passed through", err)
	}
	if len(pub.msgs) != 0 {
		t.Errorf("dead-lettered on shutdown with reason %q", pub.msgs[0].Metadata.Get(header.DeadLetterReason))
	}

	// A permanent error is final whatever the context: dead-letter it.
	pub = &recordingPublisher{}
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	err = deadLetter(pub, newClock(), nil)(func(context.Context, *middleware.Delivery) error {
		return failure.Permanent(errors.New("negative total"))
	})(ctx, newDelivery())
	if err != nil || len(pub.msgs) != 1 {
		t.Errorf("permanent error during shutdown: err = %v, dead letters = %d; want nil and 1", err, len(pub.msgs))
	}
}

func TestTraceCarrier(t *testing.T) {
	var env = newDelivery().Envelope
	c := middleware.TraceCarrier{Env: &env}
	c.Set("traceparent", "tp")
	c.Set("tracestate", "ts")
	c.Set("baggage", "ignored")
	if env.TraceParent != "tp" || env.TraceState != "ts" || c.Get("traceparent") != "tp" || c.Get("tracestate") != "ts" || c.Get("baggage") != "" {
		t.Errorf("carrier round trip: %+v", env)
	}
	if k := c.Keys(); len(k) != 2 {
		t.Errorf("Keys = %v", k)
	}
}

type testKey struct{}

// The handler's context behaves as the runtime's context carrying the
// delivery: values, deadline, cancellation and its cause pass through, and
// a delivery run through Correlation twice is found from both contexts.
func TestCorrelationContext(t *testing.T) {
	cause := errors.New("stopping")
	parent, cancel := context.WithCancelCause(context.WithValue(context.Background(), testKey{}, "v"))
	d := newDelivery()
	var inner, outer context.Context
	h := middleware.Chain(func(ctx context.Context, _ *middleware.Delivery) error {
		inner = ctx
		return nil
	}, middleware.Correlation(nil))
	err := middleware.Correlation(nil)(func(ctx context.Context, d *middleware.Delivery) error {
		outer = ctx
		return h(ctx, d)
	})(parent, d)
	if err != nil {
		t.Fatal(err)
	}
	for _, ctx := range []context.Context{outer, inner} {
		if middleware.DeliveryFrom(ctx) != d || middleware.CorrelationID(ctx) != "corr-1" || ctx.Value(testKey{}) != "v" {
			t.Errorf("context %v: delivery %p (want %p), correlation %q, value %v",
				ctx, middleware.DeliveryFrom(ctx), d, middleware.CorrelationID(ctx), ctx.Value(testKey{}))
		}
	}
	child, stop := context.WithTimeout(inner, time.Hour)
	defer stop()
	if middleware.DeliveryFrom(child) != d {
		t.Error("a context derived from the handler's lost the delivery")
	}
	cancel(cause)
	<-child.Done()
	if !errors.Is(inner.Err(), context.Canceled) || context.Cause(inner) != cause || context.Cause(child) != cause {
		t.Errorf("after cancel: Err %v, Cause %v, child's Cause %v; want %v", inner.Err(), context.Cause(inner), context.Cause(child), cause)
	}
}
