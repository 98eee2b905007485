// Package dlq is the operator's API over dead-letter topics: list them with
// filters, show one, replay them to the consumer group that gave up on
// them, purge them, and release a key parked behind them. The operator CLI
// (`switchyard dlq`) and the admin API (package admin) are thin layers on
// it; a service can embed it too.
//
// # Where dead letters are
//
// A handler's dead letters go to "<group>.dead_letter" unless its policy
// names another topic. Services provision each dead-letter topic for the
// consumer group [broker.DeadLetterGroup], which keeps them until an
// operator replays or purges them. [Client.List] and [Client.Show] read
// that group without consuming it (the broker must implement
// [broker.Browser]); [Client.Replay] and [Client.Purge] consume it and ack
// a message only once it is dealt with.
//
// # Replay
//
// A replayed dead letter is published to its original topic
// (header sy_dlq_topic) addressed to the consumer group that failed
// (sy_retry_group), so that only that group handles it again; other groups
// ack and skip it. It keeps its id, payload and event headers; the failure
// headers and the retry attempt are removed and sy_replaycount is
// incremented. A dead letter is acked only after its replay was confirmed
// by the broker.
//
// # The memory broker
//
// The in-memory broker lives inside one process: a Client over a memory
// broker sees that process's dead letters only. Operators reach a running
// service's memory broker through its admin API.
package dlq
