package otelmetrics

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/switchyard-go/switchyard/internal/otlpconf"
)

// Exporters: the allowed values of Config.Exporters.
const (
	ExporterNone       = "none"
	ExporterPrometheus = "prometheus"
	ExporterOTLP       = "otlp"
	ExporterStdout     = "stdout"
)

// Exporters lists the allowed values of Config.Exporters.
var Exporters = []string{ExporterNone, ExporterPrometheus, ExporterOTLP, ExporterStdout}

// OTLP protocols: the allowed values of OTLP.Protocol.
const (
	ProtocolHTTP = otlpconf.ProtocolHTTP
	ProtocolGRPC = otlpconf.ProtocolGRPC
)

// Defaults.
const (
	DefaultInterval         = 30 * time.Second
	DefaultShutdownTimeout  = 5 * time.Second
	DefaultOTLPEndpoint     = otlpconf.DefaultHTTPEndpoint
	DefaultOTLPGRPCEndpoint = otlpconf.DefaultGRPCEndpoint
	DefaultOTLPURLPath      = "/v1/metrics"
)

// Config is the metrics section of a configuration file. The zero value
// means no OpenTelemetry metrics (the switchyard_* Prometheus metrics of
// the operations server are there regardless).
type Config struct {
	// Exporters lists where the metrics go: "prometheus" (the operations
	// server's /metrics, so http.addr must be set), "otlp" (a collector,
	// see OTLP), "stdout" (a JSON document per export interval on standard
	// output, for development), several of them, or "none". Default []:
	// none.
	Exporters []string `yaml:"exporters"`
	// Interval is how often the otlp and stdout exporters send. Default
	// 30s.
	Interval time.Duration `yaml:"interval"`
	// ShutdownTimeout bounds the last export when the service stops.
	// Default 5s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// OTLP configures the otlp exporter.
	OTLP OTLP `yaml:"otlp"`
}

// OTLP configures the OTLP exporter (shared with the tracing section).
type OTLP = otlpconf.Config

// has reports whether c lists exporter e.
func (c Config) has(e string) bool { return slices.Contains(c.Exporters, e) }

// Enabled reports whether c asks for an exporter.
func (c Config) Enabled() bool {
	return c.has(ExporterPrometheus) || c.has(ExporterOTLP) || c.has(ExporterStdout)
}

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
		c.OTLP = c.OTLP.WithDefaults(DefaultOTLPURLPath)
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
	err = errors.Join(err, c.OTLP.Validate(prefix+".otlp"))
	if !c.has(ExporterOTLP) && !c.OTLP.IsZero() {
		err = errors.Join(err, fmt.Errorf("%s.otlp: set, but %s.exporters %v does not list %s", prefix, prefix, c.Exporters, ExporterOTLP))
	}
	return err
}
