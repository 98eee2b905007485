package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/header"
)

// The raw-headers contender is the fair baseline only if it puts on the
// wire what Switchyard does: one message of each, read back from their
// queues on the real RabbitMQ, has the same body, properties and header
// table (names, AMQP types, values; the per-message id and time in the
// same form). Break it: drop a header from raw-headers' table and this
// fails naming it.
func TestRawHeadersPublishesWhatSwitchyardPublishes(t *testing.T) {
	url := brokertest.AMQPURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := spec{Broker: "amqp", Scenario: "publish", Msgs: 1, Prefix: fmt.Sprintf("sybench-test-%d-", time.Now().UnixNano()),
		Run: 1, AMQPURL: url, Prefetch: 100, Concurrency: 1, Publishers: 1}
	conn, err := amqp091.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	e := Event{ID: 7, Key: "k7", SentAt: time.Now().UnixNano(), Body: body}
	// publishOne publishes e with contender and reads it back from queue.
	publishOne := func(contender string, queue func(spec) string) amqp091.Delivery {
		t.Helper()
		s := base
		s.Contender = contender
		c, err := newContender(s)
		if err != nil {
			t.Fatal(err)
		}
		defer c.close()
		t.Cleanup(func() {
			_, _ = ch.QueueDelete(queue(s), false, false, false)
			_ = ch.ExchangeDelete(s.topic(), false, false)
		})
		if err := c.start(ctx, consumeNone, nil); err != nil {
			t.Fatal(err)
		}
		if err := c.publish(ctx, &e); err != nil {
			t.Fatal(err)
		}
		d, ok, err := ch.Get(queue(s), true)
		if err != nil || !ok {
			t.Fatalf("%s: get from %s: ok=%v, %v", contender, queue(s), ok, err)
		}
		return d
	}
	sy := publishOne("switchyard", func(s spec) string { return s.topic() + "." + s.group() })
	raw := publishOne("raw-headers", func(s spec) string { return s.topic() + ".raw" })

	if got, want := slices.Sorted(maps.Keys(raw.Headers)), slices.Sorted(maps.Keys(sy.Headers)); !slices.Equal(got, want) {
		t.Fatalf("raw-headers sends headers %v, Switchyard %v", got, want)
	}
	perMessage := map[string]bool{header.ID: true, header.Time: true, header.CorrelationID: true}
	for k, v := range sy.Headers {
		sv, ok1 := v.(string)
		rv, ok2 := raw.Headers[k].(string)
		if !ok1 || !ok2 {
			t.Errorf("header %s: Switchyard sends %T, raw-headers %T; want strings (AMQP longstr) in both", k, v, raw.Headers[k])
			continue
		}
		if !perMessage[k] && sv != rv {
			t.Errorf("header %s: Switchyard %q, raw-headers %q", k, sv, rv)
		}
	}
	for name, d := range map[string]amqp091.Delivery{"switchyard": sy, "raw-headers": raw} {
		id, _ := d.Headers[header.ID].(string)
		if len(id) != 36 || d.MessageId != id || d.Headers[header.CorrelationID] != id {
			t.Errorf("%s: message id %q, ce_id %q, correlation %v: want one UUID in all three", name, d.MessageId, id, d.Headers[header.CorrelationID])
		}
		if ts, _ := d.Headers[header.Time].(string); func() error { _, err := time.Parse(event.TimeLayout, ts); return err }() != nil {
			t.Errorf("%s: ce_time %q is not in %s", name, ts, event.TimeLayout)
		}
	}
	props := func(d amqp091.Delivery) string {
		return fmt.Sprintf("content-type=%q encoding=%q mode=%d priority=%d correlation=%q reply-to=%q expiration=%q timestamp=%v type=%q user=%q app=%q body=%q",
			d.ContentType, d.ContentEncoding, d.DeliveryMode, d.Priority, d.CorrelationId, d.ReplyTo, d.Expiration, d.Timestamp, d.Type, d.UserId, d.AppId, d.Body)
	}
	if props(sy) != props(raw) {
		t.Errorf("properties and body differ:\nswitchyard  %s\nraw-headers %s", props(sy), props(raw))
	}
}
