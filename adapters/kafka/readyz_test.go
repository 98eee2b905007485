package kafka_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/adapters/kafka"
	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/internal/opstest"
	"github.com/switchyard-go/switchyard/pkg/ops"
)

// TestReadyzFollowsKafka runs a service with its operations server on a
// private Kafka (it is stopped, which the shared one never is): /readyz
// reports the consumer lag of a known backlog per partition and fails
// above http.readiness.max_backlog, /metrics exports it, and when Kafka
// stops /readyz fails naming the broker and recovers once it is back.
func TestReadyzFollowsKafka(t *testing.T) {
	s := brokertest.StartKafka(t)
	cfg := testConfig(t)
	cfg.Brokers = strings.Split(s.KafkaBrokers(), ",")
	cfg.Partitions = 3
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := kafka.New(ctx, cfg, testLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	svc := opstest.Run(t, b, ops.Config{Readiness: ops.ReadinessConfig{MaxBacklog: 2}})
	if err := b.WaitGroup(ctx, opstest.Group, 1); err != nil {
		t.Fatal(err)
	}
	r := svc.WaitReadyz(20*time.Second, "200 with a healthy broker", func(code int, r ops.Readiness) bool {
		return code == http.StatusOK && r.Broker != nil && r.Broker.Healthy && opstest.Backlog(r) == 0
	})
	if r.Broker.Name != "kafka" {
		t.Errorf("/readyz: %+v", r)
	}

	// A known backlog: the handler holds what it was given and nothing is
	// committed, so the lag is everything published.
	for i := range 5 {
		if err := svc.Svc.Publish(context.Background(), opstest.Paid{ID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	direct, err := b.Backlog(context.Background(), opstest.Topic, opstest.Group)
	var sum int64
	for _, lag := range direct.Partitions {
		sum += lag
	}
	if err != nil || direct.Messages != 5 || len(direct.Partitions) != 3 || sum != 5 {
		t.Errorf("Backlog = %+v, %v; want 5 over 3 partitions", direct, err)
	}
	r = svc.WaitReadyz(10*time.Second, "503 for a lag of 5 above 2", func(code int, r ops.Readiness) bool {
		return code == http.StatusServiceUnavailable && opstest.Backlog(r) == 5
	})
	if want := fmt.Sprintf("subscription %s/%s backlog 5 above http.readiness.max_backlog 2", opstest.Group, opstest.Topic); r.Reason != want {
		t.Errorf("reason %q, want %q", r.Reason, want)
	}
	if len(r.Subscriptions[0].BacklogPartitions) != 3 {
		t.Errorf("backlog_partitions %v, want 3 partitions", r.Subscriptions[0].BacklogPartitions)
	}
	svc.WaitMetrics(10*time.Second, "the lag", func(body string) bool {
		return strings.Contains(body, `switchyard_backlog_messages{group="payments.hold",handlers="payments.hold",topic="payments"} 5`) &&
			strings.Contains(body, `switchyard_backlog_partition_messages{group="payments.hold",partition="0",topic="payments"}`) &&
			strings.Contains(body, `switchyard_broker_up{broker="kafka"} 1`)
	})
	svc.Release()
	svc.Handled(5, 20*time.Second)
	svc.WaitReadyz(20*time.Second, "200 once the lag is committed away", func(code int, r ops.Readiness) bool {
		return code == http.StatusOK && opstest.Backlog(r) == 0
	})

	// Kafka goes down: /readyz fails naming it, and recovers.
	s.Stop()
	r = svc.WaitReadyz(30*time.Second, "503 while Kafka is down", func(code int, r ops.Readiness) bool {
		return code == http.StatusServiceUnavailable
	})
	if !strings.HasPrefix(r.Reason, "broker kafka unreachable: kafka: no broker of ["+cfg.Brokers[0]+"] answers: ") ||
		r.Broker == nil || r.Broker.Healthy || r.Status != ops.StatusRunning {
		t.Errorf("/readyz while down: %+v", r)
	}
	svc.WaitMetrics(10*time.Second, "the broker down", func(body string) bool {
		return strings.Contains(body, `switchyard_broker_up{broker="kafka"} 0`)
	})
	s.Start()
	svc.WaitReadyz(90*time.Second, "200 after Kafka is back", func(code int, r ops.Readiness) bool {
		return code == http.StatusOK && r.Ready && r.Broker.Healthy
	})
	if err := svc.Svc.Publish(context.Background(), opstest.Paid{ID: "after"}); err != nil {
		t.Fatal(err)
	}
	svc.Handled(1, 60*time.Second)
}
