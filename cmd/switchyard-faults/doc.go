//go:build !switchyard_no_kafka && !switchyard_no_amqp

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
//   - kafka-rebalance, amqp-rebalance: two consumer children in one group
//     handle a keyed stream with work in flight (see membership.go for the
//     load); a third joins, then the oldest leaves gracefully (SIGTERM),
//     while the producer keeps streaming. On RabbitMQ the handler is
//     ordered (single-active-consumer queue): the join adds a standby and
//     the leave hands the queue over.
//   - kafka-rolling-restart, amqp-rolling-restart: three consumer children
//     are replaced one by one, oldest first (SIGTERM, wait for the exit,
//     start a new one, wait until the group is whole again), under load,
//     as a rolling deploy does.
//     See "Rebalances and rolling restarts" below.
//   - badinput (memory, amqp, kafka): a corpus of bad messages mixed into good
//     traffic; every bad one must be dead-lettered with its precise
//     sy_dlq_reason, every good one handled, and the consumer must keep
//     running. See badinput.go for the corpus and the decision on the 10 MB
//     payload (handled on memory and RabbitMQ; on Kafka the publish itself is
//     refused with a clear error, so it is never counted as published).
//
// # Cluster scenarios
//
// With -cluster (make faults-cluster) the command runs instead the
// scenarios of cluster.go on the three-node clusters of scripts/cluster.sh
// (.work/cluster/env): cluster-leader-kill9 (kafka: SIGKILL of the
// partition leader; amqp: of the quorum queue leader's node),
// cluster-rolling-restart (kafka: each broker stopped and started in
// turn) and cluster-publisher-node-kill9 (amqp: the node the publisher is
// connected to), each with a producer and two consumers of one group
// streaming. Their result lines add the killed node and the longest time
// without a confirmed publish (producer_stall) and without a handling
// (consumer_stall) from the fault until the cluster was whole again.
// docs/clusters.md has the figures.
//
// # Rebalances and rolling restarts
//
// The four membership scenarios (kafka-rebalance, kafka-rolling-restart,
// amqp-rebalance, amqp-rolling-restart; membership.go) record every
// handling with its key, its Kafka partition and offset (on RabbitMQ its
// sequence number: the producer publishes from one goroutine, so per key
// the sequence is the publish order) and its time window (windows.go).
// Besides a loss, a scenario fails when a key was handled on two members
// at once, when a member handled a key out of order, or when a repeat
// re-handles what a member that stayed had handled, which the Kafka
// adapter's revoke drain exists to prevent. The Kafka load has work in
// flight whenever partitions move (200ms handlings, and one in 40 takes
// 2s, longer than handing a partition over takes: a member that kept
// handling a revoked partition would overlap with the new owner). The
// RabbitMQ handler is ordered (single-active-consumer queue, prefetch 1),
// on two keys in batches of 15, so that competing consumers would overlap
// at once: a join adds a standby, a leave hands the queue over.
//
// Repeats of what a leaving member had handled are counted as duplicates,
// not failed. On Kafka a graceful leave hands back the records the runtime
// had taken but not started (their key was busy with a 2s handling); the
// committed offset cannot pass a handed-back record, so the records acked
// behind it are redelivered to the new owner. That is at-least-once; an
// idempotent consumer absorbs it.
//
// Standard error gets a "figures scenario=..." line beside the result:
// overlaps, order violations, duplicates by cause (after a leave, after a
// rebalance), and the longest time a Kafka partition or the RabbitMQ queue
// made no progress, overall and per membership change. Measured on the
// shared 2-core machine (Kafka 4.1.1 in KRaft mode, RabbitMQ 3.10.8), in
// two runs (alone, and within a whole `make faults` of 17 scenarios, 4m43s):
//
//	scenario               load                    lost  duplicates  longest stall per change
//	kafka-rebalance        300/s for 12s, 6 parts  0     144, 187    join 1.1-1.5s, leave 1.6-1.8s
//	kafka-rolling-restart  300/s for 16s, 6 parts  0     198, 262    1.0-1.8s
//	amqp-rebalance         150/s, ordered          0     0, 0        22-65ms
//	amqp-rolling-restart   150/s, ordered          0     0, 0        19-105ms
//
// Each takes 12 to 30s. Kafka's stalls include the 2s handlings a revoke
// drain waits for; a Kafka membership change (leave, or join, with
// cooperative-sticky rebalancing) took 0.6 to 2.6s until the group was
// stable again.
//
// RabbitMQ 3.10's classic single-active-consumer queues sometimes crash
// when the active consumer goes away (rabbitmq-server#5460,
// {badmatch,false} in rabbit_amqqueue_process:attempt_delivery, in the
// broker's log). The queue restarts: acks it had not written come back as
// redeliveries (6 duplicates in the runs that hit it) and publishes in
// flight are nacked (the producer retries them). Nothing was lost.
// It needs both brokers: it is not built with the switchyard_no_kafka or
// switchyard_no_amqp tags.
package main
