package switchyardtest_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/idempotency"
	"github.com/switchyard-go/switchyard/pkg/inbound"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/retry"
	"github.com/switchyard-go/switchyard/pkg/service"
	"github.com/switchyard-go/switchyard/switchyardtest"
)

// Events of a tiny payments domain.
type chargeRequested struct {
	ID     string `json:"id"`
	Amount int    `json:"amount"`
}

func (chargeRequested) EventType() string  { return "test.charge_requested" }
func (chargeRequested) EventVersion() int  { return 1 }
func (e chargeRequested) EventKey() string { return e.ID }

type charged struct {
	ID     string `json:"id"`
	Amount int    `json:"amount"`
}

func (charged) EventType() string  { return "test.charged" }
func (charged) EventVersion() int  { return 1 }
func (e charged) EventKey() string { return e.ID }

// charger publishes charged for every request; fail decides per attempt
// whether it fails instead.
func charger(fail func(ctx context.Context, e chargeRequested) error, opts ...service.HandlerOption) switchyardtest.Define {
	return func(svc *service.Service) error {
		return service.Handle(svc, "charge", func(ctx context.Context, e chargeRequested) error {
			if fail != nil {
				if err := fail(ctx, e); err != nil {
					return err
				}
			}
			return svc.Publish(ctx, charged(e))
		}, append([]service.HandlerOption{service.Group("payments"), service.Publishes(charged{})}, opts...)...)
	}
}

func TestPublishedCarriesTheChainOfAnotherService(t *testing.T) {
	h := switchyardtest.Start(t, charger(nil))
	sent := h.Send(chargeRequested{ID: "c-1", Amount: 500},
		switchyardtest.From("checkout"), switchyardtest.WithCorrelationID("order-7"), switchyardtest.WithKey("customer-3"))
	got := switchyardtest.WaitFor(h, func(m switchyardtest.Message[charged]) bool { return m.Event.ID == "c-1" })
	if got.Event.Amount != 500 {
		t.Errorf("charged = %+v, want amount 500", got.Event)
	}
	env := got.Envelope
	if env.CorrelationID != "order-7" || env.CausationID != sent.ID || env.HopCount != 1 || env.Source != "switchyardtest" {
		t.Errorf("envelope = %+v, want correlation order-7, causation %s, hop 1, source switchyardtest", env, sent.ID)
	}
	if env.Key != "c-1" {
		t.Errorf("follow-up key = %q, want its own EventKey c-1", env.Key)
	}
	h.WaitIdle() // the handler that published the follow-up returns after it
	handled := switchyardtest.Handled[chargeRequested](h, "charge")
	if len(handled) != 1 || handled[0].Envelope.Key != "customer-3" || handled[0].Envelope.Source != "checkout" {
		t.Fatalf("handled = %+v, want the one request with the sender's key and source", handled)
	}
	if n := len(switchyardtest.Published[chargeRequested](h)); n != 0 {
		t.Errorf("Published lists %d sent requests: what the test sends is not what the service published", n)
	}
}

func TestAutomaticClockJumpsThroughBackoffs(t *testing.T) {
	var attempts atomic.Int32
	policy := retry.Policy{MaxAttempts: 4, InitialInterval: time.Hour, MaxInterval: time.Hour, Jitter: retry.NoJitter}
	h := switchyardtest.Start(t, charger(func(context.Context, chargeRequested) error {
		attempts.Add(1)
		return errors.New("bank unavailable")
	}, service.Retry(policy), service.WithPolicy(service.Policy{OrderOnRetry: service.OrderKeep})))
	start := time.Now()
	h.Send(chargeRequested{ID: "c-1"})
	dl := h.WaitDeadLetter(switchyardtest.DeadLettered("charge", failure.ReasonRetriesExhausted))
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("three one-hour backoffs took %s of real time", took)
	}
	if got := dl.LastFailure.Sub(dl.FirstFailure); got != 3*time.Hour {
		t.Errorf("dead letter failures %s apart on the clock, want 3h (three backoffs)", got)
	}
	if dl.Attempts != 4 || !strings.Contains(dl.Error, "bank unavailable") || dl.OriginalTopic != "test.charge_requested" || dl.Group != "payments" {
		t.Errorf("dead letter = %+v", dl)
	}
	h.WaitIdle()
	c := h.Counts("charge")
	if c.Retried != 3 || c.DeadLettered != 1 || c.Reasons[string(failure.ReasonRetriesExhausted)] != 1 || c.Handled != 0 || attempts.Load() != 4 {
		t.Errorf("counts = %+v after %d attempts, want 3 retries and one dead letter", c, attempts.Load())
	}
}

