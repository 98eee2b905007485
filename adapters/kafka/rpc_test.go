package kafka_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/internal/rpctest"
	"github.com/switchyard-go/switchyard/pkg/broker"
)

// Request-reply and batch publishing on the real Kafka: every service of
// a test has its own Broker (its own clients and inbox reader), as
// separate instances would.
func TestRequestReplyAndBatch(t *testing.T) {
	prefix := uniqueName(t, "rpc") + "."
	t.Cleanup(func() { deleteByPrefix(t, prefix) })
	var seq atomic.Int64
	rpctest.Run(t, rpctest.Harness{
		Open:         func(t *testing.T) broker.Broker { return newBroker(t, nil) },
		Namespace:    func(*testing.T) string { return fmt.Sprintf("%st%d.", prefix, seq.Add(1)) },
		Wait:         90 * time.Second,
		FailingTopic: "not a legal topic!", // Kafka refuses to create it
	})
}

// An inbox reads only what is addressed to it, from what was sent after
// it opened; another inbox's messages on the shared topic are skipped.
func TestInboxReadsOnlyItsOwn(t *testing.T) {
	b := newBroker(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	mine, err := b.OpenInbox(ctx)
	if err != nil {
		t.Fatal(err)
	}
	other, err := b.OpenInbox(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct{ to, id string }{{other.Address(), "theirs"}, {mine.Address(), "mine"}} {
		if err := b.SendToInbox(ctx, m.to, message.NewMessage(m.id, []byte("{}"))); err != nil {
			t.Fatalf("SendToInbox: %v", err)
		}
	}
	select {
	case m := <-mine.Messages():
		if m.UUID != "mine" {
			t.Fatalf("inbox got %s, want only its own message", m.UUID)
		}
	case <-ctx.Done():
		t.Fatal("nothing reached the inbox")
	}
	if err := b.SendToInbox(ctx, "orders", message.NewMessage("x", nil)); err == nil || !strings.Contains(err.Error(), "not an inbox address") {
		t.Fatalf("SendToInbox to a plain topic = %v, want a refusal", err)
	}
	_ = other.Close()
	for m := range other.Messages() { // what it held, then closed
		if m.UUID != "theirs" {
			t.Fatalf("other inbox got %s", m.UUID)
		}
	}
}

// deleteByPrefix deletes the topics and consumer groups whose names
// start with prefix.
func deleteByPrefix(t *testing.T, prefix string) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokertest.KafkaBrokers(t), ",")...))
	if err != nil {
		t.Logf("cleanup client: %v", err)
		return
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if groups, err := adm.ListGroups(ctx); err == nil {
		var del []string
		for _, g := range groups.Groups() {
			if strings.HasPrefix(g, prefix) {
				del = append(del, g)
			}
		}
		if len(del) > 0 {
			_, _ = adm.DeleteGroups(ctx, del...)
		}
	}
	if topics, err := adm.ListTopics(ctx); err == nil {
		var del []string
		for _, name := range topics.Names() {
			if strings.HasPrefix(name, prefix) {
				del = append(del, name)
			}
		}
		if len(del) > 0 {
			if _, err := adm.DeleteTopics(ctx, del...); err != nil {
				t.Logf("delete topics: %v", err)
			}
		}
	}
}
