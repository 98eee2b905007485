// Package brokertest finds the real brokers that integration tests run
// against. Each function returns the address from its environment variable;
// when the variable is unset the test is skipped, except under CI (CI=true),
// where a missing broker fails the test: CI must never pass by skipping.
//
// `make up` starts every broker and `make test` exports these variables.
package brokertest

import (
	"fmt"
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
	Unavailable(tb, fmt.Sprintf("%s not configured: %s is unset; run `make up` and `. .work/env`, or `make test`, which does both", what, env))
	return ""
}

// Unavailable ends a test that lacks what it needs (a broker, a tool, the
// Kafka jars; reason says which and how to get it): it skips, and under
// CI=true, where `make up` provides everything, it fails instead.
func Unavailable(tb testing.TB, reason string) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatalf("%s (required under CI=true)", reason)
	}
	tb.Skipf("%s (under CI=true this fails instead)", reason)
}

// The three-node clusters of scripts/cluster.sh (`make up CLUSTER=3`
// writes these to .work/cluster/env). EnvCluster asks for them: the
// cluster tests run only when it is set, and then, under CI, fail when an
// address is missing. Without it they skip, under CI too: the clusters are
// not part of the default run.
const (
	EnvCluster             = "SWITCHYARD_TEST_CLUSTER"               // 3
	EnvClusterKafkaBrokers = "SWITCHYARD_TEST_CLUSTER_KAFKA_BROKERS" // 127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094
	EnvClusterAMQPURLs     = "SWITCHYARD_TEST_CLUSTER_AMQP_URLS"     // amqp://guest:guest@127.0.0.1:5701/,...
)

// ClusterKafkaBrokers returns the Kafka cluster's brokers, comma-separated,
// or skips (see EnvCluster).
func ClusterKafkaBrokers(tb testing.TB) string {
	return requireCluster(tb, EnvClusterKafkaBrokers, "the Kafka cluster")
}

// ClusterAMQPURLs returns the RabbitMQ cluster's node URLs, comma-separated,
// or skips (see EnvCluster).
func ClusterAMQPURLs(tb testing.TB) string {
	return requireCluster(tb, EnvClusterAMQPURLs, "the RabbitMQ cluster")
}

func requireCluster(tb testing.TB, env, what string) string {
	tb.Helper()
	if os.Getenv(EnvCluster) == "" {
		tb.Skipf("%s not asked for: set %s=3 with the addresses of `make up CLUSTER=3` (. .work/cluster/env)", what, EnvCluster)
		return ""
	}
	if v := os.Getenv(env); v != "" {
		return v
	}
	Unavailable(tb, fmt.Sprintf("%s asked for (%s is set) but not configured: %s is unset; run `make up CLUSTER=3` and `. .work/cluster/env`", what, EnvCluster, env))
	return ""
}
