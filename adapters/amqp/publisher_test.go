package amqp

import (
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"
)

// A message is queued for its confirm once Publish returned, and RabbitMQ
// may return it (unroutable) before that: the return is kept and given to
// the message when it is queued, so it is still reported unroutable. A
// return for another message or exchange is not. Break it: drop the strays
// check in push and the message goes unmarked.
func TestReturnBeforeQueuedIsKept(t *testing.T) {
	pc := &pubChan{wake: make(chan struct{}, 1)}
	pc.markReturned(&amqp091.Return{MessageId: "a", Exchange: "x", ReplyCode: amqp091.NoRoute})
	pc.markReturned(&amqp091.Return{MessageId: "b", Exchange: "other"})
	pc.push(pending{msg: message.NewMessage("b", nil), exchange: "x"})
	pc.push(pending{msg: message.NewMessage("a", nil), exchange: "x"})
	if len(pc.queue) != 2 {
		t.Fatalf("queue holds %d, want 2", len(pc.queue))
	}
	if r := pc.queue[1].returned; r == nil || r.ReplyCode != amqp091.NoRoute {
		t.Errorf("message returned before it was queued: returned = %v, want the NO_ROUTE return", r)
	}
	if r := pc.queue[0].returned; r != nil {
		t.Errorf("message b on exchange x got the return of b on another exchange: %v", r)
	}
	if len(pc.strays) != 1 {
		t.Errorf("%d strays kept, want 1 (b on the other exchange)", len(pc.strays))
	}
	for range 2 * maxStrays {
		pc.markReturned(&amqp091.Return{MessageId: "never", Exchange: "x"})
	}
	if len(pc.strays) > maxStrays {
		t.Errorf("%d strays kept, want at most %d", len(pc.strays), maxStrays)
	}
}
