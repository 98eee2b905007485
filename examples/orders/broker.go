package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/switchyard-go/switchyard/config"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// openBroker opens the broker the configuration file at path selects (""
// means the in-memory broker with its defaults) and returns the service
// options the file sets: source, shutdown timeout, default policy and
// per-handler overrides. Policy fields the file leaves out take the
// example's short retries. The file's log section is not used: logs follow
// --log-level.
func openBroker(ctx context.Context, path string, logger *slog.Logger) (broker.Broker, []service.Option, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, nil, err
	}
	b, err := config.Open(ctx, cfg, logger)
	if err != nil {
		return nil, nil, fmt.Errorf("opening the %s broker: %w", cfg.Broker.Type, err)
	}
	opts := append(cfg.ServiceOptions(), service.WithDefaults(cfg.Defaults.Inherit(examplePolicy)))
	return b, opts, nil
}
