package service_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/retry"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// TestDeadLetterOrderKeyParksAndReplayRestoresOrder: with
// dead_letter_order: key, once a message of a key is dead-lettered the
// later messages of that key follow it (key_parked, naming it) while other
// keys flow; replaying the dead letters in order handles them in the key's
// original order and releases the key.
func TestDeadLetterOrderKeyParksAndReplayRestoresOrder(t *testing.T) {
	b := newBroker(t)
	svc := service.New(b, service.WithClock(immediateClock{}))
	var mu sync.Mutex
	var handled []seqEvent
	broken := true
	done := make(chan struct{}, 10)
	err := service.Handle(svc, "seq", func(ctx context.Context, e seqEvent) error {
		mu.Lock()
		defer mu.Unlock()
		if e.Key == "k" && e.Seq == 0 && broken {
			return failure.Permanent(errors.New("cannot handle k#0 yet"))
		}
		handled = append(handled, e)
		done <- struct{}{}
		return nil
	}, service.Retry(retry.Policy{MaxAttempts: 1}),
		service.WithPolicy(service.Policy{DeadLetterOrder: service.DeadLetterOrderKey}))
	if err != nil {
		t.Fatal(err)
	}
	dlq := probe(t, b, "test-dlq", service.DeadLetterTopicFor("seq"))
	start(t, svc)
	for i := range 3 {
		if err := svc.Publish(context.Background(), seqEvent{Key: "k", Seq: i}); err != nil {
			t.Fatal(err)
		}
	}
	if err := svc.Publish(context.Background(), seqEvent{Key: "x", Seq: 0}); err != nil {
		t.Fatal(err)
	}
	var dead []*message.Message
	for range 3 {
		dead = append(dead, recv(t, dlq, "a dead letter"))
	}
	recv(t, done, "the other key handled")
	first := dead[0].UUID
	if r := dead[0].Metadata[header.DeadLetterReason]; r != string(failure.ReasonPermanent) {
		t.Errorf("first dead letter reason %q, want permanent", r)
	}
	for _, m := range dead[1:] {
		if r, behind := m.Metadata[header.DeadLetterReason], m.Metadata[header.DeadLetterParkedBehind]; r != string(failure.ReasonKeyParked) || behind != first {
			t.Errorf("later dead letter: reason %q behind %q, want key_parked behind %s", r, behind, first)
		}
	}
	if keys, _ := svc.ParkedKeys(context.Background(), "seq"); len(keys) != 1 || keys[0].Key != "k" || keys[0].MessageID != first {
		t.Errorf("parked keys = %+v", keys)
	}

	// The operator fixes the cause and replays the key's dead letters in order.
	mu.Lock()
	broken = false
	mu.Unlock()
	for _, m := range dead {
		r := message.NewMessage(m.UUID, m.Payload)
		for k, v := range m.Metadata {
			r.Metadata[k] = v
		}
		r.Metadata[header.ReplayCount] = "1"
		if err := b.Publisher().Publish("seq", r); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		recv(t, done, "a replayed message handled")
	}
	if err := svc.Publish(context.Background(), seqEvent{Key: "k", Seq: 3}); err != nil {
		t.Fatal(err)
	}
	recv(t, done, "a later message of the released key handled")
	mu.Lock()
	defer mu.Unlock()
	var ks []int
	for _, e := range handled {
		if e.Key == "k" {
			ks = append(ks, e.Seq)
		}
	}
	if len(ks) != 4 || ks[0] != 0 || ks[1] != 1 || ks[2] != 2 || ks[3] != 3 {
		t.Errorf("key k handled in order %v, want [0 1 2 3]", ks)
	}
	if keys, _ := svc.ParkedKeys(context.Background(), "seq"); len(keys) != 0 {
		t.Errorf("still parked after the replay: %+v", keys)
	}
}

// TestReleaseKeyLetsLaterMessagesThrough: an operator can release a parked
// key without replaying it, passing back what ParkedKeys listed, with or
// without a namespace.
func TestReleaseKeyLetsLaterMessagesThrough(t *testing.T) {
	for _, ns := range []string{"", "staging."} {
		t.Run("namespace="+ns, func(t *testing.T) {
			b := newBroker(t)
			svc := service.New(b, service.WithClock(immediateClock{}), service.WithNamespace(ns))
			done := make(chan int, 10)
			err := service.Handle(svc, "seq", func(ctx context.Context, e seqEvent) error {
				if e.Seq == 0 {
					return failure.Permanent(errors.New("bad"))
				}
				done <- e.Seq
				return nil
			}, service.WithPolicy(service.Policy{DeadLetterOrder: service.DeadLetterOrderKey}))
			if err != nil {
				t.Fatal(err)
			}
			dlq := probe(t, b, "test-dlq", ns+service.DeadLetterTopicFor("seq"))
			start(t, svc)
			for i := range 2 {
				if err := svc.Publish(context.Background(), seqEvent{Key: "k", Seq: i}); err != nil {
					t.Fatal(err)
				}
			}
			recv(t, dlq, "the first dead letter")
			if m := recv(t, dlq, "the parked one"); m.Metadata[header.DeadLetterReason] != string(failure.ReasonKeyParked) {
				t.Fatalf("second message: %v, want key_parked", m.Metadata[header.DeadLetterReason])
			}
			keys, err := svc.ParkedKeys(context.Background(), "")
			if err != nil || len(keys) != 1 || keys[0].Group != "seq" || keys[0].Key != "k" {
				t.Fatalf("ParkedKeys = %+v, %v; want key k of group seq, as the handler declares it", keys, err)
			}
			if err := svc.ReleaseKey(context.Background(), keys[0].Group, keys[0].Key); err != nil {
				t.Fatal(err)
			}
			if err := svc.Publish(context.Background(), seqEvent{Key: "k", Seq: 2}); err != nil {
				t.Fatal(err)
			}
			if got := recv(t, done, "the message after the release"); got != 2 {
				t.Errorf("handled seq %d, want 2", got)
			}
		})
	}
}
