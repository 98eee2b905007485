package otelmetrics

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
)

// Exporters: the allowed values of Config.Exporters.
const (
	ExporterNone       = "none"
	ExporterPrometheus = "prometheus"
	ExporterOTLP       = "otlp"
)

// Exporters lists the allowed values of Config.Exporters.
var Exporters = []string{ExporterNone, ExporterPrometheus, ExporterOTLP}

// OTLP protocols: the allowed values of OTLP.Protocol.
const (
	ProtocolHTTP = "http/protobuf"
	ProtocolGRPC = "grpc"
)

// Defaults.
const (
	DefaultInterval         = 30 * time.Second
	DefaultShutdownTimeout  = 5 * time.Second
	DefaultOTLPEndpoint     = "localhost:4318" // http/protobuf's
	DefaultOTLPGRPCEndpoint = "localhost:4317"
	DefaultOTLPURLPath      = "/v1/metrics"
)

// Config is the metrics section of a configuration file. The zero value
// means no OpenTelemetry metrics (the switchyard_* Prometheus metrics of
// the operations server are there regardless).
type Config struct {
	// Exporters lists where the metrics go: "prometheus" (the operations
	// server's /metrics, so http.addr must be set), "otlp" (a collector,
	// see OTLP), both, or "none". Default []: none.
	Exporters []string `yaml:"exporters"`
	// Interval is how often the otlp exporter sends. Default 30s.
	Interval time.Duration `yaml:"interval"`
	// ShutdownTimeout bounds the last export when the service stops.
	// Default 5s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// OTLP configures the otlp exporter.
	OTLP OTLP `yaml:"otlp"`
}

// OTLP configures the OTLP exporter.
type OTLP struct {
	// Protocol is "http/protobuf" or "grpc". Default "http/protobuf".
	Protocol string `yaml:"protocol"`
	// Endpoint is the collector's host:port. Default "localhost:4318" for
	// http/protobuf, "localhost:4317" for grpc.
	Endpoint string `yaml:"endpoint"`
	// URLPath is the path metrics are posted to, for http/protobuf only.
	// Default "/v1/metrics".
	URLPath string `yaml:"url_path"`
	// Insecure sends without TLS. Default false. Request headers (an API
	// key) come from the standard OTEL_EXPORTER_OTLP_HEADERS variable, so
	// that config show never prints them.
	Insecure bool `yaml:"insecure"`
}

// has reports whether c lists exporter e.
func (c Config) has(e string) bool { return slices.Contains(c.Exporters, e) }

// Enabled reports whether c asks for an exporter.
func (c Config) Enabled() bool { return c.has(ExporterPrometheus) || c.has(ExporterOTLP) }

// Prometheus reports whether c asks for the prometheus exporter.
func (c Config) Prometheus() bool { return c.has(ExporterPrometheus) }

// WithDefaults returns c with every zero field set to its default; the
// OTLP section only when otlp is listed.
func (c Config) WithDefaults() Config {
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.has(ExporterOTLP) {
		if c.OTLP.Protocol == "" {
			c.OTLP.Protocol = ProtocolHTTP
		}
		switch c.OTLP.Protocol {
		case ProtocolHTTP:
			if c.OTLP.Endpoint == "" {
				c.OTLP.Endpoint = DefaultOTLPEndpoint
			}
			if c.OTLP.URLPath == "" {
				c.OTLP.URLPath = DefaultOTLPURLPath
			}
		case ProtocolGRPC:
			if c.OTLP.Endpoint == "" {
				c.OTLP.Endpoint = DefaultOTLPGRPCEndpoint
			}
		}
	}
	return c
}

// Validate reports every invalid field at once; prefix names the section,
// e.g. "metrics".
func (c Config) Validate(prefix string) error {
	var err error
	seen := map[string]bool{}
	for i, e := range c.Exporters {
		switch {
		case !slices.Contains(Exporters, e):
			err = errors.Join(err, fmt.Errorf("%s.exporters[%d]: %q, want one of %s", prefix, i, e, strings.Join(Exporters, ", ")))
		case seen[e]:
			err = errors.Join(err, fmt.Errorf("%s.exporters[%d]: %q listed twice", prefix, i, e))
		}
		seen[e] = true
	}
	if c.has(ExporterNone) && len(c.Exporters) > 1 {
		err = errors.Join(err, fmt.Errorf("%s.exporters: %v, want none alone or exporters without none", prefix, c.Exporters))
	}
	if c.Interval < 0 {
		err = errors.Join(err, fmt.Errorf("%s.interval: %s, want > 0 (0 means %s)", prefix, c.Interval, DefaultInterval))
	}
	if c.ShutdownTimeout < 0 {
		err = errors.Join(err, fmt.Errorf("%s.shutdown_timeout: %s, want > 0 (0 means %s)", prefix, c.ShutdownTimeout, DefaultShutdownTimeout))
	}
	o := c.OTLP
	if o.Protocol != "" && o.Protocol != ProtocolHTTP && o.Protocol != ProtocolGRPC {
		err = errors.Join(err, fmt.Errorf("%s.otlp.protocol: %q, want %s (default) or %s", prefix, o.Protocol, ProtocolHTTP, ProtocolGRPC))
	}
	if o.Protocol == ProtocolGRPC && o.URLPath != "" {
		err = errors.Join(err, fmt.Errorf("%s.otlp.url_path: %q, but %s.otlp.protocol is grpc, which has no path", prefix, o.URLPath, prefix))
	}
	if o.Endpoint != "" {
		if _, port, perr := net.SplitHostPort(o.Endpoint); perr != nil || port == "" {
			err = errors.Join(err, fmt.Errorf("%s.otlp.endpoint: %q, want host:port such as collector:4318", prefix, o.Endpoint))
		}
	}
	if o.URLPath != "" && !strings.HasPrefix(o.URLPath, "/") {
		err = errors.Join(err, fmt.Errorf("%s.otlp.url_path: %q, want a path starting with /", prefix, o.URLPath))
	}
	if !c.has(ExporterOTLP) && (o != OTLP{}) {
		err = errors.Join(err, fmt.Errorf("%s.otlp: set, but %s.exporters %v does not list %s", prefix, prefix, c.Exporters, ExporterOTLP))
	}
	return err
}
