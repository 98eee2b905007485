// Command order-saga runs an order flow as a saga: an order is placed, the
// saga reserves stock, captures the payment and ships; a declined payment
// is compensated by releasing the stock, and a payment that does not answer
// within --payment-timeout cancels the order (a timeout the saga scheduled
// to itself), releasing the stock too.
//
//	go run ./examples/order-saga                   # in-memory broker and stores
//	go run ./examples/order-saga --orders 8
//	go run ./examples/order-saga --config examples/order-saga/rabbitmq.yaml
//
// Order k pays with a card that decides its fate: k%4 == 2 is declined,
// k%4 == 3 never gets an answer from the payment service, the others are
// shipped. Once every order's saga completed it prints one line per order
// and a summary, e.g. for --orders 4
//
//	order-1 shipped
//	order-2 cancelled: payment declined (stock released)
//	order-3 cancelled: payment timed out (stock released)
//	order-4 shipped
//	summary: orders=4 shipped=2 declined=1 timed_out=1 stock_released=2
//
// and exits 0, or 1 when an outcome is not the expected one or the sagas
// did not finish within --timeout. With a configuration whose postgres
// section is set, the sagas and their timeouts live in PostgreSQL: a run
// killed mid-saga is finished by `--resume` (which places no orders and
// waits for the same ones).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/switchyard-go/switchyard/pkg/retry"
	"github.com/switchyard-go/switchyard/pkg/saga"
	"github.com/switchyard-go/switchyard/pkg/schedule"
	"github.com/switchyard-go/switchyard/pkg/service"
)

func main() {
	ctx, stop := service.NotifyShutdown(context.Background())
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errInterrupted):
		fmt.Fprintln(os.Stderr, "order-saga:", err)
		os.Exit(130)
	default:
		fmt.Fprintln(os.Stderr, "order-saga:", err)
		os.Exit(1)
	}
}

var errInterrupted = errors.New("interrupted")

type options struct {
	config         string
	orders         int
	prefix         string
	tables         string
	resume         bool
	paymentTimeout time.Duration
	stepDelay      time.Duration
	timeout        time.Duration
	logLevel       slog.Level
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("order-saga", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.config, "config", "", "configuration `file` selecting the broker and stores (default: in-memory)")
	fs.IntVar(&o.orders, "orders", 4, "number of orders to place")
	fs.StringVar(&o.prefix, "prefix", "order", "order ids are <prefix>-1 ... <prefix>-N")
	fs.StringVar(&o.tables, "pg-tables", "switchyard", "PostgreSQL tables are <name>_saga and <name>_schedule")
	fs.BoolVar(&o.resume, "resume", false, "place no orders: finish the sagas of an earlier, interrupted run")
	fs.DurationVar(&o.paymentTimeout, "payment-timeout", time.Second, "how long the saga waits for the payment before cancelling")
	fs.DurationVar(&o.stepDelay, "step-delay", 10*time.Millisecond, "how long each participant takes to answer")
	fs.DurationVar(&o.timeout, "timeout", 60*time.Second, "give up if the sagas have not finished after this long")
	level := fs.String("log-level", "warn", "log level on stderr: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var errs error
	if fs.NArg() > 0 {
		errs = errors.Join(errs, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	if o.orders < 1 {
		errs = errors.Join(errs, fmt.Errorf("--orders: %d, want >= 1", o.orders))
	}
	if o.prefix == "" {
		errs = errors.Join(errs, errors.New("--prefix: empty, want a name"))
	}
	if o.paymentTimeout <= 0 {
		errs = errors.Join(errs, fmt.Errorf("--payment-timeout: %s, want > 0", o.paymentTimeout))
	}
	if o.stepDelay < 0 || o.stepDelay >= o.paymentTimeout {
		errs = errors.Join(errs, fmt.Errorf("--step-delay: %s, want >= 0 and below --payment-timeout", o.stepDelay))
	}
	if o.timeout <= 0 {
		errs = errors.Join(errs, fmt.Errorf("--timeout: %s, want > 0", o.timeout))
	}
	if err := o.logLevel.UnmarshalText([]byte(*level)); err != nil {
		errs = errors.Join(errs, fmt.Errorf("--log-level: %q, want debug, info, warn or error", *level))
	}
	return o, errs
}

// examplePolicy: short retries, so that a conflict between two steps of
// one saga is retried at once.
var examplePolicy = service.Policy{
	Retry: retry.Policy{MaxAttempts: 10, InitialInterval: 10 * time.Millisecond, MaxInterval: 500 * time.Millisecond},
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: opts.logLevel}))
	b, svcOpts, st, err := open(ctx, opts.config, opts.tables, logger)
	if err != nil {
		return err
	}
	defer st.close()
	defer b.Close()
	if opts.resume && !st.durable {
		return errors.New("--resume needs durable stores: a configuration with a postgres section")
	}

	sched := schedule.New(st.schedule, schedule.Config{PollInterval: 50 * time.Millisecond, Logger: logger})
	svc := service.New(b, append([]service.Option{
		service.WithSource("order-saga-example"),
		service.WithShutdownTimeout(10 * time.Second),
		service.WithDefaults(examplePolicy),
		service.WithScheduler(sched),
		service.WithCompanion(sched),
	}, append(svcOpts, service.WithLogger(logger))...)...) // logs follow --log-level, not the file
	sg, err := registerSaga(svc, st.saga, opts.paymentTimeout, saga.WithLogger(logger))
	if err != nil {
		return err
	}
	if err := registerParticipants(svc, &inventory{stock: map[string]int{}}, opts.stepDelay); err != nil {
		return err
	}

	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	runErr := make(chan error, 1)
	go func() { runErr <- svc.Run(runCtx) }()
	select {
	case <-svc.Ready():
	case err := <-runErr:
		return err
	case <-ctx.Done():
		stopRun()
		<-runErr
		return errInterrupted
	}

	ids := make([]string, opts.orders)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%d", opts.prefix, i+1)
	}
	if !opts.resume {
		for i, id := range ids {
			e := OrderPlaced{OrderID: id, Item: "book", Qty: 1 + i%3, Amount: 1000 * (i + 1), Card: cardOf(i + 1)}
			if err := svc.Publish(ctx, e); err != nil {
				stopRun()
				<-runErr
				return fmt.Errorf("place %s: %w", id, err)
			}
		}
		fmt.Fprintf(stdout, "placed %d orders\n", len(ids))
	}
	states, waitErr := waitDone(ctx, sg, ids, opts.timeout, runErr)
	stopRun()
	if err := <-runErr; err != nil && waitErr == nil {
		waitErr = fmt.Errorf("service: %w", err)
	}
	if ctx.Err() != nil {
		return errInterrupted
	}
	if waitErr != nil {
		return waitErr
	}
	return report(stdout, ids, states)
}

