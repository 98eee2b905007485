package kafka_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pkg/broker"
)

func TestWaitGroupWaitsForEveryMember(t *testing.T) {
	b := newBroker(t, nil)
	topic, group := uniqueName(t, "topic"), uniqueName(t, "group")
	cleanupTopic(t, topic, group)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range 2 {
		sub, err := b.Subscriber(group, broker.SubscriberOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sub.Subscribe(ctx, topic); err != nil {
			t.Fatal(err)
		}
	}
	wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
	defer wcancel()
	if err := b.WaitGroup(wctx, group, 2); err != nil {
		t.Fatal(err)
	}
	short, scancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer scancel()
	if err := b.WaitGroup(short, group, 3); err == nil || !strings.Contains(err.Error(), "2 members") {
		t.Fatalf("WaitGroup for 3 members of a group of 2 = %v, want a timeout naming the 2", err)
	}
}
