package memory_test

import (
	"context"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/header"
)

// Two groups each receive every message; messages with one key arrive in order.
func Example() {
	b, err := memory.New(memory.Config{}, nil)
	if err != nil {
		panic(err)
	}
	defer b.Close()
	ctx := context.Background()

	for _, group := range []string{"billing", "shipping"} {
		sub, _ := b.Subscriber(group, broker.SubscriberOptions{})
		msgs, _ := sub.Subscribe(ctx, "orders")
		for range 2 {
			go func() {
				m := <-msgs
				m.Ack()
			}()
		}
	}

	for _, id := range []string{"placed", "paid"} {
		m := message.NewMessage(id, []byte(`{}`))
		m.Metadata.Set(header.Key, "order-42")
		if err := b.Publisher().Publish("orders", m); err != nil {
			panic(err)
		}
	}
	fmt.Println("ordering:", b.Capabilities().Ordering)

	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := b.WaitIdle(wctx, 10*time.Millisecond); err != nil {
		panic(err)
	}
	fmt.Println("idle:", b.Idle())
	// Output:
	// ordering: per-key
	// idle: true
}
