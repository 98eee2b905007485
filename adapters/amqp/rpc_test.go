package amqp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/internal/rpctest"
	"github.com/switchyard-go/switchyard/pkg/broker"
)

// Request-reply and batch publishing on the real RabbitMQ: every service
// of a test has its own Broker (its own connections and inbox queue), as
// separate instances would.
func TestRequestReplyAndBatch(t *testing.T) {
	e := newEnv(t)
	t.Cleanup(e.deleteByPrefix) // after every subtest's brokers closed
	var seq atomic.Int64
	rpctest.Run(t, rpctest.Harness{
		Open: func(t *testing.T) broker.Broker {
			b, err := New(context.Background(), e.config(), nil)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			t.Cleanup(func() {
				if err := b.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			return b
		},
		Namespace:    func(*testing.T) string { return fmt.Sprintf("t%d.", seq.Add(1)) },
		Wait:         20 * time.Second,
		FailingTopic: "nobody.listens", // no queue bound: unroutable
	})
}

// The inbox is an exclusive, auto-delete queue: it is gone once its
// broker closed, and a reply sent to it then says so.
func TestInboxQueueGoesWithItsConnection(t *testing.T) {
	e := newEnv(t)
	b, sender := e.broker(nil), e.broker(nil)
	in, err := b.OpenInbox(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(in.Address(), e.prefix+InboxQueuePrefix) {
		t.Fatalf("address %q, want the queue prefix then %q", in.Address(), InboxQueuePrefix)
	}
	msg := message.NewMessage("r1", []byte("{}"))
	if err := sender.SendToInbox(context.Background(), in.Address(), msg); err != nil {
		t.Fatalf("SendToInbox: %v", err)
	}
	select {
	case m := <-in.Messages():
		if m.UUID != "r1" {
			t.Fatalf("got %s, want r1", m.UUID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing reached the inbox")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-in.Messages(); ok {
		t.Fatal("inbox channel still open after the broker closed")
	}
	err = sender.SendToInbox(context.Background(), in.Address(), message.NewMessage("r2", []byte("{}")))
	if !errors.Is(err, broker.ErrNoInbox) {
		t.Fatalf("SendToInbox after close = %v, want broker.ErrNoInbox", err)
	}
}

// The exclusive queue dies with its connection; once the connection is
// back the inbox declares it again under the same address, and replies
// reach it again.
func TestInboxComesBackAfterConnectionLoss(t *testing.T) {
	e := newEnv(t)
	b := e.broker(nil)
	in, err := b.OpenInbox(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	killConnections(t, e.name)
	n := 0
	waitFor(t, 30*time.Second, "a send to reach the inbox again", func() bool {
		n++
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := b.SendToInbox(ctx, in.Address(), message.NewMessage(fmt.Sprint("after-", n), []byte("{}"))); err != nil {
			return false // disconnected, or the queue not declared again yet
		}
		select {
		case m, ok := <-in.Messages():
			if !ok {
				t.Fatal("inbox closed by a connection loss")
			}
			return strings.HasPrefix(m.UUID, "after-")
		case <-time.After(10 * time.Second):
			t.Fatal("a confirmed send did not reach the inbox")
		}
		return false
	})
}
