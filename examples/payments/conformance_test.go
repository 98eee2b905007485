package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/switchyard-go/switchyard/config"
	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/idempotency"
	"github.com/switchyard-go/switchyard/pkg/service"
	"github.com/switchyard-go/switchyard/switchyardtest/conformance"
)

// TestConformance proves the payments service's handlers and policies on
// the in-memory broker, RabbitMQ and Kafka: the same scenarios, the same
// outcome. Without SWITCHYARD_TEST_AMQP_URL or SWITCHYARD_TEST_KAFKA_BROKERS
// those brokers are skipped (under CI=true they fail).
func TestConformance(t *testing.T) {
	conformance.Run(t, conformance.Suite{
		Define: func(svc *service.Service) error { return register(&provider{}, NewLedger())(svc) },
		Options: func() []service.Option {
			// In production a durable store shared by the instances
			// (adapters/postgres); here one in memory per scenario.
			store, err := idempotency.NewMemory(idempotency.MemoryConfig{})
			if err != nil {
				t.Fatal(err)
			}
			return []service.Option{service.WithIdempotency(store)}
		},
		Input: func(key string, n int) event.Event { return paymentRequest(fmt.Sprintf("%s-%d", key, n), int64(100+n)) },
		Poison: []conformance.Poison{{
			Name: "no amount", Event: paymentRequest("p-zero", 0), Handler: "payments.capture", ErrorContains: "amount_cents: 0",
		}},
		MinChainDepth: 1, // requested → captured, booked by the ledger
		Brokers: []conformance.Broker{
			conformance.FromConfig("memory", func(testing.TB) config.Config { return config.Defaults() }),
			conformance.FromConfig("amqp", func(tb testing.TB) config.Config {
				c := config.Defaults()
				c.Broker.Type = config.BrokerAMQP
				c.Broker.AMQP.URL = brokertest.AMQPURL(tb)
				return c
			}),
			conformance.FromConfig("kafka", func(tb testing.TB) config.Config {
				c := config.Defaults()
				c.Broker.Type = config.BrokerKafka
				c.Broker.Kafka.Brokers = strings.Split(brokertest.KafkaBrokers(tb), ",")
				return c
			}),
		},
	})
}
