//go:build !switchyard_no_amqp

package config

import (
	"context"
	"log/slog"

	"github.com/switchyard-go/switchyard/adapters/amqp"
	"github.com/switchyard-go/switchyard/pkg/broker"
)

// AMQPConfig is the broker.amqp section; see package adapters/amqp.
type AMQPConfig = amqp.Config

// The adapter's zero values mean its defaults; validate what New will use.
func validateAMQP(c AMQPConfig) error { return c.WithDefaults().Validate() }

func openAMQP(ctx context.Context, c AMQPConfig, logger *slog.Logger) (broker.Broker, error) {
	return amqp.New(ctx, c, logger)
}
