package ops_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.uber.org/goleak"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/ops"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type paid struct {
	ID string `json:"id"`
}

func (paid) EventType() string  { return "payments.paid" }
func (paid) EventVersion() int  { return 1 }
func (paid) EventTopic() string { return "payments" }

// faultyBroker is the memory broker with two faults a test can switch on:
// kill ends every subscription as a dead connection would (the channel
// closes), and failDeadLetters refuses every publish to a dead-letter
// topic.
type faultyBroker struct {
	*memory.Broker
	killOnce        sync.Once
	killed          chan struct{}
	failDeadLetters atomic.Bool
}

func newFaultyBroker(t *testing.T) *faultyBroker {
	t.Helper()
	b, err := memory.New(memory.Config{NackBackoff: time.Millisecond, MaxNackBackoff: 5 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return &faultyBroker{Broker: b, killed: make(chan struct{})}
}

func (b *faultyBroker) kill() { b.killOnce.Do(func() { close(b.killed) }) }

func (b *faultyBroker) Publisher() message.Publisher {
	return faultyPublisher{b, b.Broker.Publisher()}
}

func (b *faultyBroker) Subscriber(group string, opts broker.SubscriberOptions) (message.Subscriber, error) {
	sub, err := b.Broker.Subscriber(group, opts)
	if err != nil {
		return nil, err
	}
	return faultySubscriber{sub, b.killed}, nil
}

type faultyPublisher struct {
	b *faultyBroker
	message.Publisher
}

func (p faultyPublisher) Publish(topic string, msgs ...*message.Message) error {
	if p.b.failDeadLetters.Load() && strings.HasSuffix(topic, ".dead_letter") {
		return errors.New("faulty: dead-letter topic refused")
	}
	return p.Publisher.Publish(topic, msgs...)
}

type faultySubscriber struct {
	message.Subscriber
	killed chan struct{}
}

func (s faultySubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	in, err := s.Subscriber.Subscribe(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := make(chan *message.Message)
	go func() {
		defer close(out)
		for {
			select {
			case <-s.killed:
				return
			case msg, ok := <-in:
				if !ok {
					return
				}
				select {
				case out <- msg:
				case <-s.killed:
					msg.Nack()
					return
				}
			}
		}
	}()
	return out, nil
}

// get fetches url and returns the status code and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// readiness fetches /readyz and decodes it.
func readiness(t *testing.T, base string) (int, ops.Readiness) {
	t.Helper()
	code, body := get(t, base+"/readyz")
	var r ops.Readiness
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("/readyz body %q: %v", body, err)
	}
	return code, r
}

// waitReadiness polls /readyz until ok accepts it, or fails after 10s.
func waitReadiness(t *testing.T, base string, what string, ok func(int, ops.Readiness) bool) ops.Readiness {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, r := readiness(t, base)
		if ok(code, r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never showed %s; last %d %+v", what, code, r)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
