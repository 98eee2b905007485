//go:build !switchyard_no_kafka && !switchyard_no_amqp

package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/switchyard-go/switchyard/config"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// Outcomes a corpus entry expects besides a dead-letter reason.
const (
	wantHandled = "handled"
	// wantRejected: the producer's Publish fails with a clear error and the
	// message is never counted as published.
	wantRejected = "publish_rejected"
)

// bigPayloadSize is the size of the large-payload entry.
const bigPayloadSize = 10 << 20

// badKind is one kind of bad input in the corpus.
type badKind struct {
	name string
	// want is the expected outcome per broker: a sy_dlq_reason, wantHandled
	// or wantRejected.
	want func(kind string) string
	// mutate turns a valid message into the bad one (watermill path).
	mutate func(m *message.Message)
	// amqpHeaders, when set, publishes the entry with amqp091-go directly
	// (RabbitMQ only) with these headers over the valid message's.
	amqpHeaders amqp091.Table
}

func always(want string) func(string) string { return func(string) string { return want } }

// corpus is the bad input. The 10 MB payload is a valid event: on memory
// and RabbitMQ (whose max_message_size default is 128 MB since 3.8) it must
// simply be handled; Kafka's default message.max.bytes (about 1 MB, and
// franz-go's matching producer batch limit) refuses it at publish time, so
// the producer gets a MESSAGE_TOO_LARGE error and nothing is silently lost.
// We keep Kafka's default rather than raise the topic's max.message.bytes,
// because that is what a deployment gets and the adapter offers no knob.
func corpus() []badKind {
	return []badKind{
		{name: "invalid_json", want: always(string(failure.ReasonDecode)),
			mutate: func(m *message.Message) { m.Payload = []byte(`{"seq": 1,`) }},
		{name: "unknown_type", want: always(string(failure.ReasonUnknownType)),
			mutate: func(m *message.Message) { m.Metadata[header.Type] = "faults.nobody_knows_me" }},
		{name: "newer_version", want: always(string(failure.ReasonUnsupportedVersion)),
			mutate: func(m *message.Message) { m.Metadata[header.Version] = "2" }},
		{name: "missing_type", want: always(string(failure.ReasonInvalidEnvelope)),
			mutate: func(m *message.Message) { delete(m.Metadata, header.Type) }},
		{name: "wrong_content_type", want: always(string(failure.ReasonUnsupportedContentType)),
			mutate: func(m *message.Message) {
				m.Metadata[header.ContentType] = "application/xml"
				m.Payload = []byte(`<tick seq="1"/>`)
			}},
		{name: "payload_10mb", want: func(kind string) string {
			if kind == config.BrokerKafka {
				return wantRejected
			}
			return wantHandled
		}, mutate: func(m *message.Message) {
			m.Payload = []byte(`{"seq":1,"pad":"` + strings.Repeat("x", bigPayloadSize) + `"}`)
		}},
		// Non-string AMQP headers, as other AMQP clients send them.
		{name: "amqp_numeric_headers", want: always(wantHandled), amqpHeaders: amqp091.Table{
			header.Version:  int32(1),
			header.HopCount: int64(0),
			"x-table":       amqp091.Table{"a": int32(1), "b": "two"},
			"x-array":       []any{int32(1), "a", true},
			"x-bytes":       []byte{0, 1, 2},
			"x-time":        time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC),
		}},
		{name: "amqp_table_hopcount", want: always(string(failure.ReasonInvalidEnvelope)), amqpHeaders: amqp091.Table{
			header.HopCount: amqp091.Table{"n": int32(1)},
		}},
		{name: "amqp_int_type", want: always(string(failure.ReasonUnknownType)), amqpHeaders: amqp091.Table{
			header.Type: int32(7),
		}},
		{name: "amqp_array_version", want: always(string(failure.ReasonInvalidEnvelope)), amqpHeaders: amqp091.Table{
			header.Version: []any{int32(1), int32(2)},
		}},
	}
}

