// Package otlpconf holds the OTLP exporter settings that the tracing and
// metrics sections of a configuration file share: the same keys, defaults
// and checks, so that both read and fail alike.
package otlpconf

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
)

// Protocols: the allowed values of Config.Protocol.
const (
	ProtocolHTTP = "http/protobuf"
	ProtocolGRPC = "grpc"
)

// Protocols lists the allowed values of Config.Protocol.
var Protocols = []string{ProtocolHTTP, ProtocolGRPC}

// Default endpoints, per protocol.
const (
	DefaultHTTPEndpoint = "localhost:4318"
	DefaultGRPCEndpoint = "localhost:4317"
)

// Config configures an OTLP exporter.
type Config struct {
	// Protocol is "http/protobuf" or "grpc". Default "http/protobuf".
	Protocol string `yaml:"protocol"`
	// Endpoint is the collector's host:port. Default "localhost:4318"
	// for http/protobuf, "localhost:4317" for grpc.
	Endpoint string `yaml:"endpoint"`
	// URLPath is the path the data is posted to, for http/protobuf only.
	// Default "/v1/traces" for spans, "/v1/metrics" for metrics.
	URLPath string `yaml:"url_path"`
	// Insecure sends without TLS (plain HTTP, or gRPC without transport
	// security). Default false.
	Insecure bool `yaml:"insecure"`
	// Request headers (an API key) are not set here, where they would be
	// printed by config show: the exporters read them from the standard
	// OTEL_EXPORTER_OTLP_HEADERS variable.
}

// IsZero reports whether nothing is set.
func (o Config) IsZero() bool { return o == Config{} }

// WithDefaults returns o with every zero field set to its default;
// urlPath is the signal's default path (http/protobuf only).
func (o Config) WithDefaults(urlPath string) Config {
	if o.Protocol == "" {
		o.Protocol = ProtocolHTTP
	}
	switch o.Protocol {
	case ProtocolHTTP:
		if o.Endpoint == "" {
			o.Endpoint = DefaultHTTPEndpoint
		}
		if o.URLPath == "" {
			o.URLPath = urlPath
		}
	case ProtocolGRPC:
		if o.Endpoint == "" {
			o.Endpoint = DefaultGRPCEndpoint
		}
	}
	return o
}

// Validate reports every invalid field at once; section names the
// section's path, e.g. "tracing.otlp".
func (o Config) Validate(section string) error {
	var err error
	if o.Protocol != "" && !slices.Contains(Protocols, o.Protocol) {
		err = errors.Join(err, fmt.Errorf("%s.protocol: %q, want %s (default) or %s", section, o.Protocol, ProtocolHTTP, ProtocolGRPC))
	}
	if o.Protocol == ProtocolGRPC && o.URLPath != "" {
		err = errors.Join(err, fmt.Errorf("%s.url_path: %q, but %s.protocol is grpc, which has no path", section, o.URLPath, section))
	}
	if o.Endpoint != "" {
		if _, port, perr := net.SplitHostPort(o.Endpoint); perr != nil || port == "" {
			err = errors.Join(err, fmt.Errorf("%s.endpoint: %q, want host:port such as collector:4318", section, o.Endpoint))
		}
	}
	if o.URLPath != "" && !strings.HasPrefix(o.URLPath, "/") {
		err = errors.Join(err, fmt.Errorf("%s.url_path: %q, want a path starting with /", section, o.URLPath))
	}
	return err
}
