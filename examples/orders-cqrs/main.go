// Command orders-cqrs is the article's order service with CQRS and event
// sourcing, whole: PlaceOrder, PayOrder and ShipOrder commands go through
// the broker to the OrderAggregate, which checks the rules ("no empty
// order", "can't pay twice", "can't ship before payment") and appends its
// events to the event store; the orderSummaries read model follows the
// store and can be rebuilt from it; a small HTTP API sends the commands
// and reads the summary and the stream.
//
//	go run ./examples/orders-cqrs                  # a demo flow on memory, no setup
//	go run ./examples/orders-cqrs serve --addr 127.0.0.1:8080
//	go run ./examples/orders-cqrs rebuild --config examples/orders-cqrs/kafka.yaml
//
// --config selects the broker exactly as in examples/orders (memory.yaml,
// rabbitmq.yaml, kafka.yaml). With a postgres section (or
// SWITCHYARD_POSTGRES_DSN) the events and the read model live in
// PostgreSQL; without, in memory. With outbox.store: postgres the stored
// events are also published to the broker, through the outbox.
//
// The demo places an order, breaks each rule once, pays and ships the
// order, reads its summary and its stream, rebuilds the read model and
// reads the summary again; it prints one line per step on stdout and exits
// 0 when every step answered as expected.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/switchyard-go/switchyard/pkg/command"
	"github.com/switchyard-go/switchyard/pkg/eventstore"
	"github.com/switchyard-go/switchyard/pkg/service"
)

func main() {
	ctx, stop := service.NotifyShutdown(context.Background())
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errInterrupted):
		fmt.Fprintln(os.Stderr, "orders-cqrs:", err)
		os.Exit(130)
	default:
		fmt.Fprintln(os.Stderr, "orders-cqrs:", err)
		os.Exit(1)
	}
}

var errInterrupted = errors.New("interrupted")

// settings is the app section of the configuration file
// (SWITCHYARD_APP_* in the environment).
type settings struct {
	// Addr is where serve listens. Default 127.0.0.1:8080.
	Addr string `yaml:"addr"`
	// EventsTable is the PostgreSQL events table. Default orders_events.
	EventsTable string `yaml:"events_table"`
	// ReadModel names the orderSummaries projection: its checkpoint and
	// its tables (order_summaries_v1, _v2 after a rebuild, ...). Default
	// order_summaries.
	ReadModel string `yaml:"read_model"`
	// Commands is the command topic and consumer group. Default
	// orders.commands, group orders-commands.
	Commands command.Config `yaml:"commands"`
	// CommandTimeout bounds how long the HTTP API waits for a command's
	// outcome before it answers 202 (pending). Default 10s.
	CommandTimeout time.Duration `yaml:"command_timeout"`
}

func defaultSettings() settings {
	return settings{
		Addr:           "127.0.0.1:8080",
		EventsTable:    "orders_events",
		ReadModel:      "order_summaries",
		Commands:       command.Config{Topic: "orders.commands", Group: "orders-commands"},
		CommandTimeout: 10 * time.Second,
	}
}

// Validate is called by config.LoadApp.
func (s settings) Validate() error {
	var err error
	if s.CommandTimeout <= 0 {
		err = errors.Join(err, fmt.Errorf("app.command_timeout: %s, want > 0", s.CommandTimeout))
	}
	if s.ReadModel == "" {
		err = errors.Join(err, errors.New("app.read_model: required"))
	}
	return err
}

type options struct {
	mode     string // demo, serve or rebuild
	config   string
	addr     string
	logLevel slog.Level
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	o := options{mode: "demo"}
	if len(args) > 0 && (args[0] == "demo" || args[0] == "serve" || args[0] == "rebuild") {
		o.mode, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("orders-cqrs "+o.mode, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: orders-cqrs [demo|serve|rebuild] [flags]")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.config, "config", "", "configuration `file` selecting the broker and the database (default: in-memory)")
	fs.StringVar(&o.addr, "addr", "", "serve: listen `address` (default: app.addr, 127.0.0.1:8080)")
	level := fs.String("log-level", "warn", "log level on stderr: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var errs error
	if fs.NArg() > 0 {
		errs = errors.Join(errs, fmt.Errorf("unexpected arguments %q: want demo, serve or rebuild, then flags", fs.Args()))
	}
	if err := o.logLevel.UnmarshalText([]byte(*level)); err != nil {
		errs = errors.Join(errs, fmt.Errorf("--log-level: %q, want debug, info, warn or error", *level))
	}
	if o.addr != "" && o.mode != "serve" {
		errs = errors.Join(errs, fmt.Errorf("--addr: only for serve, not %s", o.mode))
	}
	return o, errs
}

// run is the whole program; main only turns its error into an exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: opts.logLevel}))
	env, err := open(ctx, opts.config, logger)
	if err != nil {
		return err
	}
	defer env.close()
	if opts.addr != "" {
		env.settings.Addr = opts.addr
	}
	a, err := newApp(env, logger)
	if err != nil {
		return err
	}
	switch opts.mode {
	case "rebuild":
		if _, inMemory := env.store.(*eventstore.Memory); inMemory {
			return errors.New("rebuild: the in-memory event store starts empty in every process, so there is nothing to rebuild from: " +
				"set postgres.dsn (or SWITCHYARD_POSTGRES_DSN); the demo and POST /rebuild show a rebuild in memory")
		}
		return rebuildOnly(ctx, a, stdout)
	case "serve":
		return serve(ctx, a, env.settings.Addr, stdout, logger)
	default:
		return demo(ctx, a, stdout)
	}
}

// rebuildOnly rebuilds the read model from the events and exits: the
// read model serving meanwhile (another instance's) keeps serving until
// the switch.
func rebuildOnly(ctx context.Context, a *app, stdout io.Writer) error {
	res, err := a.summaries.Rebuild(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return errInterrupted
		}
		return fmt.Errorf("rebuild: %w", err)
	}
	fmt.Fprintf(stdout, "rebuilt %s from the events up to position %d: readers moved from %s to %s\n", a.summaries.name, res.Position, res.From, res.To)
	return nil
}
