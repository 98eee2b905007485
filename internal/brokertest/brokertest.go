// Package brokertest finds the real brokers that integration tests run
// against. Each function returns the address from its environment variable;
// when the variable is unset the test is skipped, except under CI (CI=true),
// where a missing broker fails the test: CI must never pass by skipping.
//
// `make up` starts every broker and `make test` exports these variables.
package brokertest

import (
	"os"
	"testing"
)

// Environment variables naming the brokers started by scripts/up.sh.
const (
	EnvAMQPURL      = "SWITCHYARD_TEST_AMQP_URL"      // amqp://guest:guest@127.0.0.1:5672/
	EnvKafkaBrokers = "SWITCHYARD_TEST_KAFKA_BROKERS" // 127.0.0.1:9092 (comma-separated)
	EnvPostgresURL  = "SWITCHYARD_TEST_POSTGRES_URL"  // postgres://switchyard:switchyard@127.0.0.1:5432/switchyard?sslmode=disable
	// EnvRabbitmqctl names a rabbitmqctl that reaches the test node
	// (scripts/rabbitmqctl.sh: the node scripts/up.sh started has its own
	// name and cookie).
	EnvRabbitmqctl = "SWITCHYARD_TEST_RABBITMQCTL"
)

// Rabbitmqctl returns the rabbitmqctl command for the test node: the one
// .work/env names, else plain rabbitmqctl.
func Rabbitmqctl() string {
	if v := os.Getenv(EnvRabbitmqctl); v != "" {
		return v
	}
	return "rabbitmqctl"
}

// AMQPURL returns the RabbitMQ URL for tests, or skips (fails under CI).
func AMQPURL(tb testing.TB) string { return require(tb, EnvAMQPURL, "RabbitMQ") }

// KafkaBrokers returns the Kafka bootstrap address list for tests, or skips (fails under CI).
func KafkaBrokers(tb testing.TB) string { return require(tb, EnvKafkaBrokers, "Kafka") }

// PostgresURL returns the PostgreSQL URL for tests, or skips (fails under CI).
func PostgresURL(tb testing.TB) string { return require(tb, EnvPostgresURL, "PostgreSQL") }

func require(tb testing.TB, env, what string) string {
	tb.Helper()
	if v := os.Getenv(env); v != "" {
		return v
	}
	if os.Getenv("CI") == "true" {
		tb.Fatalf("%s is required under CI but %s is unset: run `make up` (or `make test`, which starts it)", what, env)
	}
	tb.Skipf("%s not configured: set %s or run `make test`, which starts it (under CI=true this fails instead)", what, env)
	return ""
}
