package service_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// tappingBroker is a user's wrapper of an adapter: its publisher keeps
// every message it is given (an audit tap) and passes it on.
type tappingBroker struct {
	broker.Broker
	tap *tap
}

func (b tappingBroker) Publisher() message.Publisher { return b.tap }

type tap struct {
	next message.Publisher
	mu   sync.Mutex
	kept []*message.Message
}

func (t *tap) Publish(topic string, msgs ...*message.Message) error {
	t.mu.Lock()
	t.kept = append(t.kept, msgs...)
	t.mu.Unlock()
	return t.next.Publish(topic, msgs...)
}

func (t *tap) Close() error { return nil }

// The runtime reuses a published message only when the publisher itself
// says its Publish copies (broker.CopyingPublisher): a wrapper of the
// memory adapter's publisher, which keeps what it is given, must find each
// message as it was published. Break it (decide by the broker's adapter, as
// before) and the tap finds one recycled message, emptied.
func TestReuseOnlyWhenThePublisherCopies(t *testing.T) {
	inner := newBroker(t)
	if cp, ok := inner.Publisher().(broker.CopyingPublisher); !ok || !cp.PublishCopies() {
		t.Fatal("the memory publisher no longer reports that it copies: this test would prove nothing")
	}
	tb := tappingBroker{Broker: inner, tap: &tap{next: inner.Publisher()}}
	svc := service.New(tb)
	for i := range 3 {
		if err := svc.Publish(context.Background(), orderPlaced{OrderID: fmt.Sprintf("o-%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	kept := tb.tap.kept
	if len(kept) != 3 {
		t.Fatalf("tap saw %d messages, want 3", len(kept))
	}
	for i, m := range kept {
		if want := fmt.Sprintf(`{"order_id":"o-%d"}`, i); string(m.Payload) != want || m.UUID == "" || len(m.Metadata) == 0 {
			t.Errorf("message %d after publish: payload %q uuid %q metadata %v, want payload %s as published", i, m.Payload, m.UUID, m.Metadata, want)
		}
	}
	if kept[0] == kept[1] {
		t.Error("the tap was handed one recycled message for two publishes")
	}
}
