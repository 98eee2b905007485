// Package tracing builds the OpenTelemetry tracer provider a configuration
// file asks for and runs it beside a service: the exporter (stdout, or OTLP
// over HTTP or gRPC), the sampling ratio, and a shutdown that flushes what is
// buffered when [service.Service.Run] returns.
//
//	svc := service.New(b, tracing.With(tracing.Config{Exporter: "stdout"},
//		tracing.WithServiceName("payments")))
//
// In a configuration file the tracing section does the same (see package
// config): tracing: {exporter: otlp, otlp: {endpoint: "collector:4318"}}.
// It is off by default. The spans themselves (a producer span per publish,
// a consumer span per delivery) are described in docs/observability.md; a
// caller with a provider of its own passes it with
// [service.WithTracerProvider] instead.
//
// # Shutdown
//
// The provider runs as a [service.Companion]: when Run returns, it is shut
// down, which exports the spans still buffered, waiting at most
// Config.ShutdownTimeout.
package tracing
