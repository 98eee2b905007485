package kafka_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-go/switchyard/adapters/kafka"
	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/header"
)

const waitMsg = 20 * time.Second

func newMsg(key string, payload string) *message.Message {
	m := message.NewMessage(watermill.NewUUID(), []byte(payload))
	if key != "" {
		m.Metadata.Set(header.Key, key)
	}
	return m
}

func TestPublishSubscribe(t *testing.T) {
	b := newBroker(t, nil)
	topic, group := uniqueName(t, "t"), uniqueName(t, "g")
	cleanupTopic(t, topic, group)

	var msgs []*message.Message
	for i := range 20 {
		m := newMsg(fmt.Sprintf("k%d", i%4), fmt.Sprintf("p%d", i))
		m.Metadata.Set(header.Type, "orders.order_placed")
		msgs = append(msgs, m)
	}
	// A message with neither ce_id metadata nor key: ce_id comes from UUID.
	bare := message.NewMessage(watermill.NewUUID(), []byte("bare"))
	msgs = append(msgs, bare)
	if err := b.Publisher().Publish(topic, msgs...); err != nil {
		t.Fatalf("Publish: %v", err)
	}

	_, ch := subscribe(t, b, group, topic, broker.SubscriberOptions{})
	want := map[string]*message.Message{}
	for _, m := range msgs {
		want[m.UUID] = m
	}
	for range msgs {
		got := receive(t, ch, waitMsg)
		w, ok := want[got.UUID]
		if !ok {
			t.Fatalf("unexpected or duplicate message %q", got.UUID)
		}
		delete(want, got.UUID)
		if string(got.Payload) != string(w.Payload) {
			t.Errorf("payload %q, want %q", got.Payload, w.Payload)
		}
		if got.Metadata.Get(header.ID) != w.UUID {
			t.Errorf("ce_id %q, want %q", got.Metadata.Get(header.ID), w.UUID)
		}
		for k, v := range w.Metadata {
			if got.Metadata.Get(k) != v {
				t.Errorf("metadata %s = %q, want %q", k, got.Metadata.Get(k), v)
			}
		}
		if got.Metadata.Get(kafka.MetadataPartition) == "" || got.Metadata.Get(kafka.MetadataOffset) == "" {
			t.Errorf("partition/offset metadata missing: %v", got.Metadata)
		}
		if got.Metadata.Get(kafka.MetadataTopic) != topic {
			t.Errorf("topic metadata %q, want %q", got.Metadata.Get(kafka.MetadataTopic), topic)
		}
		got.Ack()
	}
}

