package service_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/retry"
	"github.com/switchyard-go/switchyard/pkg/service"
)

func TestPolicyPrecedence(t *testing.T) {
	svc := service.New(newBroker(t),
		service.WithDefaults(service.Policy{Concurrency: 2, HopLimit: 8, Retry: retry.Policy{MaxAttempts: 7, Jitter: -1}}),
		service.WithOverrides(map[string]service.Policy{"a": {Concurrency: 9, Retry: retry.Policy{InitialInterval: time.Second}}}),
	)
	noop := func(context.Context, orderPlaced) error { return nil }
	if err := service.Handle(svc, "a", noop, service.Concurrency(3), service.Timeout(time.Minute),
		service.Retry(retry.Policy{MaxAttempts: 4})); err != nil {
		t.Fatal(err)
	}
	p, _ := svc.PolicyOf("a")
	// Override (file) > code > service defaults > framework defaults.
	if p.Concurrency != 9 || p.Timeout != time.Minute || p.HopLimit != 8 || p.Group != "a" ||
		p.Retry.MaxAttempts != 4 || p.Retry.InitialInterval != time.Second || p.Retry.Jitter != retry.NoJitter ||
		p.Retry.MaxInterval != retry.DefaultMaxInterval || p.MaxInProcessWait != service.DefaultMaxInProcessWait ||
		p.DeadLetterTopic != "a.dead_letter" {
		t.Errorf("effective policy = %+v", p)
	}
	err := (service.Policy{Concurrency: -1, Prefetch: -1, Retry: retry.Policy{Multiplier: 0.1}}).Validate("handlers.x")
	for _, f := range []string{"handlers.x.concurrency", "handlers.x.prefetch", "handlers.x.retry.multiplier"} {
		if err == nil || !strings.Contains(err.Error(), f) {
			t.Errorf("Validate does not report %s: %v", f, err)
		}
	}
}

type countingRecorder struct {
	mu        sync.Mutex
	published map[string]int
	handled   map[string]int
}

func (r *countingRecorder) Published(topic, _ string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.published[topic]++
}

func (r *countingRecorder) Handled(h string, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.handled[h]++
}
func (r *countingRecorder) Retried(string)              {}
func (r *countingRecorder) DeadLettered(string, string) {}
func (r *countingRecorder) Nacked(string)               {}
func (r *countingRecorder) Duplicate(string)            {}

func TestNamespaceTopicAndRecorder(t *testing.T) {
	b := newBroker(t)
	rec := &countingRecorder{published: map[string]int{}, handled: map[string]int{}}
	staging := service.New(b, service.WithNamespace("staging."), service.WithRecorder(rec))
	prod := service.New(b)
	stagingGot, prodGot := make(chan string, 10), make(chan string, 10)
	if err := service.Handle(staging, "proj", func(_ context.Context, e orderPlaced) error {
		stagingGot <- e.OrderID
		return nil
	}, service.Group("proj"), service.Topic("orders.v1")); err != nil {
		t.Fatal(err)
	}
	if err := service.Handle(prod, "proj", func(_ context.Context, e orderPlaced) error {
		prodGot <- e.OrderID
		return nil
	}, service.Group("proj"), service.Topic("orders.v1")); err != nil {
		t.Fatal(err)
	}
	if p, _ := staging.PolicyOf("proj"); p.Group != "staging.proj" || p.DeadLetterTopic != "staging.proj.dead_letter" {
		t.Errorf("namespaced policy = %+v", p)
	}
	stopStaging := start(t, staging)
	stopProd := start(t, prod)
	ctx := context.Background()
	msg, topic, err := staging.NewMessage(ctx, orderPlaced{OrderID: "s-1"}, service.ToTopic("orders.v1"))
	if err != nil || topic != "staging.orders.v1" || msg.Metadata.Get(header.Type) != "orders.order_placed" {
		t.Fatalf("NewMessage = %v, %q, %v", msg, topic, err)
	}
	if err := staging.Publish(ctx, orderPlaced{OrderID: "s-1"}, service.ToTopic("orders.v1")); err != nil {
		t.Fatal(err)
	}
	if err := prod.Publish(ctx, orderPlaced{OrderID: "p-1"}, service.ToTopic("orders.v1")); err != nil {
		t.Fatal(err)
	}
	if id := recv(t, stagingGot, "staging's event"); id != "s-1" {
		t.Errorf("staging got %s", id)
	}
	if id := recv(t, prodGot, "prod's event"); id != "p-1" {
		t.Errorf("prod got %s", id)
	}
	_ = stopStaging()
	_ = stopProd()
	if len(stagingGot) != 0 || len(prodGot) != 0 {
		t.Error("an event crossed namespaces")
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.published["staging.orders.v1"] != 1 || rec.handled["proj"] != 1 {
		t.Errorf("recorder: published %v handled %v", rec.published, rec.handled)
	}
}
