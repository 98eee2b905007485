package config

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/pkg/broker"
)

// Build tags leave a broker's adapter, and its client library, out of a
// program: -tags switchyard_no_kafka (no franz-go), switchyard_no_amqp (no
// amqp091-go). Such a program refuses broker.type and every setting of the
// broker left out, naming the tag; the other brokers work as always. The
// adapters are in brokers_<broker>.go, their absence in
// brokers_no<broker>.go.

// Open connects to the broker c selects. The caller closes it.
func Open(ctx context.Context, c Config, logger *slog.Logger) (broker.Broker, error) {
	switch c.Broker.Type {
	case BrokerMemory:
		return memory.New(c.Broker.Memory, logger)
	case BrokerAMQP:
		return openAMQP(ctx, c.Broker.AMQP, logger)
	case BrokerKafka:
		return openKafka(ctx, c.Broker.Kafka, logger)
	}
	return nil, fmt.Errorf("config: broker.type: %q, want one of memory, amqp, kafka", c.Broker.Type)
}

// leftOut is the error of a broker this program was built without.
func leftOut(typ, tag string) error {
	return fmt.Errorf("broker.type: %q: this program was built with -tags %s, which leaves the %s adapter out", typ, tag, typ)
}
