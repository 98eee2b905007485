package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/switchyard-go/switchyard/internal/brokertest"
)

// TestSameSummaryOnEveryBroker runs the example with the shipped RabbitMQ
// and Kafka configurations against the real brokers and expects the same
// summary as on the in-memory broker: the handlers do not change, the
// broker does.
func TestSameSummaryOnEveryBroker(t *testing.T) {
	memOut := runSummary(t, "--orders", "20")
	for _, tc := range []struct {
		name, file, envKey string
		addr               func(testing.TB) string
	}{
		{"rabbitmq", "rabbitmq.yaml", "SWITCHYARD_BROKER_AMQP_URL", brokertest.AMQPURL},
		{"kafka", "kafka.yaml", "SWITCHYARD_BROKER_KAFKA_BROKERS", brokertest.KafkaBrokers},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(tc.envKey, tc.addr(t))
			var b [4]byte
			_, _ = rand.Read(b[:])
			// A namespace of its own: earlier runs' messages and offsets stay out.
			t.Setenv("SWITCHYARD_SERVICE_NAMESPACE", "example-"+hex.EncodeToString(b[:])+".")
			sameSummary(t, tc.name, runSummary(t, "--orders", "20", "--config", tc.file), memOut)
		})
	}
}

// sameSummary fails t for every count of got that differs from memory's.
func sameSummary(t *testing.T, name string, got, memory map[string]int64) {
	t.Helper()
	for _, k := range []string{"published", "handled", "retried", "dead_lettered", "reserved", "rejected", "notified", "duplicates"} {
		if got[k] != memory[k] {
			t.Errorf("%s: %s = %d, memory says %d", name, k, got[k], memory[k])
		}
	}
}

func runSummary(t *testing.T, args ...string) map[string]int64 {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("run %v: %v\nstderr:\n%s", args, err, stderr.String())
	}
	return parseSummary(t, stdout.String())
}
