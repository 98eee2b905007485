package amqp

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/internal/opstest"
	"github.com/switchyard-go/switchyard/pkg/ops"
)

// TestReadyzFollowsRabbitMQ runs a service with its operations server on a
// private RabbitMQ node (it is stopped, which the shared one never is):
// /readyz reports the queue depth of a known backlog and fails above
// http.readiness.max_backlog, /metrics exports it, and when the node stops
// /readyz fails naming the broker and recovers once the node is back.
func TestReadyzFollowsRabbitMQ(t *testing.T) {
	s := brokertest.StartRabbitMQ(t)
	b, err := New(context.Background(), Config{URL: s.AMQPURL(), ReconnectBackoff: 50 * time.Millisecond, MaxReconnectBackoff: 500 * time.Millisecond}, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	svc := opstest.Run(t, b, ops.Config{Readiness: ops.ReadinessConfig{MaxBacklog: 2}})

	r := svc.WaitReadyz(10*time.Second, "200 with a healthy broker", func(code int, r ops.Readiness) bool {
		return code == http.StatusOK && r.Broker != nil && r.Broker.Healthy && opstest.Backlog(r) == 0
	})
	if r.Broker.Name != "amqp" || r.Subscriptions[0].Handlers[0] != opstest.Handler {
		t.Errorf("/readyz: %+v", r)
	}

	// A known backlog: the handler holds the first of 5 events (prefetch
	// 1), so 4 are ready in the group's queue.
	for i := range 5 {
		if err := svc.Svc.Publish(context.Background(), opstest.Paid{ID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	direct, err := b.Backlog(context.Background(), opstest.Topic, opstest.Group)
	if err != nil || direct.Messages < 4 || direct.Partitions != nil {
		t.Errorf("Backlog = %+v, %v; want at least 4 (5 published, at most 1 handed out), no partitions", direct, err)
	}
	r = svc.WaitReadyz(10*time.Second, "503 for a backlog of 4 above 2", func(code int, r ops.Readiness) bool {
		return code == http.StatusServiceUnavailable && opstest.Backlog(r) == 4
	})
	if want := fmt.Sprintf("subscription %s/%s backlog 4 above http.readiness.max_backlog 2", opstest.Group, opstest.Topic); r.Reason != want || r.Status != ops.StatusRunning {
		t.Errorf("reason %q, want %q", r.Reason, want)
	}
	svc.WaitMetrics(10*time.Second, "the backlog", func(body string) bool {
		return strings.Contains(body, `switchyard_backlog_messages{group="payments.hold",handlers="payments.hold",topic="payments"} 4`) &&
			strings.Contains(body, `switchyard_broker_up{broker="amqp"} 1`)
	})
	svc.Release()
	svc.Handled(5, 20*time.Second)
	svc.WaitReadyz(10*time.Second, "200 once the backlog drained", func(code int, r ops.Readiness) bool {
		return code == http.StatusOK && opstest.Backlog(r) == 0
	})

	// The broker goes down: /readyz fails naming it, and recovers.
	s.Stop()
	r = svc.WaitReadyz(30*time.Second, "503 while RabbitMQ is down", func(code int, r ops.Readiness) bool {
		return code == http.StatusServiceUnavailable
	})
	if !strings.HasPrefix(r.Reason, "broker amqp unreachable: amqp: ") || !strings.Contains(r.Reason, "connection to amqp://guest:xxxxx@") ||
		!strings.Contains(r.Reason, "down (reconnecting)") || r.Broker == nil || r.Broker.Healthy || r.Status != ops.StatusRunning {
		t.Errorf("/readyz while down: %+v", r)
	}
	if code, _, _ := svc.Get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz while the broker is down: %d, want 200 (the process is alive)", code)
	}
	svc.WaitMetrics(10*time.Second, "the broker down", func(body string) bool {
		return strings.Contains(body, `switchyard_broker_up{broker="amqp"} 0`)
	})
	s.Start()
	svc.WaitReadyz(60*time.Second, "200 after RabbitMQ is back", func(code int, r ops.Readiness) bool {
		return code == http.StatusOK && r.Ready && r.Broker.Healthy && opstest.Backlog(r) == 0
	})
	// And the service still consumes.
	if err := svc.Svc.Publish(context.Background(), opstest.Paid{ID: "after"}); err != nil {
		t.Fatal(err)
	}
	svc.Handled(1, 20*time.Second)
}
