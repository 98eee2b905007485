package tracing

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
)

// Exporters: the allowed values of Config.Exporter.
const (
	ExporterNone   = "none"
	ExporterStdout = "stdout"
	ExporterOTLP   = "otlp"
)

// Exporters lists the allowed values of Config.Exporter.
var Exporters = []string{ExporterNone, ExporterStdout, ExporterOTLP}

// OTLP protocols: the allowed values of OTLP.Protocol.
const (
	ProtocolHTTP = "http/protobuf"
	ProtocolGRPC = "grpc"
)

// Protocols lists the allowed values of OTLP.Protocol.
var Protocols = []string{ProtocolHTTP, ProtocolGRPC}

// Defaults.
const (
	DefaultSampleRatio      = 1.0
	DefaultShutdownTimeout  = 5 * time.Second
	DefaultOTLPEndpoint     = "localhost:4318" // http/protobuf's
	DefaultOTLPGRPCEndpoint = "localhost:4317"
	DefaultOTLPURLPath      = "/v1/traces"
)

// Config is the tracing section of a configuration file. The zero value
// means no tracing.
type Config struct {
	// Exporter is where spans go: "none" (no tracing), "stdout" (one JSON
	// document per span on standard output, for development) or "otlp"
	// (an OpenTelemetry collector, see OTLP). Default "": none.
	Exporter string `yaml:"exporter"`
	// SampleRatio is the fraction of traces started here that are
	// recorded, in (0, 1]; a delivery or publish whose trace was started
	// upstream follows the upstream decision. Default 1: every trace.
	SampleRatio float64 `yaml:"sample_ratio"`
	// ShutdownTimeout bounds the export of the spans still buffered when
	// the service stops. Default 5s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// OTLP configures the otlp exporter.
	OTLP OTLP `yaml:"otlp"`
}

// OTLP configures the OTLP exporter.
type OTLP struct {
	// Protocol is "http/protobuf" or "grpc". Default "http/protobuf".
	Protocol string `yaml:"protocol"`
	// Endpoint is the collector's host:port. Default "localhost:4318"
	// for http/protobuf, "localhost:4317" for grpc.
	Endpoint string `yaml:"endpoint"`
	// URLPath is the path spans are posted to, for http/protobuf only.
	// Default "/v1/traces".
	URLPath string `yaml:"url_path"`
	// Insecure sends without TLS (plain HTTP, or gRPC without transport
	// security). Default false.
	Insecure bool `yaml:"insecure"`
	// Request headers (an API key) are not set here, where they would be
	// printed by config show: the exporter reads them from the standard
	// OTEL_EXPORTER_OTLP_HEADERS variable.
}

// Enabled reports whether c asks for tracing.
func (c Config) Enabled() bool { return c.Exporter != "" && c.Exporter != ExporterNone }

// WithDefaults returns c with every zero field set to its default; the
// OTLP section only when the exporter is otlp.
func (c Config) WithDefaults() Config {
	if c.SampleRatio == 0 {
		c.SampleRatio = DefaultSampleRatio
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.Exporter == ExporterOTLP {
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
// e.g. "tracing".
func (c Config) Validate(prefix string) error {
	var err error
	if c.Exporter != "" && !slices.Contains(Exporters, c.Exporter) {
		err = errors.Join(err, fmt.Errorf("%s.exporter: %q, want one of %s", prefix, c.Exporter, strings.Join(Exporters, ", ")))
	}
	if c.SampleRatio < 0 || c.SampleRatio > 1 {
		err = errors.Join(err, fmt.Errorf("%s.sample_ratio: %v, want a number in (0, 1] (0 means %v)", prefix, c.SampleRatio, DefaultSampleRatio))
	}
	if c.ShutdownTimeout < 0 {
		err = errors.Join(err, fmt.Errorf("%s.shutdown_timeout: %s, want > 0 (0 means %s)", prefix, c.ShutdownTimeout, DefaultShutdownTimeout))
	}
	o := c.OTLP
	if o.Protocol != "" && !slices.Contains(Protocols, o.Protocol) {
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
	if c.Exporter != ExporterOTLP && (o.Protocol != "" || o.Endpoint != "" || o.URLPath != "" || o.Insecure) {
		err = errors.Join(err, fmt.Errorf("%s.otlp: set, but %s.exporter is %q, not %s", prefix, prefix, c.Exporter, ExporterOTLP))
	}
	return err
}
