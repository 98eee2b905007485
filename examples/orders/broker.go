package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// openBroker opens the broker the configuration file at path selects (""
// means the in-memory broker with its defaults) and returns the service
// options the file sets, which win over the example's.
func openBroker(_ context.Context, path string, logger *slog.Logger) (broker.Broker, []service.Option, error) {
	if path != "" {
		return nil, nil, errors.New("--config: configuration files are not supported yet, run without --config")
	}
	b, err := memory.New(memory.Config{}, logger)
	if err != nil {
		return nil, nil, err
	}
	return b, nil, nil
}
