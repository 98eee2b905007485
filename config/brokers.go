package config

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/switchyard-go/switchyard/adapters/amqp"
	"github.com/switchyard-go/switchyard/adapters/kafka"
	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/pkg/broker"
)

// AMQPConfig is the broker.amqp section; see package adapters/amqp.
type AMQPConfig = amqp.Config

// KafkaConfig is the broker.kafka section; see package adapters/kafka.
type KafkaConfig = kafka.Config

// The adapters' zero values mean their defaults; validate what New will use.
func validateAMQP(c AMQPConfig) error   { return c.WithDefaults().Validate() }
func validateKafka(c KafkaConfig) error { return c.WithDefaults().Validate() }

// Open connects to the broker c selects. The caller closes it.
func Open(ctx context.Context, c Config, logger *slog.Logger) (broker.Broker, error) {
	switch c.Broker.Type {
	case BrokerMemory:
		return memory.New(c.Broker.Memory, logger)
	case BrokerAMQP:
		return amqp.New(ctx, c.Broker.AMQP, logger)
	case BrokerKafka:
		return kafka.New(ctx, c.Broker.Kafka, logger)
	}
	return nil, fmt.Errorf("config: broker.type: %q, want one of memory, amqp, kafka", c.Broker.Type)
}
