//go:build switchyard_no_kafka

package config

import "github.com/switchyard-go/switchyard/pkg/asyncapi"

// asyncAPIKafka: Kafka is left out of this build (Open refuses it).
func asyncAPIKafka(Config, *asyncapi.Config) {}
