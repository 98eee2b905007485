package config

import (
	"strings"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pkg/breaker"
)

func wantAll(t *testing.T, err error, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want an error with %q", fragments)
	}
	for _, w := range fragments {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q\nlacks %q", err, w)
		}
	}
}

func TestUnknownEnvNamesTheNearestVariable(t *testing.T) {
	tooling := []string{
		"SWITCHYARD_TEST_AMQP_URL=amqp://x", "SWITCHYARD_TEST_ANYTHING_NEW=1", "SWITCHYARD_WORK=/tmp/sy",
		"SWITCHYARD_CACHE=/tmp/c", "SWITCHYARD_AMQP_PORT=5682", "SWITCHYARD_KAFKA_PORT=19092",
		"SWITCHYARD_KAFKA_CONTROLLER_PORT=19093", "SWITCHYARD_POSTGRES_PORT=5442", "SWITCHYARD_CONFIG=x.yaml",
		"SWITCHYARD_BENCH_CPUPROFILE=cpu.out", "PATH=/bin", "NOT_SWITCHYARD_BROKER=1",
	}
	if _, err := ParseEnviron(nil, tooling, nil); err != nil {
		t.Fatalf("tooling variables refused: %v", err)
	}
	tests := []struct{ env, want string }{
		{"SWITCHYARD_BROKR_TYPE=kafka", "SWITCHYARD_BROKR_TYPE: no such setting; did you mean SWITCHYARD_BROKER_TYPE?"},
		{"SWITCHYARD_DEFAULTS_RETRY_MAX_ATEMPTS=3", "did you mean SWITCHYARD_DEFAULTS_RETRY_MAX_ATTEMPTS?"},
		{"SWITCHYARD_HTTP_ADR=:9090", "did you mean SWITCHYARD_HTTP_ADDR?"},
		{"SWITCHYARD_AMQP_PORTS=1", "did you mean SWITCHYARD_AMQP_PORT?"},
		{"SWITCHYARD_HANDLERS_PAYMENTS_CAPTURE_CONCURENCY=8", "did you mean SWITCHYARD_HANDLERS_PAYMENTS_CAPTURE_CONCURRENCY?"},
		{"SWITCHYARD_TOPICS_ORDERS_CONTENT_MODE=structured", "SWITCHYARD_TOPICS_ORDERS_CONTENT_MODE: no such setting"},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			_, err := ParseEnviron(nil, append(tooling, tt.env), nil)
			wantAll(t, err, tt.want)
			if err != nil && strings.Contains(err.Error(), "SWITCHYARD_TEST_") {
				t.Errorf("a tooling variable reported: %v", err)
			}
		})
	}
}

