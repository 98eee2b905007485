//go:build switchyard_no_amqp

package config

import "github.com/switchyard-go/switchyard/pkg/asyncapi"

// asyncAPIAMQP: RabbitMQ is left out of this build (Open refuses it).
func asyncAPIAMQP(Config, *asyncapi.Config) {}
