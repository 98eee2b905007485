//go:build !switchyard_no_kafka && !switchyard_no_amqp

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/config"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// Environment variables naming the brokers (written by scripts/up.sh to .work/env).
const (
	envAMQPURL      = "SWITCHYARD_TEST_AMQP_URL"
	envKafkaBrokers = "SWITCHYARD_TEST_KAFKA_BROKERS"
	envPostgresURL  = "SWITCHYARD_TEST_POSTGRES_URL"
)

// errSkip is returned when a broker a scenario needs is not configured
// (never under CI=true: then it is a failure).
var errSkip = errors.New("faults: broker not configured")

// Tick is the event every scenario streams.
type Tick struct {
	Seq int    `json:"seq"`
	Pad string `json:"pad,omitempty"`
	// Keys is how many keys the stream spreads over (Seq modulo Keys); 0
	// means 32.
	Keys int `json:"keys,omitempty"`
}

func (Tick) EventType() string { return "faults.tick" }
func (Tick) EventVersion() int { return 1 }
func (t Tick) EventKey() string {
	keys := t.Keys
	if keys <= 0 {
		keys = 32
	}
	return "k" + strconv.Itoa(t.Seq%keys)
}

// groupName is the consumer group of every scenario's counting handler,
// before the namespace.
const groupName = "counter"

// names are the broker-level names of one scenario run.
type names struct {
	ns, topic, group, dlTopic string
}

func namesFor(ns string) names {
	g := ns + groupName
	return names{ns: ns, topic: ns + Tick{}.EventType(), group: g, dlTopic: service.DeadLetterTopicFor(g)}
}

// need returns the address in env, errSkip when unset, or an error under CI.
func need(env string) (string, error) {
	if v := os.Getenv(env); v != "" {
		return v, nil
	}
	if os.Getenv("CI") == "true" {
		return "", fmt.Errorf("faults: %s is required under CI but unset: run `make faults` (it runs `make up`)", env)
	}
	return "", fmt.Errorf("%w: %s unset (run `make up` and `. .work/env`)", errSkip, env)
}

// brokerConfig returns the configuration of kind ("memory", "amqp",
// "kafka") with the test addresses and namespace ns.
func brokerConfig(kind, ns string) (config.Config, error) {
	c := baseConfig(kind, ns)
	switch kind {
	case config.BrokerAMQP:
		u, err := need(envAMQPURL)
		if err != nil {
			return c, err
		}
		c.Broker.AMQP.URL = u
		c.Broker.AMQP.ConnectionName = "switchyard-faults"
	case config.BrokerKafka:
		u, err := need(envKafkaBrokers)
		if err != nil {
			return c, err
		}
		c.Broker.Kafka.Brokers = strings.Split(u, ",")
		c.Broker.Kafka.ClientID = "switchyard-faults"
	}
	// Not c.Validate(): with broker.type kafka and no broker.kafka fields it
	// reports every zero field (config.Parse does too); the adapter's New
	// applies its defaults and validates.
	return c, nil
}

// baseConfig is the configuration every scenario starts from.
func baseConfig(kind, ns string) config.Config {
	c := config.Defaults()
	c.Broker.Type = kind
	c.Service.Namespace = ns
	c.Service.Name = "switchyard-faults"
	c.Service.ShutdownTimeout = 20 * time.Second
	return c
}

// declareStream declares the scenario's group queue and its dead-letter topic.
func declareStream(ctx context.Context, b broker.Broker, nm names) error {
	if err := declare(ctx, b, nm.topic, nm.group); err != nil {
		return err
	}
	return declare(ctx, b, nm.dlTopic, broker.DeadLetterGroup)
}

// openBroker opens the broker kind for namespace ns.
func openBroker(ctx context.Context, kind, ns string, logger *slog.Logger) (broker.Broker, config.Config, error) {
	return openBrokerWith(ctx, kind, ns, logger, nil)
}

// openBrokerWith is openBroker with tune applied to the configuration first.
func openBrokerWith(ctx context.Context, kind, ns string, logger *slog.Logger, tune func(*config.Config)) (broker.Broker, config.Config, error) {
	c, err := brokerConfig(kind, ns)
	if err != nil {
		return nil, c, err
	}
	if tune != nil {
		tune(&c)
	}
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	b, err := config.Open(octx, c, logger)
	return b, c, err
}

// declare makes sure messages published to topic are kept for group before
// any consumer of the group runs: a RabbitMQ queue must exist or a publish
// is unroutable; Kafka groups start at the earliest offset and memory keeps
// provisioned groups.
func declare(ctx context.Context, b broker.Broker, topic, group string) error {
	p, ok := b.(broker.Provisioner)
	if !ok {
		return fmt.Errorf("faults: broker %s cannot provision %q for %q", b.Name(), topic, group)
	}
	return p.Provision(ctx, topic, group)
}

// declareOrdered declares group's queue for topic as an ordered
// subscription does (see fixtureOptions.ordered), without consuming.
func declareOrdered(b broker.Broker, topic, group string) error {
	sub, err := b.Subscriber(group, broker.SubscriberOptions{Ordered: true})
	if err != nil {
		return err
	}
	defer sub.Close()
	si, ok := sub.(message.SubscribeInitializer)
	if !ok {
		return fmt.Errorf("faults: broker %s cannot declare %q for %q without consuming", b.Name(), topic, group)
	}
	return si.SubscribeInitialize(topic)
}

