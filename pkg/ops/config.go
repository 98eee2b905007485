package ops

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/switchyard-go/switchyard/pkg/admin"
)

// DefaultShutdownTimeout bounds the wait for open requests when the server
// stops.
const DefaultShutdownTimeout = 5 * time.Second

// DefaultBrokerTimeout bounds the broker checks of one /readyz request or
// /metrics scrape.
const DefaultBrokerTimeout = 2 * time.Second

// Config is the http section of a configuration file. The zero value means
// no server.
type Config struct {
	// Addr is the host:port the server listens on, e.g. ":9090" or
	// "127.0.0.1:9090" (port 0 picks a free one). Default "": no server.
	Addr string `yaml:"addr"`
	// Pprof serves net/http/pprof under /debug/pprof/. Default false: it
	// exposes stacks and profiles, keep it on a private address.
	Pprof bool `yaml:"pprof"`
	// ShutdownTimeout bounds the wait for open requests when the server
	// stops. Default 5s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// Admin is the admin API under /admin/ (package admin). Default off.
	Admin admin.Config `yaml:"admin"`
	// Readiness tunes what /readyz asks of the broker.
	Readiness ReadinessConfig `yaml:"readiness"`
}

// ReadinessConfig is the http.readiness section.
type ReadinessConfig struct {
	// BrokerTimeout bounds the broker checks (connection health, then the
	// backlog of every subscription) behind one /readyz request or /metrics
	// scrape; a broker that does not answer in time counts as unreachable.
	// Default 2s.
	BrokerTimeout time.Duration `yaml:"broker_timeout"`
	// MaxBacklog, when > 0, makes /readyz fail while a subscription's
	// backlog (queue depth, or consumer lag summed over partitions) is
	// above it. Default 0: the backlog is reported, never judged.
	MaxBacklog int64 `yaml:"max_backlog"`
}

func (c Config) withDefaults() Config {
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.Readiness.BrokerTimeout == 0 {
		c.Readiness.BrokerTimeout = DefaultBrokerTimeout
	}
	return c
}

// WithDefaults returns c with every zero field but Addr set to its default.
func (c Config) WithDefaults() Config { return c.withDefaults() }

// Validate reports every invalid field at once; prefix names the section,
// e.g. "http".
func (c Config) Validate(prefix string) error {
	var err error
	if c.Addr != "" {
		if _, port, perr := net.SplitHostPort(c.Addr); perr != nil || port == "" {
			err = errors.Join(err, fmt.Errorf("%s.addr: %q, want host:port such as :9090 or 127.0.0.1:9090", prefix, c.Addr))
		}
	} else if c.Pprof {
		err = errors.Join(err, fmt.Errorf("%s.pprof: true, but %s.addr is empty: pprof needs the server", prefix, prefix))
	}
	if c.Admin.Enabled && c.Addr == "" {
		err = errors.Join(err, fmt.Errorf("%s.admin.enabled: true, but %s.addr is empty: the admin API needs the server", prefix, prefix))
	}
	err = errors.Join(err, c.Admin.Validate(prefix+".admin"))
	if c.ShutdownTimeout < 0 {
		err = errors.Join(err, fmt.Errorf("%s.shutdown_timeout: %s, want > 0 (0 means %s)", prefix, c.ShutdownTimeout, DefaultShutdownTimeout))
	}
	if c.Readiness.BrokerTimeout < 0 {
		err = errors.Join(err, fmt.Errorf("%s.readiness.broker_timeout: %s, want > 0 (0 means %s)", prefix, c.Readiness.BrokerTimeout, DefaultBrokerTimeout))
	}
	if c.Readiness.MaxBacklog < 0 {
		err = errors.Join(err, fmt.Errorf("%s.readiness.max_backlog: %d, want >= 0 (0 means no threshold)", prefix, c.Readiness.MaxBacklog))
	}
	return err
}
