package dlq_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.uber.org/goleak"

	"github.com/switchyard-go/switchyard/config"
	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/middleware"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// brokers are the brokers every operation is tested on; amqp and kafka
// skip without their broker (and fail under CI).
var brokers = []struct {
	name string
	cfg  func(testing.TB) config.Config
}{
	{"memory", func(testing.TB) config.Config {
		c := config.Defaults()
		c.Broker.Memory.NackBackoff = time.Millisecond
		c.Broker.Memory.MaxNackBackoff = 20 * time.Millisecond
		return c
	}},
	{"amqp", func(tb testing.TB) config.Config {
		c := config.Defaults()
		c.Broker.Type = config.BrokerAMQP
		c.Broker.AMQP.URL = brokertest.AMQPURL(tb)
		return c
	}},
	{"kafka", func(tb testing.TB) config.Config {
		c := config.Defaults()
		c.Broker.Type = config.BrokerKafka
		c.Broker.Kafka.Brokers = strings.Split(brokertest.KafkaBrokers(tb), ",")
		return c
	}},
}

// eachBroker runs test once per broker, each with a broker of its own.
func eachBroker(t *testing.T, test func(t *testing.T, b broker.Broker)) {
	for _, bk := range brokers {
		t.Run(bk.name, func(t *testing.T) {
			cfg := bk.cfg(t)
			b, err := config.Open(context.Background(), cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = b.Close() })
			test(t, b)
		})
	}
}

// unique returns name with a suffix no other test run uses, so that tests
// on the shared brokers never see each other's messages.
func unique(name string) string { return name + "-" + rand.Text()[:10] }

// failures are the dead letters seed writes: type, reason, handler.
var failures = [][3]string{
	{"orders.order_placed", "timeout", "inventory.reserve"},
	{"orders.order_placed", "invalid_payload", "inventory.reserve"},
	{"orders.order_cancelled", "timeout", "inventory.release"},
	{"orders.order_placed", "timeout", "inventory.reserve"},
}

var failedAt0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// seed dead-letters one message per failure to dlTopic, consumed from
// origin by group, the way the runtime does, failing a minute apart. It
// provisions dlTopic for the dead-letter group and origin for group and
// for "other", so that replays are kept.
func seed(t *testing.T, b broker.Broker, dlTopic, origin, group string) []string {
	t.Helper()
	ctx := context.Background()
	p := b.(broker.Provisioner)
	for _, tg := range [][2]string{{dlTopic, broker.DeadLetterGroup}, {origin, group}, {origin, "other"}} {
		if err := p.Provision(ctx, tg[0], tg[1]); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	for i, s := range failures {
		id := fmt.Sprintf("%s-msg-%d", dlTopic, i)
		m := message.NewMessage(id, []byte(fmt.Sprintf(`{"order_id":"%d"}`, i)))
		env := event.Envelope{ID: id, Type: s[0], Version: 1, Source: "orders", Time: failedAt0, ContentType: header.ContentTypeJSON,
			Key: fmt.Sprintf("order-%d", i), CorrelationID: "corr-" + id}
		env.Write(m.Metadata)
		d := &middleware.Delivery{Msg: m, Envelope: env, Attempt: 3,
			Handler: &middleware.Info{Name: s[2], Group: group, Topic: origin}}
		dl := middleware.DeadLetterMessage(d, failure.Reason(s[1]), fmt.Errorf("boom %d", i), failedAt0.Add(time.Duration(i)*time.Minute))
		if err := b.Publisher().Publish(dlTopic, dl); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// browseIDs returns the ids group has not consumed of topic, sorted,
// waiting up to 10s for want of them (Kafka and RabbitMQ make a publish
// visible to a browse a moment later).
func browseIDs(t *testing.T, b broker.Broker, topic, group string, want int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var got []string
		err := b.(broker.Browser).Browse(context.Background(), topic, group, func(m *message.Message) bool {
			got = append(got, m.UUID)
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		if len(got) == want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
}
