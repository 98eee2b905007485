package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/idempotency"
	"github.com/switchyard-go/switchyard/pkg/service"
	"github.com/switchyard-go/switchyard/switchyardtest"
)

// provider is a card provider whose answers the test scripts: answer
// returns the error of the n-th charge (from 1) of a payment.
type provider struct {
	mu     sync.Mutex
	calls  map[string]int
	answer func(paymentID string, n int) error
}

func (p *provider) Charge(_ context.Context, paymentID string, _ int64, _ string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.calls == nil {
		p.calls = map[string]int{}
	}
	p.calls[paymentID]++
	if p.answer != nil {
		if err := p.answer(paymentID, p.calls[paymentID]); err != nil {
			return "", err
		}
	}
	return "ref-" + paymentID, nil
}

func (p *provider) charges(paymentID string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[paymentID]
}

// start runs the payments service on the test kit.
func start(t *testing.T, p *provider, opts ...switchyardtest.Option) (*switchyardtest.Harness, *Ledger) {
	t.Helper()
	ledger := NewLedger()
	return switchyardtest.Start(t, register(p, ledger), opts...), ledger
}

func paymentRequest(id string, cents int64) PaymentRequested {
	return PaymentRequested{PaymentID: id, OrderID: "order-" + id, CustomerID: "c-1", AmountCents: cents, Currency: "EUR"}
}

func TestCaptureContinuesCheckoutsChain(t *testing.T) {
	h, ledger := start(t, &provider{})
	sent := h.Send(paymentRequest("p-1", 1250), switchyardtest.From("checkout"), switchyardtest.WithCorrelationID("order-p-1"))

	got := switchyardtest.WaitFor(h, func(m switchyardtest.Message[PaymentCaptured]) bool { return m.Event.PaymentID == "p-1" })
	want := PaymentCaptured{PaymentID: "p-1", OrderID: "order-p-1", CustomerID: "c-1", AmountCents: 1250, Currency: "EUR", ProviderRef: "ref-p-1"}
	if got.Event != want {
		t.Errorf("captured %+v, want %+v", got.Event, want)
	}
	if env := got.Envelope; env.CorrelationID != "order-p-1" || env.CausationID != sent.ID || env.Key != "p-1" {
		t.Errorf("captured envelope %+v: want checkout's correlation, the request as cause, the payment as key", env)
	}
	h.WaitIdle()
	if captured, declined, cents := ledger.Totals(); captured != 1 || declined != 0 || cents != 1250 {
		t.Errorf("ledger: %d captured, %d declined, %d cents; want the one payment", captured, declined, cents)
	}
}

func TestDeclineIsAnOutcomeNotAFailure(t *testing.T) {
	h, ledger := start(t, &provider{answer: func(string, int) error { return fmt.Errorf("insufficient funds: %w", ErrDeclined) }})
	h.Send(paymentRequest("p-1", 500))

	got := switchyardtest.WaitFor[PaymentDeclined](h, nil)
	if got.Event.PaymentID != "p-1" || !strings.Contains(got.Event.Reason, "insufficient funds") {
		t.Errorf("declined %+v", got.Event)
	}
	h.WaitIdle()
	switchyardtest.ExpectNone[PaymentCaptured](h, nil)
	if c := h.Counts("payments.capture"); c.Retried != 0 || c.DeadLettered != 0 {
		t.Errorf("counts %+v: a decline is neither retried nor dead-lettered", c)
	}
	if _, declined, _ := ledger.Totals(); declined != 1 {
		t.Errorf("ledger has %d declines, want 1", declined)
	}
}

// An outage of minutes is retried through the policy's backoffs (the
// longer ones handed to the broker as delayed retries) in no real time.
func TestProviderOutageIsRetriedUntilItEnds(t *testing.T) {
	p := &provider{answer: func(_ string, n int) error {
		if n <= 4 {
			return errors.New("provider unavailable")
		}
		return nil
	}}
	h, _ := start(t, p)
	began := h.Clock().Now()
	h.Send(paymentRequest("p-1", 500))

	switchyardtest.WaitFor[PaymentCaptured](h, nil)
	h.WaitIdle()
	if n := p.charges("p-1"); n != 5 {
		t.Errorf("charged %d times, want 5: four failures, then the capture", n)
	}
	if c := h.Counts("payments.capture"); c.Retried != 4 || c.DeadLettered != 0 || c.Handled != 1 {
		t.Errorf("counts %+v, want 4 retries and one capture", c)
	}
	// Waits of about 0.5s, 2s, 8s and 32s (±20% jitter): 34s to 51s.
	if waited := h.Clock().Now().Sub(began); waited < 34*time.Second || waited > 51*time.Second {
		t.Errorf("the clock moved %s through the backoffs, want 34s to 51s", waited)
	}
}

