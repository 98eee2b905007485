package amqp

import (
	"net"
	"strings"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// securityWarnings lists what in c exposes credentials or skips a check, for
// [New] to log: nothing here is invalid, but each deserves an operator's
// eye. A password sent with PLAIN over a non-TLS connection crosses the
// network readable by anyone on the path, unless the broker is on this
// host; a skipped certificate verification accepts any server.
func (c Config) securityWarnings() []string {
	var out []string
	for _, raw := range c.endpoints() {
		uri, err := amqp091.ParseURI(raw)
		if err == nil && uri.Scheme != "amqps" && c.AuthMechanism != AuthExternal && !isLoopback(uri.Host) {
			out = append(out, "credentials are sent in plain text: PLAIN authentication over amqp:// (no TLS) to the non-loopback host "+
				uri.Host+"; use amqps:// with broker.amqp.tls")
		}
	}
	if c.TLS.Enabled && c.TLS.InsecureSkipVerify {
		out = append(out, "broker.amqp.tls.insecure_skip_verify is true: the broker's certificate is not verified, so any server can impersonate it; tests only")
	}
	return out
}

// isLoopback reports whether host names this machine: "localhost" or a
// loopback address.
func isLoopback(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
