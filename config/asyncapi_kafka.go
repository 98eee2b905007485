//go:build !switchyard_no_kafka

package config

import (
	"github.com/switchyard-go/switchyard/adapters/kafka"
	"github.com/switchyard-go/switchyard/pkg/asyncapi"
)

// asyncAPIKafka describes the Kafka servers and topic layout.
func asyncAPIKafka(c Config, out *asyncapi.Config) {
	k := c.Broker.Kafka
	protocol := "kafka"
	if k.TLS.Enabled {
		protocol = "kafka-secure"
	}
	brokers := k.Brokers
	if len(brokers) == 0 {
		brokers = []string{kafka.DefaultBroker}
	}
	for _, b := range brokers {
		out.Servers = append(out.Servers, asyncapi.Server{Host: b, Protocol: protocol})
	}
	out.Kafka = &asyncapi.Kafka{Partitions: int(k.Partitions), Replicas: int(k.ReplicationFactor)}
	if out.Kafka.Partitions == 0 {
		out.Kafka.Partitions = kafka.DefaultPartitions
	}
	// -1 (the default) is the cluster's own default: not known here.
	out.Kafka.Replicas = max(out.Kafka.Replicas, 0)
}
