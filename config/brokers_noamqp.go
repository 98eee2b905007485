//go:build switchyard_no_amqp

package config

import (
	"context"
	"log/slog"

	"github.com/switchyard-go/switchyard/pkg/broker"
)

// AMQPConfig stands for the broker.amqp section in a program built with
// -tags switchyard_no_amqp: it has no keys, so that every setting of it is
// an unknown key, and its SWITCHYARD_BROKER_AMQP_* variables unknown.
type AMQPConfig struct{}

// WithDefaults returns c.
func (c AMQPConfig) WithDefaults() AMQPConfig { return c }

const tagNoAMQP = "switchyard_no_amqp"

func validateAMQP(AMQPConfig) error { return leftOut(BrokerAMQP, tagNoAMQP) }

func openAMQP(context.Context, AMQPConfig, *slog.Logger) (broker.Broker, error) {
	return nil, leftOut(BrokerAMQP, tagNoAMQP)
}
