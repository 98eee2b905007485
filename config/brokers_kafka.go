//go:build !switchyard_no_kafka

package config

import (
	"context"
	"log/slog"

	"github.com/switchyard-go/switchyard/adapters/kafka"
	"github.com/switchyard-go/switchyard/pkg/broker"
)

// KafkaConfig is the broker.kafka section; see package adapters/kafka.
type KafkaConfig = kafka.Config

// The adapter's zero values mean its defaults; validate what New will use.
func validateKafka(c KafkaConfig) error { return c.WithDefaults().Validate() }

func openKafka(ctx context.Context, c KafkaConfig, logger *slog.Logger) (broker.Broker, error) {
	return kafka.New(ctx, c, logger)
}