// The manual clock shows the retry really waits: no second charge until
// its backoff is over.
func TestRetryWaitsForItsBackoff(t *testing.T) {
	p := &provider{answer: func(_ string, n int) error {
		if n == 1 {
			return errors.New("provider unavailable")
		}
		return nil
	}}
	h, _ := start(t, p, switchyardtest.ManualClock())
	h.Send(paymentRequest("p-1", 500))

	h.Eventually("the retry waiting on the clock", func() bool { n, _ := h.Clock().Waiting(); return n == 1 })
	_, next := h.Clock().Waiting()
	h.Clock().Advance(next - time.Millisecond)
	if n := p.charges("p-1"); n != 1 {
		t.Fatalf("charged %d times before the backoff of %s was over", n, next)
	}
	h.Clock().Advance(time.Millisecond)
	switchyardtest.WaitFor[PaymentCaptured](h, nil)
	h.WaitIdle()
}

func TestProviderThatNeverRecoversIsDeadLettered(t *testing.T) {
	h, _ := start(t, &provider{answer: func(string, int) error { return errors.New("provider unavailable") }})
	h.Send(paymentRequest("p-1", 500))

	dl := h.WaitDeadLetter(switchyardtest.DeadLettered("payments.capture", failure.ReasonRetriesExhausted))
	if dl.Attempts != capturePolicy.Retry.MaxAttempts || !strings.Contains(dl.Error, "provider unavailable") || dl.Envelope.Key != "p-1" {
		t.Errorf("dead letter %+v, want every attempt of the policy and the provider's error", dl)
	}
	h.WaitIdle()
	switchyardtest.ExpectNone[PaymentCaptured](h, nil)
}

func TestInvalidRequestsAreDeadLetteredWithoutCharging(t *testing.T) {
	p := &provider{}
	h, _ := start(t, p)
	tests := []struct {
		name string
		req  PaymentRequested
		want string
	}{
		{"no amount", paymentRequest("p-1", 0), "amount_cents: 0, want > 0"},
		{"unknown currency", func() PaymentRequested { r := paymentRequest("p-2", 100); r.Currency = "XXX"; return r }(), `currency: "XXX"`},
		{"no order", func() PaymentRequested { r := paymentRequest("p-3", 100); r.OrderID = ""; return r }(), "order_id is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.Send(tt.req)
			dl := h.WaitDeadLetter(func(dl switchyardtest.DeadLetter) bool { return dl.Envelope.Key == tt.req.PaymentID })
			if dl.Reason != failure.ReasonPermanent || dl.Attempts != 1 || !strings.Contains(dl.Error, tt.want) {
				t.Errorf("dead letter %s after %d attempts: %s; want permanent at once, saying %q", dl.Reason, dl.Attempts, dl.Error, tt.want)
			}
			if n := p.charges(tt.req.PaymentID); n != 0 {
				t.Errorf("charged an invalid request %d times", n)
			}
		})
	}
}

func TestRequestsCheckoutCannotHaveSentAreDeadLettered(t *testing.T) {
	h, _ := start(t, &provider{})
	h.Send(paymentRequest("p-1", 100), switchyardtest.WithVersion(2))
	h.SendRaw(TypePaymentRequested, []byte(`{"payment_id": 7}`), map[string]string{"ce_type": TypePaymentRequested})

	for _, reason := range []failure.Reason{failure.ReasonUnsupportedVersion, failure.ReasonDecode} {
		h.WaitDeadLetter(switchyardtest.DeadLettered("payments.capture", reason))
	}
	h.WaitIdle()
	switchyardtest.ExpectNone[PaymentCaptured](h, nil)
}

// With an idempotency store, a redelivered request is skipped: the
// provider is charged once and one capture is published.
func TestRedeliveredRequestIsChargedOnce(t *testing.T) {
	store, err := idempotency.NewMemory(idempotency.MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	p := &provider{}
	h, ledger := start(t, p, switchyardtest.ServiceOptions(service.WithIdempotency(store)))
	for range 2 {
		h.Send(paymentRequest("p-1", 700), switchyardtest.WithID("request-1"))
	}
	h.WaitIdle()
	if n := p.charges("p-1"); n != 1 {
		t.Errorf("charged %d times for one request delivered twice", n)
	}
	if got := switchyardtest.Published[PaymentCaptured](h); len(got) != 1 {
		t.Errorf("%d captures published, want 1", len(got))
	}
	if c := h.Counts("payments.capture"); c.Duplicates != 1 {
		t.Errorf("counts %+v, want the redelivery skipped as a duplicate", c)
	}
	if captured, _, cents := ledger.Totals(); captured != 1 || cents != 700 {
		t.Errorf("ledger: %d captured, %d cents", captured, cents)
	}
}
