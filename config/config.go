package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/pkg/admin"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/inbound"
	"github.com/switchyard-go/switchyard/pkg/ops"
	"github.com/switchyard-go/switchyard/pkg/otelmetrics"
	"github.com/switchyard-go/switchyard/pkg/service"
	"github.com/switchyard-go/switchyard/pkg/tracing"
)

// Broker types.
const (
	BrokerMemory = "memory"
	BrokerAMQP   = "amqp"
	BrokerKafka  = "kafka"
)

// BrokerTypes lists the allowed values of broker.type.
var BrokerTypes = []string{BrokerMemory, BrokerAMQP, BrokerKafka}

// Config is the whole configuration of a Switchyard application.
type Config struct {
	Service Service        `yaml:"service"`
	Log     Log            `yaml:"log"`
	Broker  Broker         `yaml:"broker"`
	HTTP    ops.Config     `yaml:"http"`
	Tracing tracing.Config `yaml:"tracing"`
	// Metrics turns on OpenTelemetry metrics and chooses their exporters
	// (see package otelmetrics). Default: none.
	Metrics otelmetrics.Config `yaml:"metrics"`
	// Idempotency turns on deduplication of redeliveries for every handler.
	Idempotency Idempotency `yaml:"idempotency"`
	// Outbox runs the transactional outbox's relay beside the service.
	Outbox Outbox `yaml:"outbox"`
	// Postgres is the database of the postgres idempotency store and the
	// outbox.
	Postgres Postgres                  `yaml:"postgres"`
	Defaults service.Policy            `yaml:"defaults"`
	Handlers map[string]service.Policy `yaml:"handlers"`
	// Topics holds per-topic settings by topic name, as handlers name it
	// (before service.namespace).
	Topics map[string]Topic `yaml:"topics"`
	// App is the service's own settings, undecoded: [LoadApp] and
	// [ParseEnviron] decode it into the caller's struct, as strictly as the
	// rest. Zero (App.IsZero()) when the file has no app section.
	App yaml.Node `yaml:"app,omitempty"`
}

// Topic holds the settings of one topic.
type Topic struct {
	// Inbound tells the service how to read messages that producers which
	// do not write Switchyard's header contract (plain JSON with headers of
	// their own) publish to the topic; see package inbound. Default none:
	// messages must carry the contract, else they are dead-lettered.
	Inbound *inbound.Mapping `yaml:"inbound"`
	// ContentMode is how events published to the topic carry their
	// CloudEvents attributes: "binary" (default; headers, the payload is
	// the data) or "structured" (one application/cloudevents+json document,
	// for consumers that expect it). Both are read on every topic.
	ContentMode string `yaml:"content_mode"`
	// WatermillHeaders adds, to events published to the topic, the headers
	// Watermill's default unmarshalers and correlation middleware read (the
	// message UUID and correlation_id), for consumers on plain
	// watermill-kafka or watermill-amqp. Default false.
	WatermillHeaders bool `yaml:"watermill_headers"`
}

// Service holds process-wide settings.
type Service struct {
	// Name is the CloudEvents source of published events. Default "switchyard".
	Name string `yaml:"name"`
	// ShutdownTimeout bounds the wait for in-flight handlers. Default 30s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// FailurePathTimeout bounds each dead-letter and delayed-retry publish;
	// one that takes longer nacks its message. Default 10s.
	FailurePathTimeout time.Duration `yaml:"failure_path_timeout"`
	// RequestTimeout is how long service.Request waits for a reply when
	// its context has no deadline. Default 10s.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// Namespace prefixes every topic, consumer group and dead-letter topic,
	// e.g. "staging.", so environments can share a broker. Default none.
	Namespace string `yaml:"namespace"`
}

// Log configures the process logger.
type Log struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
	// Format is text or json. Default text.
	Format string `yaml:"format"`
}

// Broker selects and configures the broker.
type Broker struct {
	// Type is memory, amqp or kafka. Default memory.
	Type   string        `yaml:"type"`
	Memory memory.Config `yaml:"memory,omitempty"`
	AMQP   AMQPConfig    `yaml:"amqp,omitempty"`
	Kafka  KafkaConfig   `yaml:"kafka,omitempty"`
}

