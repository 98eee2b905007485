package main

import (
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/switchyard-go/switchyard/internal/brokertest"
)

// TestSameSummaryOnClusters runs the example on the three-node clusters
// of `make up CLUSTER=3` with the settings docs/clusters.md gives (all
// nodes, replication factor 3, quorum queues) and expects the summary of
// the in-memory broker. It runs only when SWITCHYARD_TEST_CLUSTER is set.
func TestSameSummaryOnClusters(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		env        func(t *testing.T)
	}{
		{"rabbitmq", "rabbitmq.yaml", func(t *testing.T) {
			urls := brokertest.ClusterAMQPURLs(t)
			t.Setenv("SWITCHYARD_BROKER_AMQP_URL", "")
			t.Setenv("SWITCHYARD_BROKER_AMQP_URLS", urls)
			t.Setenv("SWITCHYARD_BROKER_AMQP_QUEUE_TYPE", "quorum")
		}},
		{"kafka", "kafka.yaml", func(t *testing.T) {
			t.Setenv("SWITCHYARD_BROKER_KAFKA_BROKERS", brokertest.ClusterKafkaBrokers(t))
			t.Setenv("SWITCHYARD_BROKER_KAFKA_REPLICATION_FACTOR", "3")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.env(t)
			memOut := runSummary(t, "--orders", "20")
			var b [4]byte
			_, _ = rand.Read(b[:])
			t.Setenv("SWITCHYARD_SERVICE_NAMESPACE", "example-cluster-"+hex.EncodeToString(b[:])+".")
			sameSummary(t, tc.name+" cluster", runSummary(t, "--orders", "20", "--config", tc.file), memOut)
		})
	}
}
