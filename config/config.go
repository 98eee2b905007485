package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/inbound"
	"github.com/switchyard-go/switchyard/pkg/service"
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
	Service  Service                   `yaml:"service"`
	Log      Log                       `yaml:"log"`
	Broker   Broker                    `yaml:"broker"`
	Defaults service.Policy            `yaml:"defaults"`
	Handlers map[string]service.Policy `yaml:"handlers"`
	// Topics holds per-topic settings by topic name, as handlers name it
	// (before service.namespace).
	Topics map[string]Topic `yaml:"topics"`
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
	Memory memory.Config `yaml:"memory"`
	AMQP   AMQPConfig    `yaml:"amqp"`
	Kafka  KafkaConfig   `yaml:"kafka"`
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

func topicNames(topics map[string]Topic) []string {
	names := make([]string, 0, len(topics))
	for name := range topics {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Load reads the file at path (none when path is ""), applies environment
// overrides and defaults, and validates. Errors name the file.
func Load(path string) (Config, error) {
	var data []byte
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return Config{}, fmt.Errorf("config: %w", err)
		}
	}
	c, err := Parse(data, os.LookupEnv)
	if err != nil && path != "" {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	return c, err
}

// Parse reads YAML data (may be empty), applies overrides from lookup
// (os.LookupEnv in production; nil for none) and defaults, and validates.
func Parse(data []byte, lookup func(string) (string, bool)) (Config, error) {
	var c Config
	if len(bytes.TrimSpace(data)) > 0 {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
			return c, explainYAML(err)
		}
	}
	if lookup != nil {
		if err := applyEnv(&c, lookup); err != nil {
			return c, err
		}
	}
	c.setDefaults()
	if err := c.Validate(); err != nil {
		return c, err
	}
	return c, nil
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

// ServiceOptions returns the service options the configuration sets:
// source, shutdown and failure-path timeouts, default policy, per-handler
// overrides, namespace, and per-topic inbound mappings, content modes and
// Watermill headers. Call it on a validated Config (as [Load] and [Parse]
// return).
func (c Config) ServiceOptions() []service.Option {
	opts := []service.Option{
		service.WithSource(c.Service.Name),
		service.WithShutdownTimeout(c.Service.ShutdownTimeout),
		service.WithFailurePathTimeout(c.Service.FailurePathTimeout),
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
	return opts
}
