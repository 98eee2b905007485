//go:build switchyard_no_kafka

package config

import (
	"context"
	"log/slog"

	"github.com/switchyard-go/switchyard/pkg/broker"
)

// KafkaConfig stands for the broker.kafka section in a program built with
// -tags switchyard_no_kafka: it has no keys, so that every setting of it is
// an unknown key, and its SWITCHYARD_BROKER_KAFKA_* variables unknown.
type KafkaConfig struct{}

// WithDefaults returns c.
func (c KafkaConfig) WithDefaults() KafkaConfig { return c }

const tagNoKafka = "switchyard_no_kafka"

func validateKafka(KafkaConfig) error { return leftOut(BrokerKafka, tagNoKafka) }

func openKafka(context.Context, KafkaConfig, *slog.Logger) (broker.Broker, error) {
	return nil, leftOut(BrokerKafka, tagNoKafka)
}
