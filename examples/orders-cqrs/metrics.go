package main

import (
	"fmt"
	"log/slog"

	"github.com/switchyard-go/switchyard/config"
	"github.com/switchyard-go/switchyard/pkg/admin"
	"github.com/switchyard-go/switchyard/pkg/ops"
	"github.com/switchyard-go/switchyard/pkg/otelmetrics"
	"github.com/switchyard-go/switchyard/pkg/projection"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// serviceOptions are cfg's service options with the operations server
// (the http section: /healthz, /readyz, /metrics) opened here rather than
// by the configuration, which keeps its server to itself: the example
// needs the server's registry to add the read model's projection metrics
// (position, lag, rebuilding; see [exportReadModel]) to /metrics. The
// metrics section's Prometheus exporter goes to the same registry, as it
// would through the configuration.
func serviceOptions(cfg config.Config, logger *slog.Logger) ([]service.Option, *ops.Server, error) {
	opsCfg, metricsCfg := cfg.HTTP, cfg.Metrics
	cfg.HTTP, cfg.Metrics = ops.Config{}, otelmetrics.Config{}
	opts := cfg.ServiceOptions()
	var srv *ops.Server
	mopts := []otelmetrics.Option{otelmetrics.WithServiceName(cfg.Service.Name)}
	if opsCfg.Addr != "" {
		var err error
		srv, err = ops.New(opsCfg, ops.WithLogger(logger), ops.WithAdmin(admin.WithAsyncAPI(cfg.AsyncAPI(""))))
		if err != nil {
			return nil, nil, fmt.Errorf("http: %w", err)
		}
		opts = append(opts, srv.Option())
		mopts = append(mopts, otelmetrics.WithRegisterer(srv.Registry()))
	}
	if metricsCfg.Enabled() {
		opts = append(opts, otelmetrics.With(metricsCfg, mopts...))
	}
	return opts, srv, nil
}

// exportReadModel adds the read model's projection status to the
// operations server's /metrics, if there is one.
func exportReadModel(srv *ops.Server, r *readModel) error {
	if srv == nil {
		return nil
	}
	if err := srv.Registry().Register(projection.NewCollector(r.proj)); err != nil {
		return fmt.Errorf("metrics: the read model's: %w", err)
	}
	return nil
}