func TestFanOutToGroups(t *testing.T) {
	b := newBroker(t, nil)
	topic := uniqueName(t, "t")
	groups := []string{uniqueName(t, "g1"), uniqueName(t, "g2"), uniqueName(t, "g3")}
	cleanupTopic(t, topic, groups...)

	var msgs []*message.Message
	for i := range 30 {
		msgs = append(msgs, newMsg(strconv.Itoa(i), "x"))
	}
	if err := b.Publisher().Publish(topic, msgs...); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	var wg sync.WaitGroup
	for _, g := range groups {
		_, ch := subscribe(t, b, g, topic, broker.SubscriberOptions{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			seen := map[string]bool{}
			deadline := time.After(waitMsg)
			for len(seen) < len(msgs) {
				select {
				case m := <-ch:
					seen[m.UUID] = true
					m.Ack()
				case <-deadline:
					t.Errorf("group %s: got %d of %d", g, len(seen), len(msgs))
					return
				}
			}
		}()
	}
	wg.Wait()
}

// waitStableGroup waits until group has n members that all hold partitions.
func waitStableGroup(t *testing.T, group string, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokertest.KafkaBrokers(t), ",")...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(waitMsg)
	for time.Now().Before(deadline) {
		ds, err := adm.DescribeGroups(context.Background(), group)
		if err == nil {
			d := ds[group]
			withParts := 0
			for _, m := range d.Members {
				if ca, ok := m.Assigned.AsConsumer(); ok && len(ca.Topics) > 0 && len(ca.Topics[0].Partitions) > 0 {
					withParts++
				}
			}
			if d.State == "Stable" && len(d.Members) == n && withParts == n {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("group %s did not stabilise with %d members", group, n)
}

func TestCompetingConsumersInOneGroup(t *testing.T) {
	b := newBroker(t, nil)
	topic, group := uniqueName(t, "t"), uniqueName(t, "g")
	cleanupTopic(t, topic, group)

	_, ch1 := subscribe(t, b, group, topic, broker.SubscriberOptions{})
	_, ch2 := subscribe(t, b, group, topic, broker.SubscriberOptions{})
	waitStableGroup(t, group, 2)

	const n = 300
	var msgs []*message.Message
	for i := range n {
		msgs = append(msgs, newMsg(strconv.Itoa(i), "x"))
	}
	if err := b.Publisher().Publish(topic, msgs...); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	var mu sync.Mutex
	counts := map[string]int{}
	per := [2]int{}
	deadline := time.After(waitMsg)
	for total := 0; total < n; total++ {
		var m *message.Message
		select {
		case m = <-ch1:
			per[0]++
		case m = <-ch2:
			per[1]++
		case <-deadline:
			t.Fatalf("got %d of %d", total, n)
		}
		mu.Lock()
		counts[m.UUID]++
		mu.Unlock()
		m.Ack()
	}
	expectNone(t, ch1, 500*time.Millisecond)
	expectNone(t, ch2, 10*time.Millisecond)
	for id, c := range counts {
		if c != 1 {
			t.Errorf("message %s handled %d times", id, c)
		}
	}
	if per[0] == 0 || per[1] == 0 {
		t.Errorf("work not shared: %v", per)
	}
}

func TestOrderPerKeyWithOutOfOrderAcks(t *testing.T) {
	b := newBroker(t, nil) // 3 partitions
	topic, group := uniqueName(t, "t"), uniqueName(t, "g")
	cleanupTopic(t, topic, group)

	const keys, perKey = 8, 40
	var msgs []*message.Message
	for i := range perKey {
		for k := range keys {
			msgs = append(msgs, newMsg(fmt.Sprintf("key-%d", k), strconv.Itoa(i)))
		}
	}
	// Publish in several concurrent calls of one key each? No: per key order
	// needs one producer order, so publish everything in one call.
	if err := b.Publisher().Publish(topic, msgs...); err != nil {
		t.Fatalf("Publish: %v", err)
	}

	_, ch := subscribe(t, b, group, topic, broker.SubscriberOptions{Prefetch: 32})
	next := map[string]int{}
	var held []*message.Message
	deadline := time.After(waitMsg)
	for got := 0; got < len(msgs); got++ {
		var m *message.Message
		select {
		case m = <-ch:
		case <-deadline:
			t.Fatalf("got %d of %d", got, len(msgs))
		}
		k := m.Metadata.Get(header.Key)
		seq, _ := strconv.Atoi(string(m.Payload))
		if seq != next[k] {
			t.Fatalf("key %s: got seq %d, want %d", k, seq, next[k])
		}
		next[k]++
		// Ack in random order across keys, a few at a time.
		held = append(held, m)
		if len(held) >= 10 || got == len(msgs)-1 {
			rand.Shuffle(len(held), func(i, j int) { held[i], held[j] = held[j], held[i] })
			for _, h := range held {
				h.Ack()
			}
			held = held[:0]
		}
	}
}

func TestNackRedeliversWithBackoff(t *testing.T) {
	b := newBroker(t, func(c *kafka.Config) {
		c.NackBackoff = 100 * time.Millisecond
		c.MaxNackBackoff = 400 * time.Millisecond
	})
	topic, group := uniqueName(t, "t"), uniqueName(t, "g")
	cleanupTopic(t, topic, group)

	first, second := newMsg("same", "first"), newMsg("same", "second")
	if err := b.Publisher().Publish(topic, first, second); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	_, ch := subscribe(t, b, group, topic, broker.SubscriberOptions{Prefetch: 1})

	var times []time.Time
	for range 5 {
		m := receive(t, ch, waitMsg)
		if m.UUID != first.UUID {
			t.Fatalf("got %s (%s), want the nacked record again", m.UUID, m.Payload)
		}
		times = append(times, time.Now())
		m.Nack()
	}
	// Backoff doubles from 100ms, capped at 400ms: 100, 200, 400, 400.
	wantMin := []time.Duration{90, 190, 390, 390}
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap < wantMin[i-1]*time.Millisecond {
			t.Errorf("redelivery %d after %s, want >= %dms", i, gap, wantMin[i-1])
		}
	}
	m := receive(t, ch, waitMsg)
	if m.UUID != first.UUID {
		t.Fatalf("got %s, want first again", m.Payload)
	}
	m.Ack()
	m = receive(t, ch, waitMsg)
	if m.UUID != second.UUID {
		t.Fatalf("got %s, want second", m.Payload)
	}
	m.Ack()
}

func TestCommitsOnlyContiguousAcks(t *testing.T) {
	b := newBroker(t, nil)
	topic, group := uniqueName(t, "t"), uniqueName(t, "g")
	cleanupTopic(t, topic, group)

	var msgs []*message.Message
	for i := range 10 {
		msgs = append(msgs, newMsg("one-partition", strconv.Itoa(i)))
	}
	if err := b.Publisher().Publish(topic, msgs...); err != nil {
		t.Fatalf("Publish: %v", err)
	}

	sub, ch := subscribe(t, b, group, topic, broker.SubscriberOptions{})
	var got []*message.Message
	for range msgs {
		got = append(got, receive(t, ch, waitMsg))
	}
	for _, i := range []int{0, 1, 2, 4, 5} { // 3 is not acked
		got[i].Ack()
	}
	// No wait for the acks to be seen: Close commits every offset acked
	// before it (doc.go), including acks its dispatcher has not taken yet.
	if err := sub.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	_, ch2 := subscribe(t, b, group, topic, broker.SubscriberOptions{})
	for want := 3; want < 10; want++ { // 4 and 5 again: the commit stops at 3
		m := receive(t, ch2, waitMsg)
		if string(m.Payload) != strconv.Itoa(want) {
			t.Fatalf("redelivered %s, want %d", m.Payload, want)
		}
		m.Ack()
	}
	expectNone(t, ch2, time.Second)
}

func TestJunkHeadersAreHandedOut(t *testing.T) {
	b := newBroker(t, nil)
	topic, group := uniqueName(t, "t"), uniqueName(t, "g")
	cleanupTopic(t, topic, group)
	// Create the topic through the adapter, then write raw records.
	if err := b.Publisher().Publish(topic, newMsg("k", "warm-up")); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokertest.KafkaBrokers(t), ",")...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	junk := &kgo.Record{Topic: topic, Key: []byte("k"), Value: []byte{0xff, 0x00, 0xfe}, Headers: []kgo.RecordHeader{
		{Key: "", Value: []byte{0xff}},
		{Key: "ce_id", Value: nil},
		{Key: "\x00\xffweird", Value: []byte{0xc3, 0x28}},
		{Key: "ce-type", Value: []byte("dup1")},
		{Key: "ce_type", Value: []byte("dup2")},
	}}
	if err := cl.ProduceSync(context.Background(), junk).FirstErr(); err != nil {
		t.Fatal(err)
	}
	after := newMsg("k", "after")
	if err := b.Publisher().Publish(topic, after); err != nil {
		t.Fatal(err)
	}

	_, ch := subscribe(t, b, group, topic, broker.SubscriberOptions{})
	m := receive(t, ch, waitMsg)
	if string(m.Payload) != "warm-up" {
		t.Fatalf("got %q first", m.Payload)
	}
	m.Ack()
	m = receive(t, ch, waitMsg)
	wantID := fmt.Sprintf("%s/%s/%s", topic, m.Metadata.Get(kafka.MetadataPartition), m.Metadata.Get(kafka.MetadataOffset))
	if m.UUID != wantID || string(m.Payload) != "\xff\x00\xfe" {
		t.Fatalf("junk record: uuid %q payload %q, want uuid %q", m.UUID, m.Payload, wantID)
	}
	m.Ack()
	m = receive(t, ch, waitMsg)
	if m.UUID != after.UUID {
		t.Fatalf("got %q after the junk record, want %q", m.Payload, "after")
	}
	m.Ack()
}

func TestCancelStopsIntakeAckUntilClose(t *testing.T) {
	b := newBroker(t, nil)
	topic, group := uniqueName(t, "t"), uniqueName(t, "g")
	cleanupTopic(t, topic, group)
	one, two := newMsg("k", "1"), newMsg("k", "2")
	if err := b.Publisher().Publish(topic, one, two); err != nil {
		t.Fatal(err)
	}
	sub, err := b.Subscriber(group, broker.SubscriberOptions{Prefetch: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	m := receive(t, ch, waitMsg)
	cancel()
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("message handed out after cancel")
		}
	case <-time.After(waitMsg):
		t.Fatal("channel not closed after cancel")
	}
	if m.Context().Err() != nil {
		t.Fatal("in-flight message context cancelled by Subscribe's ctx")
	}
	m.Ack() // still accepted after cancel
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}

	_, ch2 := subscribe(t, b, group, topic, broker.SubscriberOptions{})
	m = receive(t, ch2, waitMsg)
	if string(m.Payload) != "2" {
		t.Fatalf("got %q, want 2 (1 was acked before Close)", m.Payload)
	}
	m.Ack()
}

