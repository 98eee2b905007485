// Package e2e holds the cross-broker scenario suite: one table of scenarios,
// run unchanged through the public API and the handlers package on every
// broker (memory, and the real RabbitMQ and Kafka started by `make up`).
// It has no non-test code beyond this comment.
package e2e
