package config

import (
	"github.com/switchyard-go/switchyard/pkg/service"
)

// Effective returns c as the service will run with it: every default
// filled in (the framework's policy defaults in defaults and each handler
// entry, the selected broker's defaults, the HTTP server's when it is on),
// and only the selected broker's section. Handler entries inherit from
// defaults as they do at registration; what the code of a handler sets is
// not known here. Names are as the file gives them, before
// service.namespace. It is what `switchyard config show` prints.
func (c Config) Effective() Config {
	c.setDefaults()
	if c.Service.FailurePathTimeout == 0 {
		c.Service.FailurePathTimeout = service.DefaultFailurePathTimeout
	}
	if c.Service.RequestTimeout == 0 {
		c.Service.RequestTimeout = service.DefaultRequestTimeout
	}
	b := Broker{Type: c.Broker.Type}
	switch c.Broker.Type {
	case BrokerMemory:
		b.Memory = c.Broker.Memory.WithDefaults()
	case BrokerAMQP:
		b.AMQP = c.Broker.AMQP.WithDefaults()
	case BrokerKafka:
		b.Kafka = c.Broker.Kafka.WithDefaults()
	}
	c.Broker = b
	if c.HTTP.Addr != "" {
		c.HTTP = c.HTTP.WithDefaults()
	}
	if c.Tracing.Enabled() {
		c.Tracing = c.Tracing.WithDefaults()
	}
	if c.Metrics.Enabled() {
		c.Metrics = c.Metrics.WithDefaults()
	}
	c.Idempotency = c.Idempotency.WithDefaults()
	c.Outbox = c.Outbox.WithDefaults()
	if c.Postgres.Migrate == nil && c.postgresNeededBy() != "" {
		on := true
		c.Postgres.Migrate = &on
	}
	c.Defaults = frameworkDefaults(c.Defaults)
	if len(c.Handlers) > 0 {
		hs := make(map[string]service.Policy, len(c.Handlers))
		for name, p := range c.Handlers {
			p = p.Inherit(c.Defaults)
			if p.Group == "" {
				p.Group = name
			}
			if p.DeadLetterTopic == "" {
				p.DeadLetterTopic = service.DeadLetterTopicFor(p.Group)
			}
			hs[name] = flowDefaults(orderDefault(p))
		}
		c.Handlers = hs
	}
	return c
}

// frameworkDefaults fills p's zero fields with the framework's defaults,
// but for those that depend on the handler (group, dead-letter topic) or
// on ordering (order_on_retry, filled per handler).
func frameworkDefaults(p service.Policy) service.Policy {
	p = p.Inherit(service.Policy{
		Concurrency:      service.DefaultConcurrency,
		Timeout:          service.DefaultTimeout,
		HopLimit:         service.DefaultHopLimit,
		MaxInProcessWait: service.DefaultMaxInProcessWait,
		Ordered:          service.Off,
		ExactlyOnce:      service.Off,
		DeadLetterOrder:  service.DeadLetterOrderNone,
	})
	if p.IsExactlyOnce() && p.Retry.MaxAttempts == 0 {
		p.Retry.MaxAttempts = 1 // as the service does
	}
	p.Retry = p.Retry.WithDefaults()
	return flowDefaults(p)
}

// flowDefaults fills the breaker's and the rate limit's defaults as the
// service does: only once they are turned on.
func flowDefaults(p service.Policy) service.Policy {
	p.Breaker = p.Breaker.WithDefaults()
	if p.RateLimit > 0 && p.RateBurst == 0 {
		p.RateBurst = 1
	}
	return p
}

// orderDefault fills order_on_retry as the service does: keep for ordered
// and exactly-once handlers, release otherwise.
func orderDefault(p service.Policy) service.Policy {
	if p.OrderOnRetry == "" {
		p.OrderOnRetry = service.OrderRelease
		if p.IsOrdered() || p.IsExactlyOnce() {
			p.OrderOnRetry = service.OrderKeep
		}
	}
	return p
}
