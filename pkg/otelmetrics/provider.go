package otelmetrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/switchyard-go/switchyard/pkg/service"
)

// Option adjusts what only code can give [New].
type Option func(*options)

type options struct {
	serviceName string
	registerer  prometheus.Registerer
	readers     []sdkmetric.Reader
	stdout      io.Writer
}

// WithServiceName sets the service.name resource attribute. Default: the
// SDK's (OTEL_SERVICE_NAME, else unknown_service).
func WithServiceName(name string) Option { return func(o *options) { o.serviceName = name } }

// WithRegisterer is where the prometheus exporter registers: the
// operations server's registry ([ops.Server.Registry]), so that /metrics
// serves the metrics. Required when Config lists prometheus.
//
// [ops.Server.Registry]: https://pkg.go.dev/github.com/switchyard-go/switchyard/pkg/ops#Server.Registry
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(o *options) { o.registerer = reg }
}

// WithWriter is where the stdout exporter writes. Default os.Stdout.
func WithWriter(w io.Writer) Option { return func(o *options) { o.stdout = w } }

// WithReader adds a reader of the caller's own, such as the SDK's
// sdkmetric.NewManualReader in tests.
func WithReader(r sdkmetric.Reader) Option {
	return func(o *options) { o.readers = append(o.readers, r) }
}

// Provider is a meter provider built from a [Config], run beside a service
// by [Provider.Option].
type Provider struct {
	mp  *sdkmetric.MeterProvider
	cfg Config
}

// New builds the provider cfg and opts describe. It does not connect to
// anything: the OTLP exporter sends in the background. It returns nil, nil
// when neither cfg nor a WithReader asks for anything.
func New(cfg Config, opts ...Option) (*Provider, error) {
	if err := cfg.Validate("metrics"); err != nil {
		return nil, err
	}
	o := options{}
	for _, opt := range opts {
		opt(&o)
	}
	if !cfg.Enabled() && len(o.readers) == 0 {
		return nil, nil
	}
	cfg = cfg.WithDefaults()
	var mopts []sdkmetric.Option
	for _, r := range o.readers {
		mopts = append(mopts, sdkmetric.WithReader(r))
	}
	if cfg.Prometheus() {
		if o.registerer == nil {
			return nil, errors.New("metrics.exporters: prometheus, but there is no registry to export to (set http.addr, or give otelmetrics.WithRegisterer)")
		}
		exp, err := otelprom.New(otelprom.WithRegisterer(o.registerer))
		if err != nil {
			return nil, fmt.Errorf("metrics: prometheus exporter: %w", err)
		}
		mopts = append(mopts, sdkmetric.WithReader(exp))
	}
	if cfg.has(ExporterOTLP) {
		exp, err := otlpExporter(cfg.OTLP)
		if err != nil {
			return nil, fmt.Errorf("metrics: otlp exporter: %w", err)
		}
		mopts = append(mopts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(cfg.Interval))))
	}
	if cfg.has(ExporterStdout) {
		w := o.stdout
		if w == nil {
			w = os.Stdout
		}
		exp, err := stdoutmetric.New(stdoutmetric.WithWriter(w))
		if err != nil {
			return nil, fmt.Errorf("metrics: stdout exporter: %w", err)
		}
		mopts = append(mopts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(cfg.Interval))))
	}
	res := resource.Default()
	if o.serviceName != "" {
		var err error
		if res, err = resource.Merge(res, resource.NewSchemaless(semconv.ServiceName(o.serviceName))); err != nil {
			return nil, fmt.Errorf("metrics: resource: %w", err)
		}
	}
	mopts = append(mopts, sdkmetric.WithResource(res))
	return &Provider{mp: sdkmetric.NewMeterProvider(mopts...), cfg: cfg}, nil
}

// otlpExporter is the OTLP exporter o describes; neither protocol
// connects here.
func otlpExporter(o OTLP) (sdkmetric.Exporter, error) {
	if o.Protocol == ProtocolGRPC {
		gopts := []otlpmetricgrpc.Option{otlpmetricgrpc.WithEndpoint(o.Endpoint)}
		if o.Insecure {
			gopts = append(gopts, otlpmetricgrpc.WithInsecure())
		}
		return otlpmetricgrpc.New(context.Background(), gopts...)
	}
	hopts := []otlpmetrichttp.Option{otlpmetrichttp.WithEndpoint(o.Endpoint), otlpmetrichttp.WithURLPath(o.URLPath)}
	if o.Insecure {
		hopts = append(hopts, otlpmetrichttp.WithInsecure())
	}
	return otlpmetrichttp.New(context.Background(), hopts...)
}

// MeterProvider is the provider, for instruments of the caller's own.
func (p *Provider) MeterProvider() metric.MeterProvider { return p.mp }

// Option is the service option that records the service's metrics with p
// (see [Instrument]) and shuts p down when Run returns, after a last
// export.
func (p *Provider) Option() service.Option {
	return func(s *service.Service) {
		Instrument(p.mp)(s)
		service.WithCompanion(p)(s)
	}
}

// Start does nothing: the provider is ready once built.
func (p *Provider) Start(context.Context, *service.Service) error { return nil }

// Stop exports what is recorded and shuts the provider down, waiting at
// most Config.ShutdownTimeout.
func (p *Provider) Stop(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.ShutdownTimeout)
	defer cancel()
	if err := p.mp.Shutdown(ctx); err != nil {
		return fmt.Errorf("metrics: shut down: %w", err)
	}
	return nil
}

// With is the service option for cfg: [New] then [Provider.Option]. When
// cfg asks for nothing it does nothing; when New fails, Run returns its
// error before subscribing anything.
func With(cfg Config, opts ...Option) service.Option {
	p, err := New(cfg, opts...)
	switch {
	case err != nil:
		return service.WithStartError(err)
	case p == nil:
		return func(*service.Service) {}
	}
	return p.Option()
}

// sinceSeconds is d in seconds, for duration histograms.
func sinceSeconds(t time.Time) float64 { return time.Since(t).Seconds() }