func TestNackHoldsBackOnlyItsKey(t *testing.T) {
	b := newBroker(t, func(c *kafka.Config) {
		c.Partitions = 1 // all keys share one partition
		c.NackBackoff = 300 * time.Millisecond
	})
	topic, group := uniqueName(t, "t"), uniqueName(t, "g")
	cleanupTopic(t, topic, group)

	a1, a2, other := newMsg("a", "a1"), newMsg("a", "a2"), newMsg("b", "b1")
	if err := b.Publisher().Publish(topic, a1, a2, other); err != nil {
		t.Fatal(err)
	}
	_, ch := subscribe(t, b, group, topic, broker.SubscriberOptions{Prefetch: 1})
	var order []string
	for range 4 {
		m := receive(t, ch, waitMsg)
		order = append(order, string(m.Payload))
		if string(m.Payload) == "a1" && len(order) == 1 {
			m.Nack()
			continue
		}
		m.Ack()
	}
	if got, want := strings.Join(order, ","), "a1,b1,a1,a2"; got != want {
		t.Fatalf("hand-out order %s, want %s (b1 flows while a1 waits; a2 waits for a1)", got, want)
	}
}

// A message that is never acked must not hold back the window: acks of
// messages handed out after it free their slots.
func TestUnackedOldestDoesNotStallWindow(t *testing.T) {
	b := newBroker(t, nil)
	topic, group := uniqueName(t, "t"), uniqueName(t, "g")
	cleanupTopic(t, topic, group)
	const n = 50
	var msgs []*message.Message
	for i := range n {
		msgs = append(msgs, newMsg("k"+strconv.Itoa(i), strconv.Itoa(i)))
	}
	if err := b.Publisher().Publish(topic, msgs...); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	_, ch := subscribe(t, b, group, topic, broker.SubscriberOptions{Prefetch: 4})
	stuck := receive(t, ch, waitMsg) // never acked until the end
	for range n - 1 {
		receive(t, ch, waitMsg).Ack()
	}
	stuck.Ack()
}

