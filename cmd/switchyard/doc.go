// Command switchyard is the operator CLI of Switchyard services: it checks
// configuration, inspects, replays and purges dead letters, publishes and
// follows events, and draws a service's event flow.
//
//	go install github.com/switchyard-go/switchyard/cmd/switchyard@latest
//	switchyard --help
//
// # Configuration
//
// The CLI reads the services' own configuration file (--config FILE, default
// $SWITCHYARD_CONFIG), with the same environment overrides and defaults, so it
// reaches the same broker with the same settings. Without a file it uses the
// in-memory broker, which lives in one process: useful only to try commands.
//
//	switchyard config check --config prod.yaml      # every problem at once, exit 2
//	switchyard config check --connect               # also open the broker
//	switchyard config show                          # effective YAML, secrets REDACTED
//
// # Dead letters
//
// A handler's dead letters go to "<group>.dead_letter" (or its policy's
// topic). Services provision each dead-letter topic for the consumer group
// "switchyard-dlq" (broker.DeadLetterGroup), which keeps them until an
// operator acts. --group G stands for --topic G.dead_letter. The commands
// are a thin layer on package dlq, run on the configured broker, or, with
// --service URL --token T, through a running service's admin API (package
// admin, http.admin in its configuration). With a memory configuration and
// no --service they exit 2: the memory broker lives inside the service
// process, and a broker of the CLI's own would be empty.
//
//	switchyard --service http://127.0.0.1:9090 --token "$T" dlq list --group inventory
//	switchyard --service http://127.0.0.1:9090 --token "$T" dlq release --group inventory --key 42
//	switchyard --service http://127.0.0.1:9090 --token "$T" handler pause|resume inventory.reserve
//	switchyard --service http://127.0.0.1:9090 --token "$T" handler list
//
//	switchyard dlq list --group inventory [--messages]
//	switchyard dlq show --group inventory --id ID
//	switchyard dlq replay --group inventory --reason retries_exhausted --since 2h --dry-run
//	switchyard dlq replay --group inventory --reason retries_exhausted --since 2h --rate 50/s --yes
//	switchyard dlq purge --group inventory --reason decode --yes
//
// list, show and --dry-run read without consuming and need a broker that
// implements broker.Browser; otherwise they fail with a clear error. replay
// and purge consume as "switchyard-dlq" and ack a dead letter only once it is
// dealt with: replay republishes it to its original topic (sy_dlq_topic),
// addressed to the group that failed (sy_retry_group), with the sy_dlq_*
// headers and sy_attempt removed, sy_replaycount incremented and id,
// correlation id and event headers kept, and acks it once the broker
// confirmed the republish. Filters (--type, --reason, --handler, --since,
// --until) select what is replayed or purged; the rest is handed back and
// stays (on Kafka it is moved to the end of the dead-letter topic, see
// dlq.WithMoveSkipped).
// A run stops when every dead letter present at its start was seen, after
// --limit messages, or when nothing new came for --idle (default 2s).
//
// Known limit: on brokers that keep order per key (memory), a
// non-matching dead letter that is handed back holds later dead letters with
// the same key until the run ends; they are reported as "not reached" and
// stay in the dead-letter topic.
//
// replay and purge ask for confirmation on a terminal; without a terminal
// they refuse to run unless --yes is given. A progress bar is drawn on
// stderr when it is a terminal.
//
// # Events
//
//	echo '{"order_id":"42"}' | switchyard publish --topic orders.order_placed --type orders.order_placed --key 42
//	switchyard tail --topic orders.order_placed [--json] [--count N]
//
// publish sends a full CloudEvents binary-mode envelope (new UUIDv7 id,
// correlation id = id, source "switchyard-cli") and returns once the broker
// confirmed it. tail follows a topic as a fresh group
// "switchyard-tail-<random>" that takes nothing from the services.
//
// # Event-flow graph
//
// The CLI cannot see a service's handlers: the service writes its topology
// with graph.WriteJSON(w, svc.Graph()), and the CLI draws it:
//
//	switchyard graph --from topology.json                 # Mermaid flowchart
//	switchyard graph --from topology.json --format dot    # Graphviz
//
// Cycles are drawn in red and listed on stderr.
//
// # Output and exit status
//
// --json prints machine-readable JSON on stdout (one object; tail prints one
// per line). Exit status: 0 success, 1 the command failed, 2 bad usage or
// invalid configuration, 130 interrupted.
package main
