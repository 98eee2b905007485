package ops_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/ops"
)

// sickBroker is the faulty memory broker whose health check fails while
// sick is set, and whose check blocks until its context ends while hang
// is set (a broker that does not answer).
type sickBroker struct {
	*faultyBroker
	mu   sync.Mutex
	sick error
	hang bool
}

func (b *sickBroker) set(sick error, hang bool) {
	b.mu.Lock()
	b.sick, b.hang = sick, hang
	b.mu.Unlock()
}

func (b *sickBroker) Check(ctx context.Context) error {
	b.mu.Lock()
	sick, hang := b.sick, b.hang
	b.mu.Unlock()
	if hang {
		<-ctx.Done()
		return ctx.Err()
	}
	if sick != nil {
		return sick
	}
	return b.faultyBroker.Check(ctx)
}

var _ broker.HealthChecker = (*sickBroker)(nil)

func TestReadyzFailsWhileTheBrokerIsUnhealthyAndRecovers(t *testing.T) {
	b := &sickBroker{faultyBroker: newFaultyBroker(t)}
	r := start(t, b, ops.Config{Readiness: ops.ReadinessConfig{BrokerTimeout: 100 * time.Millisecond}}, func(context.Context, paid) error { return nil })
	rd := waitReadiness(t, r.base, "200", func(code int, rd ops.Readiness) bool { return code == http.StatusOK })
	if rd.Broker == nil || rd.Broker.Name != "memory" || !rd.Broker.Healthy || rd.Broker.Error != "" {
		t.Errorf("broker %+v", rd.Broker)
	}

	b.set(errors.New("connection to 10.0.0.1:5672 lost"), false)
	rd = waitReadiness(t, r.base, "503 for the broker", func(code int, rd ops.Readiness) bool {
		return code == http.StatusServiceUnavailable
	})
	if rd.Reason != "broker memory unreachable: connection to 10.0.0.1:5672 lost" || rd.Status != ops.StatusRunning ||
		rd.Broker.Healthy || rd.Broker.Error != "connection to 10.0.0.1:5672 lost" {
		t.Errorf("/readyz: %+v", rd)
	}
	if rd.Subscriptions[0].Backlog != nil {
		t.Errorf("backlog read from an unreachable broker: %d", *rd.Subscriptions[0].Backlog)
	}
	waitMetrics(t, r.base, `switchyard_broker_up{broker="memory"} 0`)

	// A broker that does not answer counts as unreachable after
	// broker_timeout, and /readyz answers meanwhile.
	b.set(nil, true)
	begin := time.Now()
	rd = waitReadiness(t, r.base, "503 for a silent broker", func(code int, rd ops.Readiness) bool {
		return code == http.StatusServiceUnavailable && strings.Contains(rd.Reason, "no answer within http.readiness.broker_timeout 100ms")
	})
	if took := time.Since(begin); took > 3*time.Second {
		t.Errorf("/readyz took %s on a silent broker", took)
	}

	b.set(nil, false)
	rd = waitReadiness(t, r.base, "200 after the broker recovered", func(code int, rd ops.Readiness) bool {
		return code == http.StatusOK && rd.Ready
	})
	if !rd.Broker.Healthy {
		t.Errorf("broker %+v", rd.Broker)
	}
	waitMetrics(t, r.base, `switchyard_broker_up{broker="memory"} 1`)
}

func TestReadyzReportsTheBacklogAndJudgesItAgainstMaxBacklog(t *testing.T) {
	release := make(chan struct{})
	r := start(t, newFaultyBroker(t), ops.Config{Readiness: ops.ReadinessConfig{MaxBacklog: 3}}, func(context.Context, paid) error {
		<-release
		return nil
	})
	defer close(release)
	// The memory broker hands out its prefetch (64) and keeps the rest
	// queued while the handler holds what it got: 100 leave 36.
	for i := range 100 {
		if err := r.svc.Publish(context.Background(), paid{ID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	rd := waitReadiness(t, r.base, "503 for the backlog", func(code int, rd ops.Readiness) bool {
		return code == http.StatusServiceUnavailable && rd.Subscriptions[0].Backlog != nil && *rd.Subscriptions[0].Backlog == 36
	})
	const n = 36
	if want := fmt.Sprintf("subscription payments.record/payments backlog %d above http.readiness.max_backlog 3", n); rd.Reason != want {
		t.Errorf("reason %q, want %q", rd.Reason, want)
	}
	if rd.Subscriptions[0].Handlers[0] != "payments.record" || rd.Subscriptions[0].BacklogPartitions != nil {
		t.Errorf("/readyz: %+v", rd)
	}
	waitMetrics(t, r.base, fmt.Sprintf(`switchyard_backlog_messages{group="payments.record",handlers="payments.record",topic="payments"} %d`, n))
}

// waitMetrics polls /metrics until it contains want, or fails after 10s.
func waitMetrics(t *testing.T, base, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, body := get(t, base+"/metrics")
		if strings.Contains(body, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics never showed %q:\n%s", want, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestReadinessConfigIsValidated(t *testing.T) {
	err := ops.Config{Addr: ":9090", Readiness: ops.ReadinessConfig{BrokerTimeout: -time.Second, MaxBacklog: -1}}.Validate("http")
	for _, want := range []string{
		"http.readiness.broker_timeout: -1s, want > 0 (0 means 2s)",
		"http.readiness.max_backlog: -1, want >= 0 (0 means no threshold)",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want %q", err, want)
		}
	}
	if got := (ops.Config{}).WithDefaults().Readiness.BrokerTimeout; got != ops.DefaultBrokerTimeout {
		t.Errorf("default broker_timeout %s", got)
	}
}
