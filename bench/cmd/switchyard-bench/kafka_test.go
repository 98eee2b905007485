package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/header"
)

// The Kafka raw-headers contender is the fair baseline only if its records
// carry what Switchyard's do: one record of each, read back from the real
// Kafka, has the same key, value and headers (names and values; the
// per-message id and time in the same form). Break it: drop a header from
// raw-headers' record and this fails naming it.
func TestKafkaRawHeadersPublishesWhatSwitchyardPublishes(t *testing.T) {
	brokers := strings.Split(brokertest.KafkaBrokers(t), ",")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := spec{Broker: "kafka", Scenario: "publish", Msgs: 1, Prefix: fmt.Sprintf("sybench-test-%d-", time.Now().UnixNano()),
		Run: 1, KafkaBrokers: brokers, Partitions: 1, Concurrency: 1, Publishers: 1}
	admCl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()
	e := Event{ID: 7, Key: "k7", SentAt: time.Now().UnixNano(), Body: body}
	// publishOne publishes e with contender and reads it back.
	publishOne := func(contender string) *kgo.Record {
		t.Helper()
		s := base
		s.Contender = contender
		c, err := newContender(s)
		if err != nil {
			t.Fatal(err)
		}
		defer c.close()
		t.Cleanup(func() { _, _ = kadm.NewClient(admCl).DeleteTopics(context.Background(), s.topic()) })
		if err := c.start(ctx, consumeNone, nil); err != nil {
			t.Fatal(err)
		}
		if err := c.publish(ctx, &e); err != nil {
			t.Fatal(err)
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(s.topic()),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		for {
			fs := cl.PollFetches(ctx)
			if err := ctx.Err(); err != nil {
				t.Fatalf("%s: no record on %s: %v", contender, s.topic(), err)
			}
			if recs := fs.Records(); len(recs) > 0 {
				return recs[0]
			}
		}
	}
	sy := publishOne("switchyard")
	raw := publishOne("raw-headers")

	headers := func(r *kgo.Record) map[string]string {
		m := map[string]string{}
		for _, h := range r.Headers {
			if _, dup := m[h.Key]; dup {
				t.Errorf("header %s written twice", h.Key)
			}
			m[h.Key] = string(h.Value)
		}
		return m
	}
	sh, rh := headers(sy), headers(raw)
	if got, want := slices.Sorted(maps.Keys(rh)), slices.Sorted(maps.Keys(sh)); !slices.Equal(got, want) {
		t.Fatalf("raw-headers sends headers %v, Switchyard %v", got, want)
	}
	perMessage := map[string]bool{header.ID: true, header.Time: true, header.CorrelationID: true}
	for k, v := range sh {
		if !perMessage[k] && v != rh[k] {
			t.Errorf("header %s: Switchyard %q, raw-headers %q", k, v, rh[k])
		}
	}
	for name, h := range map[string]map[string]string{"switchyard": sh, "raw-headers": rh} {
		if id := h[header.ID]; len(id) != 36 || h[header.CorrelationID] != id {
			t.Errorf("%s: ce_id %q, correlation %q: want one UUID in both", name, id, h[header.CorrelationID])
		}
		if _, err := time.Parse(event.TimeLayout, h[header.Time]); err != nil {
			t.Errorf("%s: ce_time %q is not in %s", name, h[header.Time], event.TimeLayout)
		}
	}
	if string(sy.Key) != string(raw.Key) || string(sy.Value) != string(raw.Value) {
		t.Errorf("key and value differ:\nswitchyard  %q %q\nraw-headers %q %q", sy.Key, sy.Value, raw.Key, raw.Value)
	}
}
