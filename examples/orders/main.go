// Command orders runs the order flow of package handlers end to end: it
// places orders, reserves stock, sends confirmations, counts events and
// keeps a status view, then prints one summary line and exits.
//
//	go run ./examples/orders                      # in-memory broker, no setup
//	go run ./examples/orders --orders 1000
//	go run ./examples/orders --config examples/orders/memory.yaml
//
// The run is deterministic for a given --orders N on every broker: order 3
// is invalid and dead-lettered at once (a permanent failure), the
// confirmation of order 5 fails twice and succeeds on the third attempt
// (two retries), every tenth order asks for a discontinued item and is
// rejected, every other order is reserved and confirmed. When the broker is
// quiet and every expected message was handled, it prints
//
//	summary: published=288 handled=675 retried=2 dead_lettered=1 nacked=0 duplicates=0 orders=100 reserved=89 rejected=10 notified=89
//
// on stdout and exits 0; logs go to stderr. It exits 1 with a message if the
// flow did not finish within --timeout, and 130 when interrupted.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/switchyard-go/switchyard/pkg/graph"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/switchyard-go/switchyard/handlers"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/retry"
	"github.com/switchyard-go/switchyard/pkg/service"
)

func main() {
	ctx, stop := service.NotifyShutdown(context.Background())
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errInterrupted):
		fmt.Fprintln(os.Stderr, "orders:", err)
		os.Exit(130)
	default:
		fmt.Fprintln(os.Stderr, "orders:", err)
		os.Exit(1)
	}
}

// errInterrupted is returned by run when its context was cancelled.
var errInterrupted = errors.New("interrupted")

type options struct {
	config   string
	orders   int
	logLevel slog.Level
	timeout  time.Duration
	settle   time.Duration
	topology string
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("orders", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.config, "config", "", "configuration `file` selecting the broker (default: in-memory)")
	fs.IntVar(&o.orders, "orders", 100, "number of orders to place")
	level := fs.String("log-level", "warn", "log level on stderr: debug, info, warn or error")
	fs.DurationVar(&o.timeout, "timeout", 60*time.Second, "give up if the flow has not finished after this long")
	fs.DurationVar(&o.settle, "settle", 100*time.Millisecond, "how long the flow must stay quiet before the summary")
	fs.StringVar(&o.topology, "write-topology", "", "write the event-flow graph as JSON to `file` (- for stdout) and exit, for `switchyard graph`")
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
	if err := o.logLevel.UnmarshalText([]byte(*level)); err != nil {
		errs = errors.Join(errs, fmt.Errorf("--log-level: %q, want debug, info, warn or error", *level))
	}
	if o.timeout <= 0 {
		errs = errors.Join(errs, fmt.Errorf("--timeout: %s, want > 0", o.timeout))
	}
	if o.settle < 0 {
		errs = errors.Join(errs, fmt.Errorf("--settle: %s, want >= 0", o.settle))
	}
	return o, errs
}

// examplePolicy keeps retries short so that the run is quick; a
// configuration file's defaults and per-handler settings win over it.
var examplePolicy = service.Policy{
	Retry: retry.Policy{MaxAttempts: 5, InitialInterval: 20 * time.Millisecond, MaxInterval: 500 * time.Millisecond},
}

// run is the whole program; main only turns its error into an exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: opts.logLevel}))

	b, svcOpts, err := openBroker(ctx, opts.config, logger)
	if err != nil {
		return err
	}
	defer b.Close()

	svc := service.New(b, append([]service.Option{
		service.WithSource("orders-example"),
		service.WithShutdownTimeout(10 * time.Second),
		service.WithDefaults(examplePolicy),
		service.WithLogger(logger),
	}, svcOpts...)...)
	app := newApp(svc, opts.orders, logger)
	if err := app.register(); err != nil {
		return err
	}
	if opts.topology != "" {
		return writeTopology(svc, opts.topology, stdout)
	}

	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	runErr := make(chan error, 1)
	go func() { runErr <- svc.Run(runCtx) }()
	stopService := func() error {
		stopRun()
		return <-runErr
	}

	select {
	case <-svc.Ready():
	case err := <-runErr:
		if ctx.Err() != nil {
			return errInterrupted // Run gave up starting because of the interruption
		}
		return err
	case <-ctx.Done():
		_ = stopService()
		return errInterrupted
	}

	want := expect(opts.orders)
	start := time.Now()
	waitErr := app.placeOrders(ctx)
	if waitErr == nil {
		waitErr = waitQuiet(ctx, svc, b, want, opts.settle, opts.timeout)
	}
	logger.Info("flow finished", slog.Duration("elapsed", time.Since(start)))
	if err := stopService(); err != nil && waitErr == nil {
		waitErr = fmt.Errorf("service: %w", err)
	}
	fmt.Fprintln(stdout, app.summary(svc.Stats()))
	if ctx.Err() != nil {
		return errInterrupted
	}
	return waitErr
}

// flakyNotifier fails the first failures attempts of every notification to
// one address, like a mail server that is briefly down. It reads the attempt
// number from the delivery, so the failures are the same on every broker,
// whether retries happen in-process or by broker redelivery.
type flakyNotifier struct {
	next     handlers.Notifier
	to       string
	failures int
}

var errMailDown = errors.New("mail server unavailable")

func (f flakyNotifier) Notify(ctx context.Context, to, subject, body string) error {
	if to == f.to {
		if d := middleware.DeliveryFrom(ctx); d != nil && d.Attempt <= f.failures {
			return fmt.Errorf("%w (attempt %d)", errMailDown, d.Attempt)
		}
	}
	return f.next.Notify(ctx, to, subject, body)
}

// writeTopology writes the app's declared event flow for `switchyard graph`.
func writeTopology(svc *service.Service, path string, stdout io.Writer) error {
	if path == "-" {
		return graph.WriteJSON(stdout, svc.Graph())
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := graph.WriteJSON(f, svc.Graph()); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