// A message's context is cancelled once it is acked or nacked, and so are
// contexts derived from it.
func TestMessageContextEndsWithAckOrNack(t *testing.T) {
	b := newBroker(t, nil)
	topic, group := uniqueName(t, "t"), uniqueName(t, "g")
	cleanupTopic(t, topic, group)
	type ctxKey struct{}
	if err := b.Publisher().Publish(topic, newMsg("k", "1"), newMsg("k", "2")); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	sub, err := b.Subscriber(group, broker.SubscriberOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	ch, err := sub.Subscribe(context.WithValue(context.Background(), ctxKey{}, "v"), topic)
	if err != nil {
		t.Fatal(err)
	}
	for i, settle := range []func(*message.Message) bool{(*message.Message).Ack, (*message.Message).Nack} {
		m := receive(t, ch, waitMsg)
		ctx := m.Context()
		if ctx.Value(ctxKey{}) != "v" || ctx.Err() != nil {
			t.Fatalf("message %d: context value %v, err %v; want Subscribe's value, not cancelled", i, ctx.Value(ctxKey{}), ctx.Err())
		}
		derived, cancel := context.WithTimeout(ctx, time.Hour)
		defer cancel()
		settle(m)
		for _, c := range []context.Context{ctx, derived} {
			select {
			case <-c.Done():
			case <-time.After(waitMsg):
				t.Fatalf("message %d: context not cancelled after ack/nack", i)
			}
			if c.Err() == nil {
				t.Fatalf("message %d: Err nil after Done", i)
			}
		}
	}
	m := receive(t, ch, waitMsg) // the nacked one again
	m.Ack()
	if m.Context().Err() == nil {
		t.Fatal("Err nil after Ack without Done")
	}
}

// A record from a non-Switchyard producer (kafkajs with `key: aggregateId`)
// carries its key as the Kafka record key only: the handed-out message's
// ordering key is that record key. A ce_partitionkey header, when present,
// wins over the record key.
func TestRecordKeyIsTheMessageKeyWithoutPartitionKeyHeader(t *testing.T) {
	b := newBroker(t, nil)
	topic, group := uniqueName(t, "t"), uniqueName(t, "g")
	cleanupTopic(t, topic, group)
	ctx, cancel := context.WithTimeout(context.Background(), waitMsg)
	defer cancel()
	if err := b.Provision(ctx, topic, group); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokertest.KafkaBrokers(t), ",")...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := []*kgo.Record{
		{Topic: topic, Key: []byte("order-1"), Value: []byte("record key only"), Headers: []kgo.RecordHeader{
			{Key: header.ID, Value: []byte("id-record-key")},
			{Key: header.Type, Value: []byte("orders.order_placed")},
		}},
		{Topic: topic, Key: []byte("order-2"), Value: []byte("both"), Headers: []kgo.RecordHeader{
			{Key: header.ID, Value: []byte("id-both")},
			{Key: header.Key, Value: []byte("aggregate-7")},
		}},
		{Topic: topic, Value: []byte("no key"), Headers: []kgo.RecordHeader{
			{Key: header.ID, Value: []byte("id-none")},
		}},
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}

	want := map[string]string{"id-record-key": "order-1", "id-both": "aggregate-7", "id-none": ""}
	_, ch := subscribe(t, b, group, topic, broker.SubscriberOptions{})
	for range recs {
		m := receive(t, ch, waitMsg)
		w, ok := want[m.UUID]
		if !ok {
			t.Fatalf("unexpected or duplicate message %q", m.UUID)
		}
		delete(want, m.UUID)
		got, present := m.Metadata[header.Key]
		if got != w || present != (w != "") {
			t.Errorf("%s: metadata[%s] = %q (present %v), want %q", m.UUID, header.Key, got, present, w)
		}
		m.Ack()
	}
}