// countingService is the consumer the in-process scenarios run: a handler of
// Tick in groupName that records every handled message id. Its logs show
// only with -v.
func (e *env) countingService(b broker.Broker, cfg config.Config, logger *slog.Logger, groupName string) (*service.Service, *idSet, error) {
	handled := newIDSet()
	consLog := slog.New(slog.DiscardHandler)
	if e.verbose {
		consLog = logger.With("side", "consumer")
	}
	cons := service.New(b, append(cfg.ServiceOptions(), service.WithLogger(consLog))...)
	err := service.Handle(cons, groupName, func(ctx context.Context, _ Tick) error {
		handled.add(middleware.DeliveryFrom(ctx).Envelope.ID)
		return nil
	}, service.Group(groupName), service.Concurrency(8))
	return cons, handled, err
}

// idSet is a concurrency-safe set of message ids with a count per id.
type idSet struct {
	mu sync.Mutex
	m  map[string]int
}

func newIDSet() *idSet { return &idSet{m: map[string]int{}} }

func (s *idSet) add(id string) {
	s.mu.Lock()
	s.m[id]++
	s.mu.Unlock()
}

func (s *idSet) has(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[id] > 0
}

func (s *idSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// snapshot returns a copy of the counts.
func (s *idSet) snapshot() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.m))
	for k, v := range s.m {
		out[k] = v
	}
	return out
}

// result is one scenario's outcome.
type result struct {
	scenario, broker string
	published        int
	processed        int
	duplicates       int
	deadLettered     int
	lost             int
	failures         []string
	skipped          string
	// figures are appended to the result line (key=value pairs), as the
	// cluster scenarios' failover times.
	figures string
}

func (r *result) failf(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}

func (r *result) line() string {
	line := fmt.Sprintf("scenario=%s broker=%s published=%d processed=%d duplicates=%d dead_lettered=%d lost=%d",
		r.scenario, r.broker, r.published, r.processed, r.duplicates, r.deadLettered, r.lost)
	if r.figures != "" {
		line += " " + r.figures
	}
	return line
}

// tally fills the counts of r from the confirmed ids, the handling counts
// and the dead-lettered ids, and returns the lost ids (at most 10, sorted).
func (r *result) tally(published map[string]int, handled map[string]int, dead map[string]string) []string {
	r.published = len(published)
	r.processed, r.duplicates, r.deadLettered, r.lost = 0, 0, len(dead), 0
	for _, n := range handled {
		if n > 0 {
			r.processed++
			r.duplicates += n - 1
		}
	}
	var lost []string
	for id := range published {
		if handled[id] == 0 && dead[id] == "" {
			r.lost++
			lost = append(lost, id)
		}
	}
	slices.Sort(lost)
	if len(lost) > 10 {
		lost = lost[:10]
	}
	if r.lost > 0 {
		r.failf("lost %d messages, e.g. %v", r.lost, lost)
	}
	return lost
}

// done reports whether every published id is handled or dead-lettered.
func allAccounted(published map[string]int, handled func(string) bool, dead func(string) bool) (missing int) {
	for id := range published {
		if !handled(id) && !dead(id) {
			missing++
		}
	}
	return missing
}

// waitFor polls cond every interval until it returns true or ctx ends.
func waitFor(ctx context.Context, interval time.Duration, cond func() bool) bool {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if cond() {
			return true
		}
		select {
		case <-ctx.Done():
			return cond()
		case <-t.C:
		}
	}
}

// collectDeadLetters consumes the dead-letter topic as the operators'
// group until want distinct ids were read and nothing more arrived for
// idle, or until wait passed. It returns the reason per message id.
func collectDeadLetters(ctx context.Context, b broker.Broker, topic string, want int, wait, idle time.Duration) (map[string]string, error) {
	sub, err := b.Subscriber(broker.DeadLetterGroup, broker.SubscriberOptions{})
	if err != nil {
		return nil, err
	}
	defer sub.Close()
	cctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	msgs, err := sub.Subscribe(cctx, topic)
	if err != nil {
		return nil, fmt.Errorf("faults: subscribe to dead letters %q: %w", topic, err)
	}
	out := map[string]string{}
	first := wait
	if want == 0 {
		first = idle
	}
	timer := time.NewTimer(first)
	defer timer.Stop()
	for {
		select {
		case m, ok := <-msgs:
			if !ok {
				return out, nil
			}
			id := m.Metadata.Get(header.ID)
			if id == "" {
				id = m.UUID
			}
			out[id] = m.Metadata.Get(header.DeadLetterReason)
			m.Ack()
			if len(out) >= want {
				timer.Reset(idle)
			}
		case <-timer.C:
			return out, nil
		case <-cctx.Done():
			return out, nil
		}
	}
}

// msgID is the id of message seq of a scenario run.
func msgID(ns string, seq int) string { return fmt.Sprintf("%sm%06d", ns, seq) }