// badInput mixes the corpus into good traffic and checks every outcome.
func (e *env) badInput(ctx context.Context, kind string) *result {
	const name = "badinput"
	r := &result{scenario: name, broker: kind}
	const good, every, copies = 600, 20, 2 // a bad entry after every 20 good messages
	ns := e.namespace(name, kind)
	nm := namesFor(ns)
	logger := e.logger.With("scenario", name, "broker", kind)
	pubB, cfg, err := openBroker(ctx, kind, ns, e.adapters.With("scenario", name, "broker", kind))
	if err != nil {
		return r.setupFailed(err)
	}
	defer pubB.Close()
	if err := declare(ctx, pubB, nm.topic, nm.group); err != nil {
		return r.setupFailed(err)
	}
	if e.declareDeadLetters {
		if err := declare(ctx, pubB, nm.dlTopic, broker.DeadLetterGroup); err != nil {
			return r.setupFailed(err)
		}
	}
	consB := pubB // the in-memory broker exists only in this process
	if kind != config.BrokerMemory {
		if consB, _, err = openBroker(ctx, kind, ns, e.adapters.With("scenario", name, "broker", kind, "side", "consumer")); err != nil {
			return r.setupFailed(err)
		}
		defer consB.Close()
	}
	cons, handled, err := e.countingService(consB, cfg, logger, groupName)
	if err != nil {
		return r.setupFailed(err)
	}
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	runDone := make(chan error, 1)
	go func() { runDone <- cons.Run(runCtx) }()
	select {
	case <-cons.Ready():
	case err := <-runDone:
		return r.setupFailed(fmt.Errorf("consumer stopped before it was ready: %v", err))
	}

	var amqpCh *amqp091.Channel
	if kind == config.BrokerAMQP {
		conn, ch, err := rawAMQP()
		if err != nil {
			return r.setupFailed(err)
		}
		defer conn.Close()
		amqpCh = ch
	}

	pubSvc := service.New(pubB, append(cfg.ServiceOptions(), service.WithLogger(nil))...)
	published := map[string]int{}
	want := map[string]string{}   // id → expected outcome
	kindOf := map[string]string{} // id → corpus entry
	bad := corpus()
	badIdx := 0
	publish := func(seq int, k *badKind) {
		id := msgID(ns, seq)
		m, topic, err := pubSvc.NewMessage(ctx, Tick{Seq: seq}, service.WithID(id))
		if err != nil {
			r.failf("build message %d: %v", seq, err)
			return
		}
		expect := wantHandled
		if k != nil {
			expect = k.want(kind)
			kindOf[id] = k.name
		}
		switch {
		case k != nil && k.amqpHeaders != nil:
			err = publishRawAMQP(ctx, amqpCh, topic, m, k.amqpHeaders)
		default:
			if k != nil {
				k.mutate(m)
			}
			err = pubB.Publisher().Publish(topic, m)
		}
		if expect == wantRejected {
			if err == nil {
				r.failf("%s: publish succeeded, want a clear error (the broker refuses it)", k.name)
				published[id]++
				want[id] = wantHandled
				return
			}
			if !errors.Is(err, kerr.MessageTooLarge) {
				r.failf("%s: publish failed with %v, want MESSAGE_TOO_LARGE", k.name, err)
			}
			logger.Info("publish refused as expected", "entry", k.name, "err", err)
			return
		}
		if err != nil {
			r.failf("publish %d (%s): %v", seq, kindOf[id], err)
			return
		}
		published[id]++
		want[id] = expect
	}
	seq := 0
	for range copies {
		for i := range bad {
			if bad[i].amqpHeaders != nil && kind != config.BrokerAMQP {
				continue
			}
			for range every {
				publish(seq, nil)
				seq++
			}
			publish(seq, &bad[i])
			seq++
			badIdx++
		}
	}
	for seq < good+badIdx {
		publish(seq, nil)
		seq++
	}

	wantDead := 0
	for _, w := range want {
		if w != wantHandled {
			wantDead++
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	waitFor(wctx, 100*time.Millisecond, func() bool {
		n := 0
		for id, w := range want {
			if w == wantHandled && handled.has(id) {
				n++
			}
		}
		return n == len(want)-wantDead
	})
	cancel()
	dead, err := collectDeadLetters(ctx, pubB, nm.dlTopic, wantDead, time.Minute, time.Second)
	if err != nil {
		r.failf("reading dead letters: %v", err)
	}
	select {
	case err := <-runDone:
		r.failf("the consumer stopped during the corpus: %v", err)
	default:
	}
	stopRun()
	if err := <-runDone; err != nil {
		r.failf("consumer shutdown: %v", err)
	}
	hs := handled.snapshot()
	r.tally(published, hs, dead)
	for id, w := range want {
		entry := kindOf[id]
		if entry == "" {
			entry = "good"
		}
		switch {
		case w == wantHandled && hs[id] == 0 && dead[id] != "":
			r.failf("%s %s: dead-lettered (%s), want handled", entry, id, dead[id])
		case w != wantHandled && hs[id] > 0:
			r.failf("%s %s: handled, want dead-lettered with reason %s", entry, id, w)
		case w != wantHandled && dead[id] != "" && dead[id] != w:
			r.failf("%s %s: dead-lettered with reason %s, want %s", entry, id, dead[id], w)
		}
	}
	logger.Info("scenario done", "bad_published", len(kindOf), "consumer_stats", fmt.Sprintf("%+v", cons.Stats()))
	return r
}

// rawAMQP opens a confirm-mode channel to the test RabbitMQ.
func rawAMQP() (*amqp091.Connection, *amqp091.Channel, error) {
	u, err := need(envAMQPURL)
	if err != nil {
		return nil, nil, err
	}
	conn, err := amqp091.Dial(u)
	if err != nil {
		return nil, nil, fmt.Errorf("faults: amqp dial: %w", err)
	}
	ch, err := conn.Channel()
	if err == nil {
		err = ch.Confirm(false)
	}
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("faults: amqp channel: %w", err)
	}
	return conn, ch, nil
}

// publishRawAMQP publishes m to the topic's exchange with amqp091-go, its
// string metadata as headers overridden by extra, and waits for the confirm.
func publishRawAMQP(ctx context.Context, ch *amqp091.Channel, topic string, m *message.Message, extra amqp091.Table) error {
	h := amqp091.Table{}
	for k, v := range m.Metadata {
		h[k] = v
	}
	for k, v := range extra {
		h[k] = v
	}
	conf, err := ch.PublishWithDeferredConfirmWithContext(ctx, topic, "", true, false, amqp091.Publishing{
		Headers:      h,
		ContentType:  m.Metadata.Get(header.ContentType),
		MessageId:    m.UUID,
		DeliveryMode: amqp091.Persistent,
		Body:         m.Payload,
	})
	if err != nil {
		return fmt.Errorf("faults: amqp publish to %q: %w", topic, err)
	}
	ok, err := conf.WaitContext(ctx)
	if err != nil {
		return fmt.Errorf("faults: amqp confirm on %q: %w", topic, err)
	}
	if !ok {
		return fmt.Errorf("faults: amqp publish to %q: nacked", topic)
	}
	return nil
}
