package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/switchyard-go/switchyard/config"
	"github.com/switchyard-go/switchyard/pkg/admin"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/dlq"
)

// Exit statuses.
const (
	exitOK          = 0
	exitFailure     = 1   // the command ran and failed
	exitUsage       = 2   // bad flags or arguments, invalid configuration
	exitInterrupted = 130 // Ctrl-C or SIGTERM
)

// exitError carries an exit status up to run.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// silent is an error already reported on stdout; run only sets the status.
type silent struct{ code int }

func (s silent) Error() string { return fmt.Sprintf("exit status %d", s.code) }

// openBroker opens the broker the configuration selects. Tests replace it to
// hand the commands an in-process broker (the memory broker lives in one
// process, so a test and the CLI must share it).
var openBroker = func(ctx context.Context, cfg config.Config, logger *slog.Logger) (broker.Broker, error) {
	return config.Open(ctx, cfg, logger)
}

// envConfig names the environment variable that gives --config's default.
const envConfig = "SWITCHYARD_CONFIG"

// envToken names the environment variable that gives --token's default:
// the configuration override of http.admin.token, so that an operator
// shell with the service's environment needs no flag.
const envToken = "SWITCHYARD_HTTP_ADMIN_TOKEN"

// app holds the global flags and the streams every command writes to.
type app struct {
	configPath string
	service    string // --service: a running service's operations server
	token      string // --token
	json       bool
	logLevel   string

	stdin          io.Reader
	stdout, stderr io.Writer
	logger         *slog.Logger
}

// run executes the CLI with args and returns the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var s silent
	if errors.As(err, &s) {
		return s.code
	}
	code := exitFailure
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		code = ee.code
	case ctx.Err() != nil || errors.Is(err, context.Canceled):
		code = exitInterrupted
	case isFlagError(err):
		code = exitUsage
	}
	if a.json {
		_ = json.NewEncoder(stdout).Encode(map[string]any{"error": err.Error()})
	}
	fmt.Fprintln(stderr, "switchyard:", err)
	if code == exitUsage && isFlagError(err) {
		fmt.Fprintln(stderr, "Run 'switchyard --help' for usage.")
	}
	return code
}

// isFlagError reports whether cobra rejected the command line.
func isFlagError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown flag", "unknown shorthand flag", "unknown command", "flag needs an argument", "invalid argument", "accepts ", "required flag", "requires at least"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "switchyard",
		Short: "Operate Switchyard services: dead letters, publish, tail, event-flow graph, config",
		Long: `switchyard is the operator CLI of Switchyard services.

It reads the same configuration file as the services themselves, so it talks
to the same broker (memory, RabbitMQ or Kafka) with the same settings and the
same environment overrides. Without --config (or $SWITCHYARD_CONFIG) it uses
the in-memory broker, which is only useful to try commands out: the memory
broker lives inside one process. The dlq commands can instead go through a
running service's admin API with --service URL --token T; with a memory
configuration they must.

Exit status: 0 success, 1 the command failed, 2 bad usage or invalid
configuration, 130 interrupted.`,
		Example: `  switchyard config check --config prod.yaml
  switchyard dlq list --group inventory
  switchyard dlq replay --topic inventory.dead_letter --reason retries_exhausted --dry-run
  switchyard publish --topic orders.order_placed --type orders.order_placed --key 42 < order.json
  switchyard tail --topic orders.order_placed --json
  switchyard graph --from topology.json --format dot | dot -Tsvg > flow.svg`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(a.logLevel)); err != nil {
				return usageErr("--log-level: %q, want debug, info, warn or error", a.logLevel)
			}
			a.logger = slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level}))
			return nil
		},
	}
	root.CompletionOptions.HiddenDefaultCmd = true
	pf := root.PersistentFlags()
	pf.StringVarP(&a.configPath, "config", "c", os.Getenv(envConfig),
		"configuration `file`, the services' own (default $"+envConfig+", else the in-memory broker)")
	pf.StringVar(&a.service, "service", "",
		"`URL` of a running service's operations server (http.addr) whose admin API the dlq commands use instead of opening the broker, e.g. http://127.0.0.1:9090")
	pf.StringVar(&a.token, "token", os.Getenv(envToken),
		"admin API bearer `token` for --service (default $"+envToken+", the variable the service reads http.admin.token from)")
	pf.BoolVar(&a.json, "json", false, "machine-readable output: JSON on stdout")
	pf.StringVar(&a.logLevel, "log-level", "warn", "log level on stderr: debug, info, warn or error")
	root.AddCommand(a.configCmd(), a.dlqCmd(), a.publishCmd(), a.tailCmd(), a.graphCmd())
	root.AddCommand(a.outboxCmd(), a.handlerCmd())
	return root
}

// loadConfig loads and validates the configuration; problems are usage
// errors (exit status 2).
func (a *app) loadConfig() (config.Config, error) {
	cfg, err := config.Load(a.configPath)
	if err != nil {
		return cfg, &exitError{code: exitUsage, err: err}
	}
	return cfg, nil
}

// open loads the configuration and opens its broker. The caller closes it.
func (a *app) open(ctx context.Context) (broker.Broker, error) {
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, err
	}
	b, err := openBroker(ctx, cfg, a.logger)
	if err != nil {
		return nil, fmt.Errorf("open broker %s: %w", cfg.Broker.Type, err)
	}
	return b, nil
}

// printJSON writes v as one line of JSON (or indented when pretty).
func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// errMemoryBroker explains why the dlq commands do not open a memory
// broker of their own.
var errMemoryBroker = usageErr("the configuration selects the memory broker, which lives inside the service process: " +
	"this CLI would only see an empty broker of its own. Reach the running service through its admin API with " +
	"--service http://HOST:PORT (http.addr, with http.admin.enabled) and --token, or use a RabbitMQ or Kafka configuration")

// deadLetters returns where the dlq commands run: the admin API of the
// service --service names, else the configured broker. The caller calls
// done when finished.
func (a *app) deadLetters(ctx context.Context) (ops dlq.Operations, done func(), err error) {
	if a.service != "" {
		if a.token == "" {
			return nil, nil, usageErr("--service needs --token (or $%s): the admin API requires its bearer token", envToken)
		}
		c, err := admin.NewClient(a.service, a.token, nil)
		if err != nil {
			return nil, nil, usageErr("--service: %v", err)
		}
		return c, func() {}, nil
	}
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, nil, err
	}
	if cfg.Broker.Type == config.BrokerMemory {
		return nil, nil, errMemoryBroker
	}
	b, err := openBroker(ctx, cfg, a.logger)
	if err != nil {
		return nil, nil, fmt.Errorf("open broker %s: %w", cfg.Broker.Type, err)
	}
	return dlq.New(b), func() { _ = b.Close() }, nil
}
