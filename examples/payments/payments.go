package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/retry"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// Event type names: the wire contract with the checkout service.
const (
	TypePaymentRequested = "payments.payment_requested"
	TypePaymentCaptured  = "payments.payment_captured"
	TypePaymentDeclined  = "payments.payment_declined"
)

// PaymentRequested is published by checkout when an order is to be paid.
type PaymentRequested struct {
	PaymentID   string `json:"payment_id"`
	OrderID     string `json:"order_id"`
	CustomerID  string `json:"customer_id"`
	AmountCents int64  `json:"amount_cents"`
	Currency    string `json:"currency"`
}

func (PaymentRequested) EventType() string  { return TypePaymentRequested }
func (PaymentRequested) EventVersion() int  { return 1 }
func (e PaymentRequested) EventKey() string { return e.PaymentID }

// PaymentCaptured is published once the provider took the money.
type PaymentCaptured struct {
	PaymentID   string `json:"payment_id"`
	OrderID     string `json:"order_id"`
	CustomerID  string `json:"customer_id"`
	AmountCents int64  `json:"amount_cents"`
	Currency    string `json:"currency"`
	ProviderRef string `json:"provider_ref"`
}

func (PaymentCaptured) EventType() string  { return TypePaymentCaptured }
func (PaymentCaptured) EventVersion() int  { return 1 }
func (e PaymentCaptured) EventKey() string { return e.PaymentID }

// PaymentDeclined is published when the provider refused the charge: a
// business outcome, not a failure.
type PaymentDeclined struct {
	PaymentID string `json:"payment_id"`
	OrderID   string `json:"order_id"`
	Reason    string `json:"reason"`
}

func (PaymentDeclined) EventType() string  { return TypePaymentDeclined }
func (PaymentDeclined) EventVersion() int  { return 1 }
func (e PaymentDeclined) EventKey() string { return e.PaymentID }

// Errors.
var (
	// ErrInvalidRequest is wrapped by every validation error: permanent.
	ErrInvalidRequest = errors.New("invalid payment request")
	// ErrDeclined is returned (wrapped) by a Provider that refused a charge.
	ErrDeclined = errors.New("declined")
)

// currencies the provider accepts.
var currencies = []string{"EUR", "GBP", "USD"}

// Validate reports every problem of the request at once.
func (r PaymentRequested) Validate() error {
	var errs error
	bad := func(format string, args ...any) {
		errs = errors.Join(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidRequest}, args...)...))
	}
	if r.PaymentID == "" {
		bad("payment_id is empty")
	}
	if r.OrderID == "" {
		bad("order_id is empty")
	}
	if r.AmountCents <= 0 {
		bad("amount_cents: %d, want > 0", r.AmountCents)
	}
	if !slices.Contains(currencies, r.Currency) {
		bad("currency: %q, want one of %v", r.Currency, currencies)
	}
	return errs
}

// Provider charges a card. Charge is idempotent by payment id, as payment
// providers' idempotency keys are: charging a payment again returns the
// first charge's reference. A refused charge returns an error wrapping
// [ErrDeclined]; any other error is transient.
type Provider interface {
	Charge(ctx context.Context, paymentID string, amountCents int64, currency string) (ref string, err error)
}

// Capture returns the handler of [PaymentRequested]: it validates the
// request (an invalid one is dead-lettered at once), charges it and
// publishes [PaymentCaptured], or [PaymentDeclined] when the provider
// refuses. A provider outage is returned as it is, so the runtime retries.
func Capture(p Provider, publish func(context.Context, event.Event) error) func(context.Context, PaymentRequested) error {
	return func(ctx context.Context, r PaymentRequested) error {
		if err := r.Validate(); err != nil {
			return failure.Permanent(fmt.Errorf("payment %q: %w", r.PaymentID, err))
		}
		ref, err := p.Charge(ctx, r.PaymentID, r.AmountCents, r.Currency)
		switch {
		case errors.Is(err, ErrDeclined):
			return publish(ctx, PaymentDeclined{PaymentID: r.PaymentID, OrderID: r.OrderID, Reason: err.Error()})
		case err != nil:
			return fmt.Errorf("payment %q: charge: %w", r.PaymentID, err)
		}
		return publish(ctx, PaymentCaptured{
			PaymentID: r.PaymentID, OrderID: r.OrderID, CustomerID: r.CustomerID,
			AmountCents: r.AmountCents, Currency: r.Currency, ProviderRef: ref,
		})
	}
}

// Ledger keeps the outcome of every payment, once per payment id, so a
// redelivered event is not booked twice. It is safe for concurrent use.
type Ledger struct {
	mu       sync.Mutex
	captured map[string]PaymentCaptured
	declined map[string]PaymentDeclined
}

// NewLedger returns an empty ledger.
func NewLedger() *Ledger {
	return &Ledger{captured: map[string]PaymentCaptured{}, declined: map[string]PaymentDeclined{}}
}

// Captured books a captured payment.
func (l *Ledger) Captured(_ context.Context, e PaymentCaptured) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.captured[e.PaymentID] = e
	return nil
}

// Declined books a declined payment.
func (l *Ledger) Declined(_ context.Context, e PaymentDeclined) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.declined[e.PaymentID] = e
	return nil
}

// Totals returns how many payments were captured and declined, and the
// captured amount in cents (one currency is assumed, as in the example).
func (l *Ledger) Totals() (captured, declined int, cents int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.captured {
		cents += c.AmountCents
	}
	return len(l.captured), len(l.declined), cents
}

// capturePolicy: provider outages are retried with waits of 0.5s, 2s, 8s,
// 32s and 1m. Waits over a second are handed to the broker as delayed
// retries, so an outage does not hold a consumer; the order of one
// payment's events does not matter (each payment is one request).
var capturePolicy = service.Policy{
	MaxInProcessWait: time.Second,
	Retry:            retry.Policy{MaxAttempts: 6, InitialInterval: 500 * time.Millisecond, Multiplier: 4, MaxInterval: time.Minute},
}

// register returns the definition of the payments service: the capture
// handler and the ledger's.
func register(p Provider, l *Ledger) func(*service.Service) error {
	return func(svc *service.Service) error {
		for _, err := range []error{
			service.Handle(svc, "payments.capture", Capture(p, func(ctx context.Context, e event.Event) error { return svc.Publish(ctx, e) }),
				service.Group("payments"),
				service.Publishes(PaymentCaptured{}, PaymentDeclined{}),
				service.WithPolicy(capturePolicy)),
			service.Handle(svc, "ledger.captured", l.Captured, service.Group("ledger")),
			service.Handle(svc, "ledger.declined", l.Declined, service.Group("ledger")),
		} {
			if err != nil {
				return err
			}
		}
		return nil
	}
}
