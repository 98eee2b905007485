// Command switchyard-faults runs Switchyard's fault scenarios against the
// real brokers started by `make up` (RabbitMQ, Kafka, PostgreSQL) and the
// in-memory broker, and checks that at-least-once delivery holds through
// them: nothing published and confirmed is lost.
//
//	make faults                                  # every scenario
//	go run ./cmd/switchyard-faults -run kill9    # scenarios whose name contains "kill9"
//	go run ./cmd/switchyard-faults -list
//
// It reads the broker addresses from the environment that scripts/up.sh
// writes to .work/env (SWITCHYARD_TEST_AMQP_URL, SWITCHYARD_TEST_KAFKA_BROKERS,
// SWITCHYARD_TEST_POSTGRES_URL). A scenario whose broker is not configured is
// skipped, except under CI=true, where it fails.
//
// # Output
//
// Each scenario prints exactly one line on standard output:
//
//	scenario=NAME broker=B published=N processed=N duplicates=N dead_lettered=N lost=N
//
// published counts the message ids the broker confirmed (a publish that
// failed is retried until it is confirmed: at-least-once means the producer
// retries); processed the distinct ids a handler handled successfully;
// duplicates the extra handlings of an id already handled; dead_lettered the
// distinct ids found on the dead-letter topic; lost the ids published and
// neither processed nor dead-lettered. Progress and diagnostics go to
// standard error. The command exits 1 if any scenario lost a message or
// missed one of its expectations, which follow its line on standard error
// as "FAIL scenario=...: ...".
//
// RabbitMQ's adapter does not implement broker.Provisioner yet, so a
// service cannot keep its own dead letters there until something declares
// the dead-letter queue: the driver declares it (-declare-dead-letters,
// default true). Without it, dead-letter publishes are unroutable and the
// bad messages are nacked and redelivered until a reader declares the queue.
//
// A passing scenario deletes its queues, exchanges, Kafka topics and
// idempotency keys; a failing one keeps them, and its PostgreSQL table
// (faults_<run>_<scenario>_<broker>_handled), for inspection.
//
// Every run uses a fresh service namespace per scenario
// ("faults.<run>.<scenario>."), so reruns never see older messages.
//
// # Scenarios
//
//   - kill9 (amqp, kafka): a consumer child process (this command re-executed
//     as the hidden "consume" subcommand) is killed with SIGKILL mid-stream
//     and started again. The child records every handling in a PostgreSQL
//     table of the run, in the same transaction as the idempotency record
//     of adapters/postgres when that adapter is available (the "-eo" variant:
//     duplicates must be 0 and the table holds exactly one row per id), or
//     one autocommitted row per handling otherwise (at-least-once: a
//     handling whose row committed but whose ack was lost with the process is
//     redelivered and counted as a duplicate, never as a loss).
//   - rabbitmq-restart, kafka-restart: `bash scripts/<broker>.sh restart`
//     while a publisher and a consumer (in this process, on separate
//     connections) are streaming; both must recover. The script restarts
//     only a broker that scripts/up.sh started itself; it refuses one it did
//     not start (one already on the port), and the scenario then fails.
//   - group-sigterm, group-sigkill (amqp, kafka): two consumer children in one
//     group; one leaves mid-stream, gracefully (SIGTERM, which must also exit
//     0) or not (SIGKILL); the other takes over its share.
//   - badinput (memory, amqp, kafka): a corpus of bad messages mixed into good
//     traffic; every bad one must be dead-lettered with its precise
//     sy_dlq_reason, every good one handled, and the consumer must keep
//     running. See badinput.go for the corpus and the decision on the 10 MB
//     payload (handled on memory and RabbitMQ; on Kafka the publish itself is
//     refused with a clear error, so it is never counted as published).
package main