func TestManualClockHoldsDelayedRetryUntilAdvanced(t *testing.T) {
	var fails atomic.Int32
	fails.Store(1)
	// A 10-minute wait exceeds max_in_process_wait: it is handed to the
	// broker as a delayed retry, which the harness holds on its clock.
	policy := retry.Policy{MaxAttempts: 3, InitialInterval: 10 * time.Minute, MaxInterval: 10 * time.Minute, Jitter: retry.NoJitter}
	h := switchyardtest.Start(t, charger(func(context.Context, chargeRequested) error {
		if fails.Add(-1) >= 0 {
			return errors.New("bank unavailable")
		}
		return nil
	}, service.Retry(policy)), switchyardtest.ManualClock())
	h.Send(chargeRequested{ID: "c-1"})
	h.Eventually("the delayed retry held on the clock", func() bool { n, _ := h.Clock().Waiting(); return n == 1 })
	if n := len(h.Attempts("charge")); n != 1 {
		t.Fatalf("%d attempts before the clock moved, want 1", n)
	}
	if n, next := h.Clock().Waiting(); n != 1 || next != 10*time.Minute {
		t.Fatalf("clock waits = %d, next in %s; want one in 10m", n, next)
	}
	h.Clock().Advance(9 * time.Minute)
	if n, _ := h.Clock().Waiting(); n != 1 {
		t.Fatal("the retry was released before its 10 minutes")
	}
	h.Clock().Advance(time.Minute)
	got := switchyardtest.WaitFor[charged](h, nil)
	if got.Event.ID != "c-1" {
		t.Fatalf("charged = %+v", got.Event)
	}
	a := h.Attempts("charge")
	if len(a) != 2 || a[1].Number != 2 || a[1].Err != nil {
		t.Fatalf("attempts = %v, want the second, successful one after the delay", a)
	}
	h.WaitIdle()
}

func TestMalformedMessagesAreDeadLetteredWithReason(t *testing.T) {
	h := switchyardtest.Start(t, charger(nil))
	topic := chargeRequested{}.EventType()
	tests := []struct {
		name   string
		send   func() string // returns the message id
		reason failure.Reason
	}{
		{"no type", func() string { return h.SendRaw(topic, []byte(`{}`), map[string]string{header.SpecVersion: "1.0"}) },
			failure.ReasonInvalidEnvelope},
		{"payload does not decode", func() string {
			return h.SendRaw(topic, []byte(`{"id":`), map[string]string{header.Type: topic, header.ContentType: "application/json"})
		}, failure.ReasonDecode},
		{"unknown type", func() string {
			return h.SendRaw(topic, []byte(`{}`), map[string]string{header.Type: "test.something_else"})
		}, failure.ReasonUnknownType},
		{"newer version", func() string {
			return h.Send(chargeRequested{ID: "c-9"}, switchyardtest.WithVersion(2)).ID
		}, failure.ReasonUnsupportedVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := tt.send()
			dl := h.WaitDeadLetter(func(dl switchyardtest.DeadLetter) bool { return dl.Metadata[header.ID] == id || dl.Envelope.ID == id })
			if dl.Reason != tt.reason || dl.Attempts != 1 || dl.Topic != "payments.dead_letter" {
				t.Errorf("dead letter reason %q attempts %d topic %q, want %q, 1, payments.dead_letter (error: %s)", dl.Reason, dl.Attempts, dl.Topic, tt.reason, dl.Error)
			}
		})
	}
	h.WaitIdle()
	if n := len(switchyardtest.Published[charged](h)); n != 0 {
		t.Errorf("%d charges for malformed requests", n)
	}
}