func TestHandlerEnvName(t *testing.T) {
	for name, want := range map[string]string{
		"payments.capture": "SWITCHYARD_HANDLERS_PAYMENTS_CAPTURE",
		"send-email":       "SWITCHYARD_HANDLERS_SEND__EMAIL",
		"Audit_Log.v2":     "SWITCHYARD_HANDLERS_AUDIT_LOG_V2",
	} {
		if got := HandlerEnvName(name); got != want {
			t.Errorf("HandlerEnvName(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestHandlerEnvOverrides(t *testing.T) {
	file := "handlers:\n  payments.capture: {concurrency: 4, timeout: 2s}\n  order_sync: {}\n"
	c, err := ParseEnviron([]byte(file), []string{
		"SWITCHYARD_HANDLERS_PAYMENTS_CAPTURE_CONCURRENCY=8",        // in the file: wins over it
		"SWITCHYARD_HANDLERS_PAYMENTS_CAPTURE_RETRY_MAX_ATTEMPTS=3", // a nested key
		"SWITCHYARD_HANDLERS_SEND__EMAIL_ORDERED=true",              // not in the file: "__" is "-"
		"SWITCHYARD_HANDLERS_INVENTORY_RESERVE_MAX_IN_PROCESS_WAIT=1s",
		"SWITCHYARD_HANDLERS_ORDER_SYNC_HOP_LIMIT=4", // an underscore name, reached because the file names it
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pc := c.Handlers["payments.capture"]
	if pc.Concurrency != 8 || pc.Timeout != 2*time.Second || pc.Retry.MaxAttempts != 3 {
		t.Errorf("payments.capture = %+v", pc)
	}
	if !c.Handlers["send-email"].IsOrdered() {
		t.Errorf("send-email = %+v", c.Handlers["send-email"])
	}
	if c.Handlers["inventory.reserve"].MaxInProcessWait != time.Second {
		t.Errorf("inventory.reserve = %+v", c.Handlers["inventory.reserve"])
	}
	if c.Handlers["order_sync"].HopLimit != 4 || len(c.Handlers) != 4 {
		t.Errorf("handlers = %+v", c.Handlers)
	}

	_, err = ParseEnviron([]byte(file), []string{
		"SWITCHYARD_HANDLERS_PAYMENTS_CAPTURE_TIMEOUT=soon",
		"SWITCHYARD_HANDLERS_PAYMENTS_CAPTURE_CONCURRENCY=-2",
	}, nil)
	wantAll(t, err, `SWITCHYARD_HANDLERS_PAYMENTS_CAPTURE_TIMEOUT (handlers.payments.capture.timeout): "soon" is not a duration`,
		"handlers.payments.capture.concurrency: -2, want >= 1")

	_, err = ParseEnviron([]byte("handlers: {a.b: {}, a_b: {}}\n"), []string{"SWITCHYARD_HANDLERS_A_B_TIMEOUT=1s"}, nil)
	wantAll(t, err, "SWITCHYARD_HANDLERS_A_B_TIMEOUT: names more than one handler of the file: a.b, a_b")
}

// A bad duration, a negative concurrency, a value of the wrong type, an
// unknown key, a bad variable and an unknown variable: all six at once.
func TestEveryPhaseReportedAtOnce(t *testing.T) {
	file := `defaults:
  timeout: 5 parsecs
  concurrency: -2
handlers:
  x: {retry: {max_attempts: many}}
broker:
  type: memory
  memroy: {}
`
	_, err := ParseEnviron([]byte(file), []string{"SWITCHYARD_DEFAULTS_HOP_LIMIT=lots", "SWITCHYARD_BROKR_TYPE=kafka"}, nil)
	wantAll(t, err,
		`line 2: defaults.timeout: "5 parsecs" is not a duration`,
		"defaults.concurrency: -2, want >= 1",
		`line 5: handlers.x.retry.max_attempts: "many" is not a valid whole number`,
		`line 8: broker.memroy: unknown key "memroy", allowed here: type, memory, amqp, kafka`,
		`SWITCHYARD_DEFAULTS_HOP_LIMIT (defaults.hop_limit): "lots" is not a whole number`,
		"SWITCHYARD_BROKR_TYPE: no such setting; did you mean SWITCHYARD_BROKER_TYPE?")
}

// TestHandlerBreakerAndRateLimit: handlers.<name>.breaker and rate_limit
// come from the file and the environment, and bad values name the field,
// the value and what is allowed.
func TestHandlerBreakerAndRateLimit(t *testing.T) {
	file := "handlers:\n  payments.capture:\n    rate_limit: 50\n    breaker: {consecutive_failures: 5, open_for: 30s, half_open_probes: 2}\n"
	c, err := ParseEnviron([]byte(file), []string{
		"SWITCHYARD_HANDLERS_PAYMENTS_CAPTURE_BREAKER_FAILURE_RATE=0.5",
		"SWITCHYARD_HANDLERS_PAYMENTS_CAPTURE_BREAKER_WINDOW=2m",
		"SWITCHYARD_HANDLERS_PAYMENTS_CAPTURE_RATE_BURST=10",
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := c.Handlers["payments.capture"]
	b := p.Breaker
	if b.ConsecutiveFailures != 5 || b.OpenFor != 30*time.Second || b.HalfOpenProbes != 2 || b.FailureRate != 0.5 || b.Window != 2*time.Minute ||
		p.RateLimit != 50 || p.RateBurst != 10 {
		t.Errorf("payments.capture = %+v", p)
	}
	_, err = ParseEnviron([]byte("handlers:\n  x: {rate_limit: -3, breaker: {failure_rate: 1.2, min_requests: -1, half_open_probes: -1}}\n"), nil, nil)
	wantAll(t, err,
		"handlers.x.rate_limit: -3, want > 0 attempts per second (0 means no limit)",
		"handlers.x.breaker.failure_rate: 1.2, want a share between 0 and 1",
		"handlers.x.breaker.min_requests: -1, want >= 1",
		"handlers.x.breaker.half_open_probes: -1, want >= 1")
	_, err = ParseEnviron([]byte("handlers:\n  x: {breaker: {consecutive_failure: 3}}\n"), nil, nil)
	if err == nil || !strings.Contains(err.Error(), "consecutive_failure") {
		t.Errorf("a misspelt breaker key: %v, want it refused by name", err)
	}
}

// TestEffectiveFillsFlowDefaults: a breaker or rate limit turned on shows
// its defaults in the effective configuration; one left off shows none.
func TestEffectiveFillsFlowDefaults(t *testing.T) {
	c, err := Parse([]byte("handlers:\n  pay: {rate_limit: 5, breaker: {consecutive_failures: 3}}\n  other: {}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	e := c.Effective()
	p := e.Handlers["pay"]
	if p.Breaker.OpenFor != breaker.DefaultOpenFor || p.Breaker.HalfOpenProbes != breaker.DefaultHalfOpenProbes || p.RateBurst != 1 {
		t.Errorf("handlers.pay: %+v", p)
	}
	if o := e.Handlers["other"]; o.Breaker != (breaker.Policy{}) || o.RateBurst != 0 {
		t.Errorf("handlers.other: %+v, want no breaker and no rate limit", o)
	}
}