// Defaults returns the configuration used when there is no file.
func Defaults() Config {
	c := Config{}
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	if c.Service.Name == "" {
		c.Service.Name = "switchyard"
	}
	if c.Service.ShutdownTimeout == 0 {
		c.Service.ShutdownTimeout = service.DefaultShutdownTimeout
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.Broker.Type == "" {
		c.Broker.Type = BrokerMemory
	}
}

var (
	logLevels  = []string{"debug", "info", "warn", "error"}
	logFormats = []string{"text", "json"}
)

// Validate reports every problem at once.
func (c Config) Validate() error {
	var err error
	if c.Service.ShutdownTimeout < 0 {
		err = errors.Join(err, fmt.Errorf("service.shutdown_timeout: %s, want > 0 (0 means %s)", c.Service.ShutdownTimeout, service.DefaultShutdownTimeout))
	}
	if c.Service.FailurePathTimeout < 0 {
		err = errors.Join(err, fmt.Errorf("service.failure_path_timeout: %s, want > 0 (0 means %s)", c.Service.FailurePathTimeout, service.DefaultFailurePathTimeout))
	}
	if c.Service.RequestTimeout < 0 {
		err = errors.Join(err, fmt.Errorf("service.request_timeout: %s, want > 0 (0 means %s)", c.Service.RequestTimeout, service.DefaultRequestTimeout))
	}
	if !slices.Contains(logLevels, c.Log.Level) {
		err = errors.Join(err, fmt.Errorf("log.level: %q, want one of %s", c.Log.Level, strings.Join(logLevels, ", ")))
	}
	if !slices.Contains(logFormats, c.Log.Format) {
		err = errors.Join(err, fmt.Errorf("log.format: %q, want one of %s", c.Log.Format, strings.Join(logFormats, ", ")))
	}
	switch c.Broker.Type {
	case BrokerMemory:
		err = errors.Join(err, c.Broker.Memory.Validate())
	case BrokerAMQP:
		err = errors.Join(err, validateAMQP(c.Broker.AMQP))
	case BrokerKafka:
		err = errors.Join(err, validateKafka(c.Broker.Kafka))
	default:
		err = errors.Join(err, fmt.Errorf("broker.type: %q, want one of %s", c.Broker.Type, strings.Join(BrokerTypes, ", ")))
	}
	err = errors.Join(err, c.HTTP.Validate("http"))
	err = errors.Join(err, c.Tracing.Validate("tracing"))
	err = errors.Join(err, c.Metrics.Validate("metrics"))
	if c.Metrics.Prometheus() && c.HTTP.Addr == "" {
		err = errors.Join(err, fmt.Errorf("metrics.exporters: %v lists %s, but http.addr is empty: /metrics needs the server", c.Metrics.Exporters, otelmetrics.ExporterPrometheus))
	}
	err = errors.Join(err, c.Idempotency.Validate(), c.Outbox.Validate(), c.Postgres.validate(c.postgresNeededBy()))
	err = errors.Join(err, c.Defaults.Validate("defaults"))
	names := make([]string, 0, len(c.Handlers))
	for name := range c.Handlers {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		err = errors.Join(err, c.Handlers[name].Validate("handlers."+name))
	}
	for _, name := range topicNames(c.Topics) {
		t := c.Topics[name]
		if name == "" {
			err = errors.Join(err, errors.New("topics: an empty topic name"))
		}
		if t.Inbound != nil {
			err = errors.Join(err, t.Inbound.Validate("topics."+name+".inbound"))
		}
		switch event.ContentMode(t.ContentMode) {
		case "", event.ContentModeBinary, event.ContentModeStructured:
		default:
			err = errors.Join(err, fmt.Errorf("topics.%s.content_mode: %q, want %s (default) or %s",
				name, t.ContentMode, event.ContentModeBinary, event.ContentModeStructured))
		}
	}
	return err
}

// postgresNeededBy names the setting that needs the postgres section, ""
// when none does.
func (c Config) postgresNeededBy() string {
	switch {
	case c.Idempotency.Store == StorePostgres:
		return "idempotency.store is postgres"
	case c.Outbox.Store == StorePostgres:
		return "outbox.store is postgres"
	}
	return ""
}

func topicNames(topics map[string]Topic) []string {
	names := make([]string, 0, len(topics))
	for name := range topics {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Load reads the file at path (none when path is ""), applies the
// process environment and defaults, and validates; see [ParseEnviron].
// An app section is kept undecoded in [Config.App] and its variables are
// not checked: use [LoadApp] to have them decoded and checked too.
// Errors name the file.
func Load(path string) (Config, error) { return LoadApp(path, nil) }

// LoadApp is [Load] that also decodes the file's app section, and the
// SWITCHYARD_APP_* variables, into app, a pointer to the service's own
// settings struct (yaml tags, as for Config). Fill app with its defaults
// before the call: what the file and the environment do not set is kept.
// An unknown key under app, a value of the wrong type and an unknown
// SWITCHYARD_APP_ variable are errors, reported with every other problem;
// if app has a method Validate() error, its problems are reported too.
func LoadApp(path string, app any) (Config, error) {
	var data []byte
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return Config{}, fmt.Errorf("config: %w", err)
		}
	}
	c, err := ParseEnviron(data, os.Environ(), app)
	if err != nil && path != "" {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	return c, err
}

// Parse reads YAML data (may be empty), applies the overrides lookup finds
// (nil for none) and defaults, and validates. It looks variables up by
// name, so it can neither apply SWITCHYARD_HANDLERS_* variables nor report
// unknown ones: [ParseEnviron] does both, and [Load] uses it.
func Parse(data []byte, lookup func(string) (string, bool)) (Config, error) {
	return parse(data, lookup, nil, nil)
}

// ParseEnviron reads YAML data (may be empty), applies the environment
// (os.Environ's "KEY=value" form) and defaults, and validates, like [Load]
// without the file; app is as for [LoadApp] (nil for none).
//
// Every problem of every phase is reported at once: keys and values of the
// file, variables of the environment, and validation, each naming the
// field path (or the variable), the value and what is allowed. Only a
// file that is not YAML at all stops before the other phases.
func ParseEnviron(data []byte, environ []string, app any) (Config, error) {
	env := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	return parse(data, lookup, env, app)
}

// parse is Parse and ParseEnviron; env is nil when the variables cannot be
// listed.
func parse(data []byte, lookup func(string) (string, bool), env map[string]string, app any) (Config, error) {
	var c Config
	appV, err := appValue(app)
	if err != nil {
		return c, err
	}
	roots := []reflect.Type{reflect.TypeFor[Config]()}
	if appV.IsValid() {
		roots = append(roots, appV.Type())
	}
	var errs error
	if len(bytes.TrimSpace(data)) > 0 {
		idx := indexYAML(data)
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
			var te *yaml.TypeError
			if !errors.As(err, &te) {
				return c, explainYAML(err, idx, roots...) // not YAML: nothing more can be read
			}
			errs = errors.Join(errs, explainYAML(err, idx, roots...))
		}
		if appV.IsValid() {
			errs = errors.Join(errs, decodeApp(data, appV, idx, roots))
		}
	}
	if lookup != nil {
		errs = errors.Join(errs, applyEnv(&c, lookup))
		if appV.IsValid() {
			errs = errors.Join(errs, setFromEnv(appV, []string{"app"}, lookup))
		}
	}
	if env != nil {
		var appEnv map[string][]string
		if appV.IsValid() {
			appEnv = map[string][]string{}
			envFields(appV.Type(), []string{"app"}, appEnv)
		}
		errs = errors.Join(errs, applyHandlerEnv(&c, env), checkEnvNames(env, appEnv))
	}
	c.setDefaults()
	errs = errors.Join(errs, c.Validate())
	if v, ok := app.(interface{ Validate() error }); ok {
		errs = errors.Join(errs, v.Validate())
	}
	return c, errs
}

// Logger builds the process logger the configuration describes, writing to w.
func (c Config) Logger(w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// ServiceOptions returns the service options the configuration sets: the
// logger (on standard error, see [Config.Logger]), source, shutdown and
// failure-path timeouts, default policy, per-handler overrides, namespace,
// per-topic inbound mappings, content modes and Watermill headers, the
// operations HTTP server when http.addr is set (see package ops), and
// tracing when tracing.exporter is set (see package tracing; the provider
// is shut down when Run returns, and its service.name is service.name),
// OpenTelemetry metrics when metrics.exporters lists one (see package
// otelmetrics; prometheus writes into the operations server's /metrics),
// deduplication when idempotency.store is set (service.WithIdempotency),
// and the outbox relay when outbox.store is set. A postgres store or relay
// shares one pool on the postgres section's database, opened, checked and
// migrated when Run starts (an error ends Run before anything is
// subscribed) and closed when Run returns, after the relay stopped. Options
// given after these win, e.g. a service.WithLogger of the caller's own.
// Call it on a validated Config (as [Load] and [Parse] return).
func (c Config) ServiceOptions() []service.Option { return c.serviceOptions(os.Stderr) }

// serviceOptions is ServiceOptions with the log written to w.
func (c Config) serviceOptions(w io.Writer) []service.Option {
	logger := c.Logger(w)
	opts := []service.Option{
		service.WithLogger(logger),
		service.WithSource(c.Service.Name),
		service.WithShutdownTimeout(c.Service.ShutdownTimeout),
		service.WithFailurePathTimeout(c.Service.FailurePathTimeout),
		service.WithRequestTimeout(c.Service.RequestTimeout),
		service.WithDefaults(c.Defaults),
		service.WithOverrides(c.Handlers),
		service.WithNamespace(c.Service.Namespace),
	}
	for _, name := range topicNames(c.Topics) {
		t := c.Topics[name]
		if t.Inbound != nil {
			opts = append(opts, service.WithInbound(name, *t.Inbound))
		}
		if t.ContentMode != "" {
			opts = append(opts, service.WithContentMode(name, event.ContentMode(t.ContentMode)))
		}
		if t.WatermillHeaders {
			opts = append(opts, service.WithWatermillHeaders(name))
		}
	}
	var registry *prometheus.Registry // the operations server's, for the prometheus exporter
	if c.HTTP.Addr != "" {
		srv, err := ops.New(c.HTTP, ops.WithLogger(logger), ops.WithAdmin(admin.WithAsyncAPI(c.AsyncAPI(""))))
		if err == nil {
			opts = append(opts, srv.Option())
			registry = srv.Registry()
		} else {
			opts = append(opts, ops.With(c.HTTP)) // fails Run with err
		}
	}
	if c.Tracing.Enabled() {
		opts = append(opts, tracing.With(c.Tracing, tracing.WithServiceName(c.Service.Name)))
	}
	if c.Metrics.Enabled() {
		mopts := []otelmetrics.Option{otelmetrics.WithServiceName(c.Service.Name)}
		if registry != nil {
			mopts = append(mopts, otelmetrics.WithRegisterer(registry))
		}
		opts = append(opts, otelmetrics.With(c.Metrics, mopts...))
	}
	return append(opts, c.storeOptions(logger)...)
}