func TestRedeliveredIDIsSkippedAsDuplicate(t *testing.T) {
	store, err := idempotency.NewMemory(idempotency.MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	h := switchyardtest.Start(t, charger(nil), switchyardtest.ServiceOptions(service.WithIdempotency(store)))
	for range 2 {
		h.Send(chargeRequested{ID: "c-1", Amount: 5}, switchyardtest.WithID("request-1"))
	}
	h.WaitIdle()
	if c := h.Counts("charge"); c.Handled != 1 || c.Duplicates != 1 {
		t.Errorf("counts = %+v, want one handled and one duplicate skipped", c)
	}
	if n := len(switchyardtest.Published[charged](h)); n != 1 {
		t.Errorf("%d charges for one request delivered twice", n)
	}
}

func TestRestartKeepsRecordsAndRedefines(t *testing.T) {
	var defined atomic.Int32
	define := charger(nil)
	h := switchyardtest.Start(t, func(svc *service.Service) error { defined.Add(1); return define(svc) })
	h.Send(chargeRequested{ID: "c-1"})
	switchyardtest.WaitFor[charged](h, nil)
	h.Restart()
	h.Send(chargeRequested{ID: "c-2"})
	switchyardtest.WaitFor(h, func(m switchyardtest.Message[charged]) bool { return m.Event.ID == "c-2" })
	if defined.Load() != 2 || len(switchyardtest.Published[charged](h)) != 2 {
		t.Fatalf("defined %d times, %d charges; want 2 and 2", defined.Load(), len(switchyardtest.Published[charged](h)))
	}
	if a := h.Attempts("charge"); a[0].Instance == a[1].Instance {
		t.Errorf("both attempts name instance %q: the restart did not start a new service", a[0].Instance)
	}
}

// fakeTB records failures instead of failing; Fatalf ends the goroutine,
// so run what may call it with fatal.
type fakeTB struct {
	*testing.T
	mu     sync.Mutex
	errors []string
}

func (f *fakeTB) Errorf(format string, args ...any) {
	f.mu.Lock()
	f.errors = append(f.errors, fmt.Sprintf(format, args...))
	f.mu.Unlock()
}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.Errorf(format, args...)
	runtime.Goexit()
}

func (f *fakeTB) Cleanup(func()) {} // the tests call Stop themselves

func (f *fakeTB) failures() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.errors, "\n")
}

// fatal runs fn in its own goroutine, as Fatalf needs.
func fatal(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
}

func TestStopReportsLeakedGoroutines(t *testing.T) {
	release := make(chan struct{})
	tb := &fakeTB{T: t}
	h := switchyardtest.Start(tb, func(svc *service.Service) error {
		return service.Handle(svc, "leaky", func(context.Context, chargeRequested) error {
			go func() { <-release }() // outlives the handler and the service
			return nil
		})
	})
	h.Send(chargeRequested{ID: "c-1"})
	h.WaitIdle()
	h.Stop()
	close(release)
	if got := tb.failures(); !strings.Contains(got, "goroutines leaked") || !strings.Contains(got, "TestStopReportsLeakedGoroutines") {
		t.Fatalf("Stop reported %q, want the leaked goroutine and where it started", got)
	}
}

