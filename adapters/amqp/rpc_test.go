package amqp

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/internal/rpctest"
	"github.com/switchyard-go/switchyard/pkg/broker"
)

// Request-reply and batch publishing on the real RabbitMQ: every service
// of a test has its own Broker (its own connections and inbox queue), as
// separate instances would.
func TestRequestReplyAndBatch(t *testing.T) {
	url := brokertest.AMQPURL(t)
	prefix := "sytest-rpc-" + randomSuffix() + "."
	t.Cleanup(func() { deleteByPrefix(t, url, prefix) })
	var seq atomic.Int64
	rpctest.Run(t, rpctest.Harness{
		Open: func(t *testing.T) broker.Broker {
			b, err := New(context.Background(), Config{URL: url, ExchangePrefix: prefix, QueuePrefix: prefix}, nil)
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

// deleteByPrefix deletes the queues and exchanges whose names start with
// prefix, found with rabbitmqctl.
func deleteByPrefix(t *testing.T, url, prefix string) {
	conn, err := amqp091.Dial(url)
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	defer conn.Close()
	for _, kind := range []string{"list_queues", "list_exchanges"} {
		out, err := exec.Command(brokertest.Rabbitmqctl(), "-q", kind, "name").Output()
		if err != nil {
			t.Logf("cleanup: rabbitmqctl %s: %v", kind, err)
			continue
		}
		for _, name := range strings.Fields(string(out)) {
			if !strings.HasPrefix(name, prefix) {
				continue
			}
			ch, err := conn.Channel()
			if err != nil {
				t.Logf("cleanup: %v", err)
				return
			}
			if kind == "list_queues" {
				_, err = ch.QueueDelete(name, false, false, false)
			} else {
				err = ch.ExchangeDelete(name, false, false)
			}
			if err != nil {
				t.Logf("cleanup: delete %s: %v", name, err)
			}
			_ = ch.Close()
		}
	}
}
