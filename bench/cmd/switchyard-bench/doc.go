// Command switchyard-bench measures Switchyard against bare Watermill and the
// raw broker clients, on the same broker in the same run, and reports the
// results as ratios (see docs/benchmarks.md).
//
// It is in the nested module bench/ (its own go.mod) so that Sarama,
// watermill-kafka and watermill-amqp, which it measures against, are not
// requirements of the library. Usage, from bench/:
//
//	go run ./cmd/switchyard-bench --brokers memory
//	go run ./cmd/switchyard-bench --brokers memory,amqp,kafka --write-docs ../docs/benchmarks.md
//
// For every broker it runs these scenarios, each contender in its own child
// process (the command re-executes itself with a hidden -child flag) so that
// peak RSS (VmHWM) is per contender and per scenario:
//
//   - publish: confirmed publishing of 1 KiB JSON messages;
//   - e2e: publish and consume through a handler that decodes into a typed struct;
//   - latency: e2e at a fixed rate, half the slowest contender's e2e maximum;
//   - overrun (memory only): a publisher far faster than a stalled consumer.
//
// Each scenario is run --runs times (default 3) and the median is reported.
// Broker addresses come from SWITCHYARD_TEST_AMQP_URL and
// SWITCHYARD_TEST_KAFKA_BROKERS (source .work/env after `make up`).
package main
