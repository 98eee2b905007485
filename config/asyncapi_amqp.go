//go:build !switchyard_no_amqp

package config

import (
	"net/url"
	"strings"

	"github.com/switchyard-go/switchyard/adapters/amqp"
	"github.com/switchyard-go/switchyard/pkg/asyncapi"
)

// asyncAPIAMQP describes the RabbitMQ server and exchange layout.
func asyncAPIAMQP(c Config, out *asyncapi.Config) {
	a := c.Broker.AMQP
	raw := a.URL
	if raw == "" && len(a.URLs) > 0 {
		raw = a.URLs[0]
	}
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
