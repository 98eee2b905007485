package switchyardtest_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/retry"
	"github.com/switchyard-go/switchyard/pkg/service"
	"github.com/switchyard-go/switchyard/switchyardtest"
)

// PaymentRequested and PaymentCaptured are the events of the examples.
type PaymentRequested struct {
	PaymentID   string `json:"payment_id"`
	AmountCents int64  `json:"amount_cents"`
}

func (PaymentRequested) EventType() string  { return "payments.payment_requested" }
func (PaymentRequested) EventVersion() int  { return 1 }
func (e PaymentRequested) EventKey() string { return e.PaymentID }

type PaymentCaptured struct {
	PaymentID   string `json:"payment_id"`
	AmountCents int64  `json:"amount_cents"`
}

func (PaymentCaptured) EventType() string  { return "payments.payment_captured" }
func (PaymentCaptured) EventVersion() int  { return 1 }
func (e PaymentCaptured) EventKey() string { return e.PaymentID }

// registerCapture registers a handler that captures every requested
// payment through capture and publishes PaymentCaptured.
func registerCapture(capture func(PaymentRequested) error) switchyardtest.Define {
	return func(svc *service.Service) error {
		return service.Handle(svc, "payments.capture", func(ctx context.Context, e PaymentRequested) error {
			if err := capture(e); err != nil {
				return err
			}
			return svc.Publish(ctx, PaymentCaptured(e))
		}, service.Group("payments"), service.Publishes(PaymentCaptured{}))
	}
}

// A request from another service is captured; the captured event continues
// the sender's correlation chain.
func Example() {
	t := switchyardtest.Standalone() // in a test: pass t
	defer t.Close()
	h := switchyardtest.Start(t, registerCapture(func(PaymentRequested) error { return nil }))

	h.Send(PaymentRequested{PaymentID: "p-1", AmountCents: 1250},
		switchyardtest.From("checkout"), switchyardtest.WithCorrelationID("order-42"))
	got := switchyardtest.WaitFor(h, func(m switchyardtest.Message[PaymentCaptured]) bool {
		return m.Event.PaymentID == "p-1"
	})
	h.WaitIdle() // the handler returns after its follow-up is published
	fmt.Println("captured:", got.Event.PaymentID, got.Event.AmountCents)
	fmt.Println("correlation:", got.Envelope.CorrelationID, "hop:", got.Envelope.HopCount)
	fmt.Println("handled:", h.Counts("payments.capture").Handled)
	// Output:
	// captured: p-1 1250
	// correlation: order-42 hop: 1
	// handled: 1
}

// A payment provider that fails twice: the fake clock jumps through the
// one-minute backoffs at once, and the attempts are a minute apart on it.
func Example_retry() {
	t := switchyardtest.Standalone()
	defer t.Close()
	failures := 2
	h := switchyardtest.Start(t, registerCapture(func(PaymentRequested) error {
		if failures > 0 { // attempts of one key run one after another
			failures--
			return errors.New("provider timeout")
		}
		return nil
	}), switchyardtest.ServiceOptions(service.WithDefaults(service.Policy{
		Retry: retry.Policy{InitialInterval: time.Minute, MaxInterval: time.Minute, Jitter: retry.NoJitter},
	})))

	start := h.Clock().Now()
	h.Send(PaymentRequested{PaymentID: "p-1", AmountCents: 500})
	switchyardtest.WaitFor[PaymentCaptured](h, nil)
	h.WaitIdle()
	for _, a := range h.Attempts("payments.capture") {
		fmt.Printf("attempt %d: err=%v\n", a.Number, a.Err)
	}
	c := h.Counts("payments.capture")
	fmt.Println("retried:", c.Retried, "handled:", c.Handled)
	fmt.Println("clock moved:", h.Clock().Now().Sub(start))
	// Output:
	// attempt 1: err=provider timeout
	// attempt 2: err=provider timeout
	// attempt 3: err=<nil>
	// retried: 2 handled: 1
	// clock moved: 2m0s
}

// What cannot succeed is dead-lettered at once, with the reason and the
// error; a malformed message too.
func Example_deadLetters() {
	t := switchyardtest.Standalone()
	defer t.Close()
	h := switchyardtest.Start(t, registerCapture(func(e PaymentRequested) error {
		if e.AmountCents <= 0 {
			return failure.Permanent(fmt.Errorf("payment %s: amount %d", e.PaymentID, e.AmountCents))
		}
		return nil
	}))

	sent := h.Send(PaymentRequested{PaymentID: "p-0", AmountCents: 0})
	raw := h.SendRaw("payments.payment_requested", []byte(`{"payment_id":`),
		map[string]string{header.Type: "payments.payment_requested"})
	for _, id := range []string{sent.ID, raw} {
		dl := h.WaitDeadLetter(func(dl switchyardtest.DeadLetter) bool { return dl.Envelope.ID == id })
		fmt.Printf("%s by %s after %d attempt(s): %s\n", dl.Reason, dl.Handler, dl.Attempts, dl.Error)
	}
	h.WaitIdle()
	switchyardtest.ExpectNone[PaymentCaptured](h, nil)
	// Output:
	// permanent by payments.capture after 1 attempt(s): permanent: payment p-0: amount 0
	// decode by payments.capture after 1 attempt(s): decode: decoding payments.payment_requested payload: unexpected end of JSON input
}
