package config

import "github.com/switchyard-go/switchyard/pkg/asyncapi"

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
		asyncAPIKafka(c, &out)
	case BrokerAMQP:
		asyncAPIAMQP(c, &out)
	}
	return out
}
