// Package e2e is the cross-broker scenario suite: the conformance kit
// (switchyardtest/conformance) run on the order handlers of package
// handlers, on memory and on the real RabbitMQ and Kafka started by
// `make up`, plus scenarios of its own (a long backoff that must not block
// its key, order per key across a retry in place, the operator CLI
// replaying dead letters). It has no non-test code beyond this comment.
package e2e
