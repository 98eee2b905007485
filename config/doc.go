// Package config reads Switchyard's configuration: a YAML file plus
// environment overrides, into typed, validated settings, and opens the broker
// it selects. It is the only package that knows every adapter by name.
//
// # File
//
//	service:
//	  name: orders-service        # CloudEvents source of published events
//	  shutdown_timeout: 30s
//	log:
//	  level: info                 # debug | info | warn | error
//	  format: text                # text | json
//	broker:
//	  type: memory                # memory | amqp | kafka
//	  memory: {buffer_size: 1024}
//	defaults:                     # policy every handler inherits
//	  retry: {max_attempts: 5, initial_interval: 100ms}
//	handlers:                     # per-handler overrides, by handler name
//	  inventory.reserve:
//	    timeout: 2s
//	idempotency: {store: postgres} # none | memory | postgres: skip redeliveries
//	outbox: {store: postgres}     # run the outbox relay beside the service
//	postgres: {dsn: "postgres://u:p@db:5432/app"}
//	topics:                       # per-topic settings, by topic name
//	  orders:
//	    inbound:                  # how to read producers that don't write our headers
//	      type: {header: eventType}
//	      correlation_id: {header: correlationId}
//
// An unknown key is an error, not silence. Every problem is reported at once,
// each naming the field, the value and what is allowed. With no file at all
// the in-memory broker is used.
//
// # Environment
//
// Any scalar setting outside "handlers", "topics" and "app" can be
// overridden by an environment variable named SWITCHYARD_ plus its path in
// upper case with "_" between keys: SWITCHYARD_BROKER_TYPE=kafka,
// SWITCHYARD_BROKER_AMQP_URL=..., SWITCHYARD_DEFAULTS_RETRY_MAX_ATTEMPTS=3.
// Lists are comma-separated (SWITCHYARD_BROKER_KAFKA_BROKERS=a:9092,b:9092).
// Handler settings are SWITCHYARD_HANDLERS_<NAME>_<KEY> (see
// [HandlerEnvName]); the app section's are SWITCHYARD_APP_<PATH> (see
// [LoadApp]). Environment wins over the file. A SWITCHYARD_ variable that
// names no setting, and is not one of [ToolingEnv], is an error naming the
// nearest valid one.
//
// # Build tags
//
// -tags switchyard_no_kafka and switchyard_no_amqp leave the Kafka or
// RabbitMQ adapter, and its client library, out of a program; it then
// refuses that broker's type and settings, naming the tag.
package config
