package config

import (
	"net/url"
	"strings"

	"github.com/switchyard-go/switchyard/adapters/amqp"
	"github.com/switchyard-go/switchyard/adapters/kafka"
	"github.com/switchyard-go/switchyard/pkg/asyncapi"
)

// AsyncAPI describes the configured broker for an AsyncAPI document
// (package asyncapi): its servers, without credentials, and how its
// adapter names topics, exchanges and queues. Fields the file leaves out
// take the adapters' defaults, as the services do. The title is
// service.name; the version is the caller's (the service's release).
//
//	doc, err := asyncapi.Generate(svc.Graph(), cfg.AsyncAPI("1.4.0"))
func (c Config) AsyncAPI(version string) asyncapi.Config {
	out := asyncapi.Config{Title: c.Service.Name, Version: version}
	switch c.Broker.Type {
	case BrokerKafka:
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
		if out.Kafka.Replicas == 0 {
			out.Kafka.Replicas = kafka.DefaultReplicationFactor
		}
	case BrokerAMQP:
		a := c.Broker.AMQP
		raw := a.URL
		if raw == "" {
			raw = amqp.DefaultURL
		}
		out.AMQP = &asyncapi.AMQP{ExchangePrefix: a.ExchangePrefix, QueuePrefix: a.QueuePrefix, VHost: "/"}
		// Only the host, scheme and virtual host go into the document,
		// never the user information.
		if u, err := url.Parse(raw); err == nil {
			s := asyncapi.Server{Host: u.Host, Protocol: u.Scheme}
			if vhost := strings.TrimPrefix(u.Path, "/"); vhost != "" {
				out.AMQP.VHost = vhost
				s.Pathname = "/" + url.PathEscape(vhost)
			}
			out.Servers = append(out.Servers, s)
		}
	}
	return out
}
