// Command payments is a small payment service: it captures the payment
// requests checkout publishes through a card provider, publishes whether
// each was captured or declined, and books the outcomes in a ledger. Its
// tests (payments_test.go) are written on the test kit, switchyardtest,
// and prove it on every broker with switchyardtest/conformance.
//
//	go run ./examples/payments                  # in-memory broker
//	go run ./examples/payments --requests 20 --config examples/orders/rabbitmq.yaml
//
// It plays checkout too: it publishes --requests payment requests to
// itself. The demo provider declines amounts ending in 13 cents and is
// unavailable at the first charge of amounts ending in 42 (one retry
// each). When every request has an outcome it prints
//
//	summary: requested=10 captured=8 declined=2 captured_cents=8084 retried=2 dead_lettered=0
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/switchyard-go/switchyard/config"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/service"
)

func main() {
	ctx, stop := service.NotifyShutdown(context.Background())
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "payments:", err)
		os.Exit(1)
	}
}

// request returns payment request i (from 1) as checkout would send it.
func request(i int) PaymentRequested {
	amount := int64(500 + i*100)
	switch {
	case i%5 == 0:
		amount += 13 // declined
	case i%4 == 0:
		amount += 42 // the provider is down at the first try
	}
	return PaymentRequested{
		PaymentID: fmt.Sprintf("pay-%04d", i), OrderID: fmt.Sprintf("order-%04d", i),
		CustomerID: fmt.Sprintf("customer-%d", i%3), AmountCents: amount, Currency: "EUR",
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("payments", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration `file` selecting the broker (default: in-memory)")
	n := fs.Int("requests", 10, "payment requests to publish")
	timeout := fs.Duration("timeout", time.Minute, "give up if not every request has an outcome by then")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 1 {
		return fmt.Errorf("--requests: %d, want >= 1", *n)
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	b, err := config.Open(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer b.Close()
	ledger := NewLedger()
	svc := service.New(b, append(cfg.ServiceOptions(), service.WithLogger(logger), service.WithSource("payments"))...)
	if err := register(&demoProvider{}, ledger)(svc); err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- svc.Run(runCtx) }()
	stopped := func() error { cancel(); return <-done }
	select {
	case <-svc.Ready():
	case err := <-done:
		return err
	}
	for i := 1; i <= *n; i++ {
		r := request(i)
		if err := svc.Publish(middleware.WithCorrelationID(ctx, r.OrderID), r); err != nil {
			return errors.Join(err, stopped())
		}
	}
	deadline := time.NewTimer(*timeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		captured, declined, _ := ledger.Totals()
		if captured+declined == *n {
			break
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return errors.Join(ctx.Err(), stopped())
		case <-deadline.C:
			return errors.Join(fmt.Errorf("timed out after %s: %d of %d requests have an outcome", *timeout, captured+declined, *n), stopped())
		}
	}
	if err := stopped(); err != nil {
		return err
	}
	captured, declined, cents := ledger.Totals()
	st := svc.Stats()
	fmt.Fprintf(stdout, "summary: requested=%d captured=%d declined=%d captured_cents=%d retried=%d dead_lettered=%d\n",
		*n, captured, declined, cents, st.Retried, st.DeadLettered)
	return nil
}

// demoProvider declines amounts ending in 13 cents and fails the first
// charge of amounts ending in 42.
type demoProvider struct {
	mu    sync.Mutex
	calls map[string]int
}

func (p *demoProvider) Charge(_ context.Context, paymentID string, amountCents int64, _ string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.calls == nil {
		p.calls = map[string]int{}
	}
	p.calls[paymentID]++
	switch {
	case amountCents%100 == 13:
		return "", fmt.Errorf("card refused: %w", ErrDeclined)
	case amountCents%100 == 42 && p.calls[paymentID] == 1:
		return "", errors.New("provider unavailable")
	}
	return "ref-" + paymentID, nil
}
