package tracing

import (
	"context"
	"fmt"
	"io"
	"os"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-go/switchyard/pkg/service"
)

// Option adjusts what only code can give [New].
type Option func(*options)

type options struct {
	serviceName string
	stdout      io.Writer
}

// WithServiceName sets the service.name resource attribute of every span.
// Default: the SDK's (OTEL_SERVICE_NAME, else unknown_service).
func WithServiceName(name string) Option { return func(o *options) { o.serviceName = name } }

// WithWriter sets where the stdout exporter writes. Default os.Stdout.
func WithWriter(w io.Writer) Option { return func(o *options) { o.stdout = w } }

// Provider is a tracer provider built from a [Config], run beside a
// service by [Provider.Option].
type Provider struct {
	tp  *sdktrace.TracerProvider
	cfg Config
}

// New builds the provider cfg describes. It does not connect to anything:
// the OTLP exporter sends in the background. It returns nil, nil when cfg
// asks for no tracing.
func New(cfg Config, opts ...Option) (*Provider, error) {
	if err := cfg.Validate("tracing"); err != nil {
		return nil, err
	}
	if !cfg.Enabled() {
		return nil, nil
	}
	cfg = cfg.WithDefaults()
	o := options{stdout: os.Stdout}
	for _, opt := range opts {
		opt(&o)
	}
	var exp sdktrace.SpanExporter
	var err error
	switch cfg.Exporter {
	case ExporterStdout:
		exp, err = stdouttrace.New(stdouttrace.WithWriter(o.stdout))
	case ExporterOTLP:
		exp, err = otlpExporter(cfg.OTLP)
	}
	if err != nil {
		return nil, fmt.Errorf("tracing: %s exporter: %w", cfg.Exporter, err)
	}
	res := resource.Default()
	if o.serviceName != "" {
		if res, err = resource.Merge(res, resource.NewSchemaless(semconv.ServiceName(o.serviceName))); err != nil {
			return nil, fmt.Errorf("tracing: resource: %w", err)
		}
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
	)
	return &Provider{tp: tp, cfg: cfg}, nil
}

// otlpExporter is the OTLP exporter o describes. Neither protocol
// connects here: the gRPC client dials in the background.
func otlpExporter(o OTLP) (sdktrace.SpanExporter, error) {
	if o.Protocol == ProtocolGRPC {
		gopts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(o.Endpoint)}
		if o.Insecure {
			gopts = append(gopts, otlptracegrpc.WithInsecure())
		}
		return otlptracegrpc.New(context.Background(), gopts...)
	}
	hopts := []otlptracehttp.Option{
		otlptracehttp.WithEndpoint(o.Endpoint),
		otlptracehttp.WithURLPath(o.URLPath),
	}
	if o.Insecure {
		hopts = append(hopts, otlptracehttp.WithInsecure())
	}
	return otlptracehttp.New(context.Background(), hopts...)
}

// TracerProvider is the provider, for spans of the caller's own.
func (p *Provider) TracerProvider() trace.TracerProvider { return p.tp }

// Option is the service option that traces the service with p and shuts
// p down when [service.Service.Run] returns (see [service.Companion]).
func (p *Provider) Option() service.Option {
	return func(s *service.Service) {
		service.WithTracerProvider(p.tp)(s)
		service.WithCompanion(p)(s)
	}
}

// Start does nothing: the provider is ready once built.
func (p *Provider) Start(context.Context, *service.Service) error { return nil }

// Stop shuts the provider down, exporting the spans still buffered and
// waiting at most Config.ShutdownTimeout.
func (p *Provider) Stop(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.ShutdownTimeout)
	defer cancel()
	if err := p.tp.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: shut down: %w", err)
	}
	return nil
}

// With is the service option for cfg: [New] then [Provider.Option]. When
// cfg asks for no tracing it does nothing; when New fails, the service's
// Run returns its error before subscribing anything.
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
