package tracing

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/switchyard-go/switchyard/internal/otlpconf"
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
	ProtocolHTTP = otlpconf.ProtocolHTTP
	ProtocolGRPC = otlpconf.ProtocolGRPC
)

// Protocols lists the allowed values of OTLP.Protocol.
var Protocols = otlpconf.Protocols

// Defaults.
const (
	DefaultSampleRatio      = 1.0
	DefaultShutdownTimeout  = 5 * time.Second
	DefaultOTLPEndpoint     = otlpconf.DefaultHTTPEndpoint
	DefaultOTLPGRPCEndpoint = otlpconf.DefaultGRPCEndpoint
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

// OTLP configures the OTLP exporter (shared with the metrics section).
type OTLP = otlpconf.Config

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
		c.OTLP = c.OTLP.WithDefaults(DefaultOTLPURLPath)
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
	err = errors.Join(err, c.OTLP.Validate(prefix+".otlp"))
	if c.Exporter != ExporterOTLP && !c.OTLP.IsZero() {
		err = errors.Join(err, fmt.Errorf("%s.otlp: set, but %s.exporter is %q, not %s", prefix, prefix, c.Exporter, ExporterOTLP))
	}
	return err
}
