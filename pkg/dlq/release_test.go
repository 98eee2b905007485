package dlq_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/dlq"
	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/service"
)

type step struct {
	Key string `json:"key"`
	Seq int    `json:"seq"`
}

func (step) EventType() string  { return "dlqtest.step" }
func (step) EventVersion() int  { return 1 }
func (step) EventTopic() string { return "dlqtest.steps" }
func (s step) EventKey() string { return s.Key }

// TestReleaseAndReplayOnARunningService: a running service parks a key
// behind its dead letter (dead_letter_order: key); the client lists the
// parked key, releases it so that the key's next message is handled, and
// replays the dead letter, which the service then handles.
func TestReleaseAndReplayOnARunningService(t *testing.T) {
	eachBroker(t, func(t *testing.T, b broker.Broker) {
		ns := unique("dlqtest") + "."
		svc := service.New(b, service.WithNamespace(ns))
		handled := make(chan int, 10)
		broken := make(chan struct{})
		if err := service.Handle(svc, "steps", func(ctx context.Context, e step) error {
			select {
			case <-broken:
			default:
				if e.Seq == 0 {
					return failure.Permanent(errors.New("step 0 fails until fixed"))
				}
			}
			handled <- e.Seq
			return nil
		}, service.Group("steps"), service.WithPolicy(service.Policy{DeadLetterOrder: service.DeadLetterOrderKey})); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- svc.Run(ctx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
		select {
		case <-svc.Ready():
		case err := <-done:
			t.Fatal(err)
		}
		for i := range 2 {
			if err := svc.Publish(ctx, step{Key: "k", Seq: i}); err != nil {
				t.Fatal(err)
			}
		}
		c := dlq.New(b, dlq.WithKeys(svc))
		dl := ns + service.DeadLetterTopicFor("steps")
		var s dlq.Summary
		deadline := time.Now().Add(20 * time.Second)
		for s.Count < 2 && time.Now().Before(deadline) {
			var err error
			if s, err = c.List(ctx, dl, dlq.Filter{}, true); err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if s.Count != 2 || s.Letters[0].Reason != "permanent" || s.Letters[1].Reason != "key_parked" {
			t.Fatalf("dead letters of %s: %+v, want permanent then key_parked", dl, s.Letters)
		}
		keys, err := c.Parked(ctx, "")
		if err != nil || len(keys) != 1 || keys[0].Key != "k" || keys[0].MessageID != s.Letters[0].ID {
			t.Fatalf("parked: %v %+v, want k behind %s", err, keys, s.Letters[0].ID)
		}

		if err := c.Release(ctx, "steps", "k"); err != nil {
			t.Fatal(err)
		}
		if keys, _ := c.Parked(ctx, ""); len(keys) != 0 {
			t.Fatalf("still parked after release: %+v", keys)
		}
		if err := svc.Publish(ctx, step{Key: "k", Seq: 2}); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, handled); got != 2 {
			t.Fatalf("handled %d after the release, want 2", got)
		}

		close(broken) // fixed: the replays succeed
		res, err := c.Replay(ctx, dl, dlq.DrainOptions{Idle: 3 * time.Second})
		if err != nil || res.Count != 2 {
			t.Fatalf("replay: %v %+v", err, res)
		}
		got := map[int]bool{recv(t, handled): true, recv(t, handled): true}
		if !got[0] || !got[1] {
			t.Fatalf("handled after replay: %v, want 0 and 1", got)
		}

		if err := c.Release(ctx, "", "k"); !errors.Is(err, dlq.ErrInvalidOption) || !strings.Contains(err.Error(), "group") {
			t.Errorf("release without group: %v", err)
		}
		if err := dlq.New(b).Release(ctx, "steps", "k"); !errors.Is(err, dlq.ErrNoKeys) {
			t.Errorf("release without the service's keys: %v, want ErrNoKeys", err)
		}
	})
}

func recv(t *testing.T, ch <-chan int) int {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(20 * time.Second):
		t.Fatal("nothing handled in 20s")
		return 0
	}
}
