package asyncapi

import (
	"errors"
	"fmt"
)

// Config is what the graph does not know: the document's title and
// version, and the broker the application runs on.
type Config struct {
	// Title of the API, e.g. the service name. Default "Switchyard service".
	Title string
	// Version of the API (the application's release). Default "0.0.0".
	Version string
	// Description, Markdown. Default none.
	Description string
	// Servers are the broker's entries; none for the in-memory broker or
	// when it is not known.
	Servers []Server
	// Kafka, when set, adds Kafka bindings: topics, consumer groups, keys.
	Kafka *Kafka
	// AMQP, when set, adds AMQP bindings: the fanout exchange of each
	// topic and the queue of each consumer group.
	AMQP *AMQP
}

// Server is one broker entry of the document.
type Server struct {
	// ID names the entry in the document, e.g. "kafka-1". Default: the
	// protocol, numbered from 1 when there are several.
	ID string
	// Host is host:port, without credentials.
	Host string
	// Protocol is "kafka", "kafka-secure", "amqp" or "amqps".
	Protocol string
	// Pathname is the path of the server's URL, e.g. an AMQP virtual host
	// "/prod"; empty for none.
	Pathname string
	// Description, optional.
	Description string
}

// Kafka describes how the Kafka adapter lays out topics.
type Kafka struct {
	// Partitions and Replicas of topics the adapter creates; 0 means
	// unknown and is left out.
	Partitions, Replicas int
}

// AMQP describes how the AMQP adapter names exchanges and queues (see
// adapters/amqp: broker.amqp.exchange_prefix and queue_prefix).
type AMQP struct {
	ExchangePrefix, QueuePrefix string
	// VHost is the virtual host, "/" by default.
	VHost string
}

// Validate reports every problem of c at once: a server needs a host and
// a protocol, or the document is not valid AsyncAPI.
func (c Config) Validate() error {
	var err error
	for i, s := range c.Servers {
		if s.Host == "" {
			err = errors.Join(err, fmt.Errorf("asyncapi: servers[%d].host: required", i))
		}
		if s.Protocol == "" {
			err = errors.Join(err, fmt.Errorf("asyncapi: servers[%d].protocol: required", i))
		}
	}
	if c.Kafka != nil && (c.Kafka.Partitions < 0 || c.Kafka.Replicas < 0) {
		err = errors.Join(err, fmt.Errorf("asyncapi: kafka: partitions %d, replicas %d, want >= 0", c.Kafka.Partitions, c.Kafka.Replicas))
	}
	return err
}

func (c *Config) setDefaults() {
	if c.Title == "" {
		c.Title = "Switchyard service"
	}
	if c.Version == "" {
		c.Version = "0.0.0"
	}
	if c.AMQP != nil && c.AMQP.VHost == "" {
		a := *c.AMQP
		a.VHost = "/"
		c.AMQP = &a
	}
}