// cardOf is the card order k pays with.
func cardOf(k int) string {
	switch k % 4 {
	case 2:
		return "declined"
	case 3:
		return "silent"
	}
	return "ok"
}

// waitDone polls the saga store until every order's saga completed.
func waitDone(ctx context.Context, sg *saga.Saga[OrderState], ids []string, timeout time.Duration, runErr <-chan error) ([]OrderState, error) {
	deadline := time.Now().Add(timeout)
	states := make([]OrderState, len(ids))
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		open := []string{}
		for i, id := range ids {
			snap, err := sg.Get(ctx, id)
			if err != nil && ctx.Err() == nil {
				return nil, err
			}
			states[i] = snap.State
			if !snap.Completed {
				open = append(open, fmt.Sprintf("%s (%s)", id, or(snap.State.Status, "not started")))
			}
		}
		if len(open) == 0 {
			return states, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("sagas not finished after %s: %s", timeout, strings.Join(open, ", "))
		}
		select {
		case <-tick.C:
		case err := <-runErr:
			return nil, fmt.Errorf("service stopped: %v", err)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// report prints each order's outcome and the summary, and fails when an
// outcome is not what the order's card calls for.
func report(stdout io.Writer, ids []string, states []OrderState) error {
	var shipped, declined, timedOut, released int
	var wrong []string
	for i, s := range states {
		line := ids[i] + " " + s.Status
		if s.Status == statusCancelled {
			line += ": " + s.Reason
			if s.StockReleased {
				line += " (stock released)"
				released++
			}
		}
		fmt.Fprintln(stdout, line)
		want := statusShipped
		switch s.Card {
		case "declined":
			want = statusCancelled + "/" + reasonDeclined
		case "silent":
			want = statusCancelled + "/" + reasonTimedOut
		}
		got := s.Status
		switch {
		case s.Status == statusShipped:
			shipped++
		case s.Reason == reasonDeclined:
			declined++
			got += "/" + s.Reason
		case s.Reason == reasonTimedOut:
			timedOut++
			got += "/" + s.Reason
		}
		if got != want || (s.Status == statusCancelled && !s.StockReleased) {
			wrong = append(wrong, fmt.Sprintf("%s: %s, want %s with the stock released", ids[i], got, want))
		}
	}
	fmt.Fprintf(stdout, "summary: orders=%d shipped=%d declined=%d timed_out=%d stock_released=%d\n",
		len(ids), shipped, declined, timedOut, released)
	if len(wrong) > 0 {
		return fmt.Errorf("unexpected outcomes: %s", strings.Join(wrong, "; "))
	}
	return nil
}
