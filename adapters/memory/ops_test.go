package memory_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/header"
)

func newOpsBroker(t *testing.T) *memory.Broker {
	t.Helper()
	b, err := memory.New(memory.Config{NackBackoff: time.Hour, MaxNackBackoff: time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// deadLetter builds a message dead-lettered at base+i seconds.
func deadLetter(id, key string, at time.Time) *message.Message {
	m := message.NewMessage(id, []byte(`{"id":"`+id+`"}`))
	if key != "" {
		m.Metadata[header.Key] = key
	}
	m.Metadata[header.DeadLetterLastFailure] = at.UTC().Format(time.RFC3339Nano)
	return m
}

func browseIDs(t *testing.T, b *memory.Broker, topic, group string) []string {
	t.Helper()
	var ids []string
	err := b.Browse(context.Background(), topic, group, func(m *message.Message) bool {
		ids = append(ids, m.UUID)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func TestProvisionKeepsMessagesAndBrowseDoesNotConsume(t *testing.T) {
	b := newOpsBroker(t)
	ctx := context.Background()
	if err := b.Provision(ctx, "orders.dead_letter", broker.DeadLetterGroup); err != nil {
		t.Fatal(err)
	}
	// Another group registering later must not take the kept messages away.
	if err := b.Provision(ctx, "orders.dead_letter", "other"); err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i, key := range []string{"k1", "k2", "k1", "", "k2"} {
		if err := b.Publisher().Publish("orders.dead_letter", deadLetter(fmt.Sprint("m", i), key, base.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"m0", "m1", "m2", "m3", "m4"}
	for range 2 {
		if got := browseIDs(t, b, "orders.dead_letter", broker.DeadLetterGroup); !reflect.DeepEqual(got, want) {
			t.Fatalf("Browse = %q, want %q (oldest first)", got, want)
		}
	}
	if d := b.Depth("orders.dead_letter", broker.DeadLetterGroup); d != 5 {
		t.Fatalf("Depth after browsing = %d, want 5", d)
	}

	// The group's subscriber still receives every message.
	sub, err := b.Subscriber(broker.DeadLetterGroup, broker.SubscriberOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs, err := sub.Subscribe(sctx, "orders.dead_letter")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for len(got) < 5 {
		select {
		case m := <-msgs:
			got[m.UUID] = true
			m.Ack()
		case <-time.After(10 * time.Second):
			t.Fatalf("received %d of 5 messages", len(got))
		}
	}
}

func TestBrowseStopsWhenFnReturnsFalse(t *testing.T) {
	b := newOpsBroker(t)
	if err := b.Provision(context.Background(), "t", "g"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := b.Publisher().Publish("t", message.NewMessage(fmt.Sprint(i), nil)); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	if err := b.Browse(context.Background(), "t", "g", func(*message.Message) bool { n++; return false }); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("fn called %d times after returning false, want 1", n)
	}
}

func TestBrowseSeesNackedMessagesNotInFlightOnes(t *testing.T) {
	b := newOpsBroker(t)
	ctx := context.Background()
	if err := b.Provision(ctx, "t", "g"); err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 3 {
		if err := b.Publisher().Publish("t", deadLetter(fmt.Sprint("m", i), "", base.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	sub, err := b.Subscriber("g", broker.SubscriberOptions{Prefetch: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs, err := sub.Subscribe(sctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	first := <-msgs
	first.Nack() // waits an hour for redelivery: delayed, still the group's
	second := <-msgs
	// second is in flight: not visible.
	if got, want := browseIDs(t, b, "t", "g"), []string{first.UUID, "m2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Browse = %q, want %q", got, want)
	}
	second.Ack()
}

func TestBrowseUnknownAndBacklog(t *testing.T) {
	b := newOpsBroker(t)
	if got := browseIDs(t, b, "nothing", "g"); len(got) != 0 {
		t.Fatalf("unknown topic browsed %q", got)
	}
	// Published before any group registered: kept for the first group.
	if err := b.Publisher().Publish("early", message.NewMessage("e1", nil)); err != nil {
		t.Fatal(err)
	}
	if got := browseIDs(t, b, "early", "g"); !reflect.DeepEqual(got, []string{"e1"}) {
		t.Fatalf("backlog browsed %q, want [e1]", got)
	}
	if err := b.Provision(context.Background(), "early", "g"); err != nil {
		t.Fatal(err)
	}
	if got := browseIDs(t, b, "early", "other"); len(got) != 0 {
		t.Fatalf("unregistered group browsed %q", got)
	}
	if got := browseIDs(t, b, "early", "g"); !reflect.DeepEqual(got, []string{"e1"}) {
		t.Fatalf("after Provision browsed %q, want [e1]", got)
	}
}

func TestOpsErrors(t *testing.T) {
	b := newOpsBroker(t)
	ctx := context.Background()
	if err := b.Provision(ctx, "t", ""); !errors.Is(err, memory.ErrInvalidGroup) {
		t.Fatalf("Provision with empty group: %v", err)
	}
	if err := b.Browse(ctx, "t", "", func(*message.Message) bool { return true }); !errors.Is(err, memory.ErrInvalidGroup) {
		t.Fatalf("Browse with empty group: %v", err)
	}
	_ = b.Close()
	if err := b.Provision(ctx, "t", "g"); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("Provision after Close: %v", err)
	}
	if err := b.Browse(ctx, "t", "g", func(*message.Message) bool { return true }); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("Browse after Close: %v", err)
	}
}
