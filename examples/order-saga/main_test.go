package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/switchyard-go/switchyard/internal/brokertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wantOutcome is what --orders 8 ends with: two orders of each card.
var wantOutcome = []string{
	"-1 shipped",
	"-2 cancelled: payment declined (stock released)",
	"-3 cancelled: payment timed out (stock released)",
	"-4 shipped",
	"-5 shipped",
	"-6 cancelled: payment declined (stock released)",
	"-7 cancelled: payment timed out (stock released)",
	"-8 shipped",
	"summary: orders=8 shipped=4 declined=2 timed_out=2 stock_released=4",
}

// checkOutcome compares the report lines of stdout (after "placed ...").
func checkOutcome(t *testing.T, prefix, stdout string) {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(stdout), "\n") {
		if !strings.HasPrefix(l, "placed ") {
			lines = append(lines, l)
		}
	}
	want := make([]string, len(wantOutcome))
	for i, w := range wantOutcome {
		if strings.HasPrefix(w, "-") {
			w = prefix + w
		}
		want[i] = w
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("outcome:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

func unique(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// TestMemoryCompletesCompensatesTimesOut: with no configuration, orders
// are shipped, declined payments compensated and silent ones timed out.
func TestMemoryCompletesCompensatesTimesOut(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"--orders", "8", "--payment-timeout", "300ms"}, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, stderr.String())
	}
	checkOutcome(t, "order", stdout.String())
}

func TestResumeNeedsDurableStores(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"--resume"}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "postgres") {
		t.Fatalf("--resume on memory: %v, want an error naming the postgres section", err)
	}
}

func TestBadFlags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"--orders", "0", "--payment-timeout", "10ms", "--step-delay", "20ms"}, &stdout, &stderr)
	for _, want := range []string{"--orders: 0", "--step-delay: 20ms"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("bad flags: %v, want it to name %q", err, want)
		}
	}
}

// brokerEnv is the environment of a run on a real broker with its state in
// PostgreSQL, in a namespace of its own.
type brokerCase struct {
	name, file, envKey string
	addr               func(testing.TB) string
}

var brokerCases = []brokerCase{
	{"rabbitmq", "rabbitmq.yaml", "SWITCHYARD_BROKER_AMQP_URL", brokertest.AMQPURL},
	{"kafka", "kafka.yaml", "SWITCHYARD_BROKER_KAFKA_BROKERS", brokertest.KafkaBrokers},
}

// TestBrokersWithPostgres: the same outcome on RabbitMQ and Kafka, the
// sagas and their timeouts in PostgreSQL.
func TestBrokersWithPostgres(t *testing.T) {
	for _, tc := range brokerCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(tc.envKey, tc.addr(t))
			t.Setenv("SWITCHYARD_POSTGRES_DSN", brokertest.PostgresURL(t))
			t.Setenv("SWITCHYARD_SERVICE_NAMESPACE", unique("ordersaga-")+".")
			prefix := unique("o")
			var stdout, stderr bytes.Buffer
			args := []string{"--config", tc.file, "--orders", "8", "--prefix", prefix, "--pg-tables", unique("t"), "--timeout", "120s"}
			if err := run(context.Background(), args, &stdout, &stderr); err != nil {
				t.Fatalf("run: %v\nstderr:\n%s", err, stderr.String())
			}
			checkOutcome(t, prefix, stdout.String())
		})
	}
}