func TestWaitForFailureSaysWhatHappened(t *testing.T) {
	tb := &fakeTB{T: t}
	h := switchyardtest.Start(tb, charger(func(context.Context, chargeRequested) error {
		return failure.Permanent(errors.New("card declined"))
	}), switchyardtest.Timeout(200*time.Millisecond))
	fatal(func() {
		h.Send(chargeRequested{ID: "c-1"})
		switchyardtest.WaitFor[charged](h, nil)
	})
	h.Stop()
	got := tb.failures()
	for _, want := range []string{
		"timed out after 200ms waiting for a published test.charged",
		"sent       test.charge_requested",
		"dead letter test.charge_requested",
		"reason=permanent handler=charge",
		"attempt 1 of test.charge_requested",
		"error: permanent: card declined",
		"charge: attempts=1 handled=0 retried=0 dead_lettered=1",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("failure message lacks %q:\n%s", want, got)
		}
	}
}

func TestWaitIdleNamesWaitsOnTheManualClock(t *testing.T) {
	tb := &fakeTB{T: t}
	h := switchyardtest.Start(tb, charger(func(context.Context, chargeRequested) error { return errors.New("later") },
		service.Retry(retry.Policy{InitialInterval: time.Second, Jitter: retry.NoJitter})),
		switchyardtest.ManualClock(), switchyardtest.Timeout(200*time.Millisecond))
	fatal(func() {
		h.Send(chargeRequested{ID: "c-1"})
		h.WaitIdle()
	})
	h.Stop() // a retry waiting on the clock gives up its wait at shutdown

	if got := tb.failures(); !strings.Contains(got, "1 waits on the manual clock, the next ends in 1s") {
		t.Fatalf("WaitIdle said %q, want it to name the wait on the clock", got)
	}
}

func TestProbeInjectFailsAttemptsWithoutRunningTheHandler(t *testing.T) {
	var ran atomic.Int32
	h := switchyardtest.Start(t, charger(func(context.Context, chargeRequested) error { ran.Add(1); return nil }))
	h.Probe().Inject(func(_ context.Context, d *middleware.Delivery) error {
		if d.Attempt < 3 {
			return errors.New("injected")
		}
		return nil
	})
	h.Send(chargeRequested{ID: "c-1"})
	switchyardtest.WaitFor[charged](h, nil)
	a := h.Attempts("charge")
	if len(a) != 3 || !a[0].Injected || !a[1].Injected || a[2].Injected || a[2].Err != nil || ran.Load() != 1 {
		t.Fatalf("attempts %v, handler ran %d times; want two injected failures, then the handler once", a, ran.Load())
	}
}

// A producer that does not write Switchyard's headers (the article's
// Node.js services: an eventType header, a correlationId header, plain
// JSON) reaches the typed handler through the topic's inbound mapping, with
// its correlation id kept.
func TestForeignProducerThroughInboundMapping(t *testing.T) {
	topic := event.TopicOf(chargeRequested{})
	h := switchyardtest.Start(t, charger(nil), switchyardtest.ServiceOptions(service.WithInbound(topic, inbound.Mapping{
		Type:          inbound.From{Header: "eventType"},
		Types:         map[string]string{"ChargeRequested": chargeRequested{}.EventType()},
		ID:            inbound.From{Header: "messageId"},
		Key:           inbound.From{Field: "id"},
		CorrelationID: inbound.From{Header: "correlationId"},
	})))
	h.SendRaw(topic, []byte(`{"id":"c-9","amount":700}`), map[string]string{
		"eventType": "ChargeRequested", "messageId": "node-1", "correlationId": "checkout-42",
	})
	got := switchyardtest.WaitFor(h, func(m switchyardtest.Message[charged]) bool { return m.Event.ID == "c-9" })
	if got.Event.Amount != 700 || got.Envelope.CorrelationID != "checkout-42" || got.Envelope.CausationID != "node-1" {
		t.Errorf("charged = %+v with envelope %+v, want amount 700, correlation checkout-42, causation node-1", got.Event, got.Envelope)
	}
	// Without the header the mapping needs, the message is dead-lettered
	// with the mapping's reason, not guessed at.
	h.SendRaw(topic, []byte(`{"id":"c-10","amount":1}`), map[string]string{"messageId": "node-2"})
	h.WaitDeadLetter(func(dl switchyardtest.DeadLetter) bool { return dl.Reason == failure.ReasonInboundMapping })
}
