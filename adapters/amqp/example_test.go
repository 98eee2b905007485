package amqp_test

import (
	"context"
	"log"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/adapters/amqp"
	"github.com/switchyard-go/switchyard/pkg/broker"
)

// Connect, publish with confirms, and consume as a consumer group. (Needs a
// running RabbitMQ, so it has no Output and is not run by go test.)
func ExampleNew() {
	ctx := context.Background()
	b, err := amqp.New(ctx, amqp.Config{
		URL:       "amqp://guest:guest@127.0.0.1:5672/",
		QueueType: amqp.QueueTypeQuorum,
	}, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()

	sub, err := b.Subscriber("inventory", broker.SubscriberOptions{Prefetch: 50})
	if err != nil {
		log.Fatal(err)
	}
	msgs, err := sub.Subscribe(ctx, "orders") // declares queue "orders.inventory"
	if err != nil {
		log.Fatal(err)
	}

	// Returns once RabbitMQ confirmed the message.
	if err := b.Publisher().Publish("orders", message.NewMessage("0195f1c2", []byte(`{"id":7}`))); err != nil {
		log.Fatal(err)
	}
	msg := <-msgs
	if err := handle(msg); err != nil {
		// Back to the queue after the nack delay, or later through a delay tier:
		_ = b.Delay(ctx, "orders", "inventory", msg, 30*time.Second)
	}
	msg.Ack()
}

func handle(*message.Message) error { return nil }
