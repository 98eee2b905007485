package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/middleware"
	"github.com/switchyard-go/switchyard/switchyardtest"
)

// until waits for cond like Eventually, describing what is missing with
// what() when it gives up.
func (e *Env) until(cond func() bool, what func() string) {
	e.T.Helper()
	deadline := time.NewTimer(e.Suite.Timeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-e.Probe.Changed():
		case <-tick.C:
		case <-deadline.C:
			e.T.Fatalf("conformance: %s: timed out after %s waiting for %s\n%s", e.BrokerName, e.Suite.Timeout, what(), e.Probe.Journal(40))
		}
	}
}

// waitHandled waits until every consumer handled every input successfully,
// on any instance.
func (e *Env) waitHandled(cs []consumer, sent []Sent) {
	e.T.Helper()
	var missing []string
	e.until(func() bool {
		missing = missing[:0]
		for _, c := range cs {
			for _, s := range sent {
				if len(e.succeeded(c.Handler, s.ID)) == 0 {
					missing = append(missing, fmt.Sprintf("%s: %s (key %s)", c.Handler, s.ID, s.Key))
				}
			}
		}
		return len(missing) == 0
	}, func() string {
		if len(missing) > 5 {
			return fmt.Sprintf("%d deliveries, e.g. %s", len(missing), strings.Join(missing[:5], "; "))
		}
		return "deliveries " + strings.Join(missing, "; ")
	})
}

// expectOnce reports every input a consumer group handled other than once.
func (e *Env) expectOnce(cs []consumer, sent []Sent, why string) {
	e.T.Helper()
	for _, c := range cs {
		for _, s := range sent {
			if got := e.succeeded(c.Handler, s.ID); len(got) != 1 {
				var where []string
				for _, a := range got {
					where = append(where, a.Instance)
				}
				e.T.Errorf("group %q (handler %s) handled input %s (key %s) %d times (on %v), want once: %s",
					c.Group, c.Handler, s.ID, s.Key, len(got), where, why)
			}
		}
	}
}

func publishMany(e *Env, in *Instance, n int, prefix string) []Sent {
	e.T.Helper()
	sent := make([]Sent, n)
	for i := range n {
		sent[i] = e.Publish(in, fmt.Sprintf("%s-%d", prefix, i), i, "")
	}
	return sent
}

// deliveryToEachGroup: every consumer group of the input receives every
// input, once.
func deliveryToEachGroup(t *testing.T, e *Env) {
	in := e.Start(nil)
	cs := e.consumers(in)
	sent := publishMany(e, in, 10, "each")
	e.waitHandled(cs, sent)
	e.Quiet()
	e.expectOnce(cs, sent, "each group receives every message once")
	var groups []string
	for _, c := range cs {
		groups = append(groups, c.Group)
	}
	t.Logf("%d inputs reached each of %d groups: %v", len(sent), len(cs), groups)
}

// competingConsumers: two instances of the service share each group's
// messages; none is handled twice within a group.
func competingConsumers(t *testing.T, e *Env) {
	a, b := e.Start(nil), e.Start(nil)
	e.SettleGroups(a, 2)
	cs := e.consumers(a)
	sent := publishMany(e, a, 30, "compete")
	e.waitHandled(cs, sent)
	e.Quiet()
	e.expectOnce(cs, sent, "consumers of one group compete: each message goes to one of them")
	for _, c := range cs {
		split := map[string]int{a.Name: 0, b.Name: 0}
		for _, at := range e.Probe.Attempts(c.Handler) {
			if at.Done && at.Err == nil {
				split[at.Instance]++
			}
		}
		t.Logf("group %q split between instances: %d / %d", c.Group, split[a.Name], split[b.Name])
	}
}

// orderPerKey: within one instance, each group handles the inputs of a key
// one at a time, in publish order, while keys run concurrently.
func orderPerKey(t *testing.T, e *Env) {
	in := e.Start(nil)
	cs := e.consumers(in)
	const keys, steps = 4, 12
	step := map[string]int{} // id -> input number
	var mu sync.Mutex
	// Uneven work invites reordering.
	e.Probe.Inject(func(ctx context.Context, d *middleware.Delivery) error {
		mu.Lock()
		n := step[d.Envelope.ID]
		mu.Unlock()
		if n%3 == 0 {
			return nil
		}
		timer := time.NewTimer(time.Duration(n%3) * time.Millisecond)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ctx.Done():
		}
		return nil
	})
	order := map[string][]string{}
	var sent []Sent
	for s := range steps {
		for k := range keys {
			key := fmt.Sprintf("order-%d", k)
			id := uuid.Must(uuid.NewV7()).String()
			mu.Lock()
			step[id] = s
			mu.Unlock()
			x := Sent{ID: id, Key: key, Event: e.Suite.Input(key, s)}
			e.publish(in, x, "")
			order[key] = append(order[key], id)
			sent = append(sent, x)
		}
	}
	e.waitHandled(cs, sent)
	e.Quiet()
	for _, c := range cs {
		byKey := map[string][]switchyardtest.Attempt{}
		for _, a := range e.Probe.Attempts(c.Handler) {
			byKey[a.Envelope.Key] = append(byKey[a.Envelope.Key], a)
		}
		for _, key := range slices.Sorted(maps.Keys(order)) {
			as := byKey[key]
			// Handled one at a time: no attempt of the key starts before
			// the one before it ended.
			for i := 1; i < len(as); i++ {
				if as[i].Start.Before(as[i-1].End) {
					t.Errorf("group %q, key %s: input %d started while input %d was still being handled: messages of one key must be handled one at a time",
						c.Group, key, step[as[i].Envelope.ID], step[as[i-1].Envelope.ID])
					break
				}
			}
			// In publish order: by their first attempt.
			var got []string
			seen := map[string]bool{}
			for _, a := range as {
				if !seen[a.Envelope.ID] {
					seen[a.Envelope.ID] = true
					got = append(got, a.Envelope.ID)
				}
			}
			if !slices.Equal(got, order[key]) {
				var gotN []int
				for _, id := range got {
					gotN = append(gotN, step[id])
				}
				t.Errorf("group %q, key %s: handled inputs in the order %v, want 0..%d in publish order", c.Group, key, gotN, steps-1)
			}
		}
	}
}

// retryThenSuccess: a transient failure is retried, and the retry
// succeeds; nothing is dead-lettered and no other group notices.
func retryThenSuccess(t *testing.T, e *Env) {
	in := e.Start(nil)
	cs := e.consumers(in)
	type plan struct {
		c     consumer
		sent  Sent
		fails int
	}
	var plans []plan
	for i, c := range cs {
		p, _ := in.Svc.PolicyOf(c.Handler)
		if p.Retry.MaxAttempts < 2 {
			t.Logf("%s: max_attempts %d, nothing to retry", c.Handler, p.Retry.MaxAttempts)
			continue
		}
		plans = append(plans, plan{c: c, fails: min(2, p.Retry.MaxAttempts-1),
			sent: Sent{ID: uuid.Must(uuid.NewV7()).String(), Key: fmt.Sprintf("retry-%d", i), Event: e.Suite.Input(fmt.Sprintf("retry-%d", i), i)}})
	}
	if len(plans) == 0 {
		t.Skip("no handler of the input retries (max_attempts 1)")
	}
	fails := map[[2]string]int{}
	for _, p := range plans {
		fails[[2]string{p.c.Handler, p.sent.ID}] = p.fails
	}
	e.Probe.Inject(func(_ context.Context, d *middleware.Delivery) error {
		if n := fails[[2]string{d.Handler.Name, d.Envelope.ID}]; d.Attempt <= n {
			return fmt.Errorf("conformance: injected transient failure %d of %d", d.Attempt, n)
		}
		return nil
	})
	var sent []Sent
	for _, p := range plans {
		e.publish(in, p.sent, "")
		sent = append(sent, p.sent)
	}
	e.waitHandled(cs, sent)
	e.Quiet()
	for _, p := range plans {
		var numbers []int
		for _, a := range e.Probe.Attempts(p.c.Handler) {
			if a.Envelope.ID == p.sent.ID {
				numbers = append(numbers, a.Number)
			}
		}
		want := make([]int, p.fails+1)
		for i := range want {
			want[i] = i + 1
		}
		if !slices.Equal(numbers, want) {
			t.Errorf("%s: attempts numbered %v, want %v: %d failures, then the retry that succeeds", p.c.Handler, numbers, want, p.fails)
		}
		c := e.Probe.Counts(p.c.Handler)
		if c.Retried != p.fails || c.DeadLettered != 0 || c.Nacked != 0 {
			t.Errorf("%s: retried=%d dead_lettered=%d nacked=%d, want %d retries and nothing dead-lettered or nacked", p.c.Handler, c.Retried, c.DeadLettered, c.Nacked, p.fails)
		}
	}
	e.expectOnce(cs, sent, "a retry that succeeds is handled once, and other groups are not affected")
}

// permanentDeadLetter: a permanent failure is dead-lettered at once, with
// its metadata, the original payload and headers; other groups handle the
// message as usual. Suite.Poison inputs are refused by the handlers
// themselves.
func permanentDeadLetter(t *testing.T, e *Env) {
	in := e.Start(nil)
	cs := e.consumers(in)
	inspectors := map[string]*Inspector{}
	dlqOf := func(handler string) *Inspector {
		p, ok := in.Svc.PolicyOf(handler)
		if !ok {
			t.Fatalf("conformance: no handler %q (Suite.Poison)", handler)
		}
		topic := strings.TrimPrefix(p.DeadLetterTopic, e.Namespace)
		if inspectors[topic] == nil {
			inspectors[topic] = e.Inspect(topic)
		}
		return inspectors[topic]
	}
	targets := map[[2]string]bool{}
	var sent []Sent
	for i, c := range cs {
		dlqOf(c.Handler)
		s := Sent{ID: uuid.Must(uuid.NewV7()).String(), Key: fmt.Sprintf("poison-%d", i), Event: e.Suite.Input(fmt.Sprintf("poison-%d", i), i)}
		targets[[2]string{c.Handler, s.ID}] = true
		sent = append(sent, s)
	}
	for _, p := range e.Suite.Poison {
		dlqOf(p.Handler)
	}
	e.Probe.Inject(func(_ context.Context, d *middleware.Delivery) error {
		if targets[[2]string{d.Handler.Name, d.Envelope.ID}] {
			return failure.Permanent(errors.New("conformance: injected permanent failure"))
		}
		return nil
	})
	for _, s := range sent {
		e.publish(in, s, "")
	}
	for i, c := range cs {
		s := sent[i]
		m := dlqOf(c.Handler).Wait("dead letter of "+c.Handler, func(m *message.Message) bool {
			return m.Metadata.Get(header.ID) == s.ID && m.Metadata.Get(header.DeadLetterHandler) == c.Handler
		})
		var attempts []switchyardtest.Attempt
		for _, a := range e.Probe.Attempts(c.Handler) {
			if a.Envelope.ID == s.ID {
				attempts = append(attempts, a)
			}
		}
		if len(attempts) != 1 || !attempts[0].Injected {
			t.Errorf("%s: %d attempts at a permanent failure, want one (permanent errors skip retries)", c.Handler, len(attempts))
			continue
		}
		checkDeadLetter(t, c.Handler, m, map[string]string{
			header.DeadLetterReason:   string(failure.ReasonPermanent),
			header.DeadLetterHandler:  c.Handler,
			header.DeadLetterGroup:    c.Group,
			header.DeadLetterTopic:    c.Topic,
			header.DeadLetterAttempts: "1",
			header.Type:               s.Event.EventType(),
			header.Key:                s.Key,
			header.Source:             attempts[0].Envelope.Source,
		}, "injected permanent failure", attempts[0].Payload)
	}
	// Every other group handled the dead-lettered inputs as usual.
	for i := range cs {
		others := slices.Delete(slices.Clone(cs), i, i+1)
		e.waitHandled(others, sent[i:i+1])
	}
	e.Quiet()
	for i, c := range cs {
		for _, o := range slices.Delete(slices.Clone(cs), i, i+1) {
			if n := len(e.succeeded(o.Handler, sent[i].ID)); n != 1 {
				t.Errorf("%s handled input %s, dead-lettered by %s, %d times, want once: a dead letter in one group is none of the others' business",
					o.Handler, sent[i].ID, c.Handler, n)
			}
		}
	}
	for _, p := range e.Suite.Poison {
		key := event.KeyOf(p.Event)
		if key == "" {
			key = "poison"
		}
		s := Sent{ID: uuid.Must(uuid.NewV7()).String(), Key: key, Event: p.Event}
		e.publish(in, s, "")
		m := dlqOf(p.Handler).Wait("dead letter of poison "+p.Name, func(m *message.Message) bool {
			return m.Metadata.Get(header.ID) == s.ID && m.Metadata.Get(header.DeadLetterHandler) == p.Handler
		})
		reason := p.Reason
		if reason == "" {
			reason = failure.ReasonPermanent
		}
		if n := len(e.attemptsAt(p.Handler, s.ID)); n != 1 {
			t.Errorf("poison %s: %s attempted it %d times, want once: permanent errors skip retries", p.Name, p.Handler, n)
		}
		checkDeadLetter(t, "poison "+p.Name, m, map[string]string{
			header.DeadLetterReason:   string(reason),
			header.DeadLetterHandler:  p.Handler,
			header.DeadLetterAttempts: "1",
			header.Type:               p.Event.EventType(),
		}, p.ErrorContains, nil)
	}
}

func checkDeadLetter(t *testing.T, what string, m *message.Message, want map[string]string, errContains string, payload []byte) {
	t.Helper()
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if got := m.Metadata.Get(k); got != want[k] {
			t.Errorf("%s: dead letter %s = %q, want %q", what, k, got, want[k])
		}
	}
	if got := m.Metadata.Get(header.DeadLetterError); !strings.Contains(got, errContains) {
		t.Errorf("%s: dead letter %s = %q, want it to say %q", what, header.DeadLetterError, got, errContains)
	}
	for _, k := range []string{header.DeadLetterFirstFailure, header.DeadLetterLastFailure} {
		if _, err := time.Parse(time.RFC3339Nano, m.Metadata.Get(k)); err != nil {
			t.Errorf("%s: dead letter %s: %v", what, k, err)
		}
	}
	if payload != nil && !bytes.Equal(m.Payload, payload) {
		t.Errorf("%s: dead letter payload %q, want the original %q", what, m.Payload, payload)
	}
}

// idempotentRedelivery: a message delivered again (same id, as a broker
// redelivers after a lost ack) has no further effects: in the end it has
// caused no more events than a twin input delivered once. WithIdempotency
// skips the redelivery; a handler idempotent by itself may run again but
// publishes nothing new.
func idempotentRedelivery(t *testing.T, e *Env) {
	in := e.Start(nil)
	cs := e.consumers(in)
	x := e.Publish(in, "redelivered", 0, "")
	twin := e.Publish(in, "once", 0, "")
	e.waitHandled(cs, []Sent{x, twin})
	e.waitChains(x.ID, twin.ID)
	e.Quiet()
	dups := map[string]int{}
	runs := map[string]int{}
	for _, c := range cs {
		dups[c.Handler] = e.Probe.Counts(c.Handler).Duplicates
		runs[c.Handler] = len(e.attemptsAt(c.Handler, x.ID))
	}
	e.publish(in, x, "") // the same id, key and payload
	e.until(func() bool {
		for _, c := range cs {
			if e.Probe.Counts(c.Handler).Duplicates == dups[c.Handler] && len(e.attemptsAt(c.Handler, x.ID)) == runs[c.Handler] {
				return false
			}
		}
		return true
	}, func() string { return "every group to receive the redelivered message (skipped or handled)" })
	e.Quiet()
	got, want := e.descendants(x.ID), e.descendants(twin.ID)
	for _, typ := range slices.Sorted(maps.Keys(got)) {
		if len(got[typ]) > len(want[typ]) {
			t.Errorf("the input delivered twice caused %d %s, its twin delivered once %d: its effects happened again; use service.WithIdempotency or make the handler idempotent",
				len(got[typ]), typ, len(want[typ]))
		}
	}
	for _, c := range cs {
		switch {
		case e.Probe.Counts(c.Handler).Duplicates > dups[c.Handler]:
			t.Logf("%s: skipped the redelivery as a duplicate", c.Handler)
		default:
			t.Logf("%s: handled the redelivery again", c.Handler)
		}
	}
}

// waitChains waits, when the suite sets MinChainDepth, until the chains
// started by the given inputs (correlated by their ids) reach it.
func (e *Env) waitChains(ids ...string) {
	e.T.Helper()
	want := e.Suite.MinChainDepth
	for _, id := range ids {
		if want > 0 {
			e.until(func() bool { return e.chainDepth(id) >= want },
				func() string { return fmt.Sprintf("chain %q to reach hop %d (Suite.MinChainDepth)", id, want) })
		}
	}
}

// attemptsAt returns every attempt of handler at id.
func (e *Env) attemptsAt(handler, id string) []switchyardtest.Attempt {
	var out []switchyardtest.Attempt
	for _, a := range e.Probe.Attempts(handler) {
		if a.Envelope.ID == id {
			out = append(out, a)
		}
	}
	return out
}

// descendants returns the ids, by event type, of the events delivered to
// the service's handlers that root caused, directly or not.
func (e *Env) descendants(root string) map[string]map[string]bool {
	attempts := e.Probe.Attempts("")
	in := map[string]bool{root: true}
	out := map[string]map[string]bool{}
	for grew := true; grew; {
		grew = false
		for _, a := range attempts {
			id := a.Envelope.ID
			if in[a.Envelope.CausationID] && !in[id] {
				in[id], grew = true, true
				if out[a.Envelope.Type] == nil {
					out[a.Envelope.Type] = map[string]bool{}
				}
				out[a.Envelope.Type][id] = true
			}
		}
	}
	return out
}

// gracefulShutdown: stopping an instance while a handler runs lets the
// handler finish (its context is not cancelled) and acks it; what was not
// started goes to the next instance; nothing is handled twice.
func gracefulShutdown(t *testing.T, e *Env) {
	a := e.Start(nil)
	cs := e.consumers(a)
	held := cs[0]
	release := make(chan struct{})
	e.Probe.Inject(func(ctx context.Context, d *middleware.Delivery) error {
		if d.Handler.Name != held.Handler {
			return nil
		}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("conformance: the handler's context was cancelled by a graceful stop: %w", ctx.Err())
		}
	})
	sent := publishMany(e, a, 12, "shutdown")
	var running []int // Seq of attempts in flight
	e.until(func() bool {
		running = running[:0]
		for _, at := range e.Probe.Attempts(held.Handler) {
			if !at.Done {
				running = append(running, at.Seq)
			}
		}
		return len(running) > 0
	}, func() string { return held.Handler + " in flight" })
	a.BeginStop()
	close(release)
	if err := a.Stop(); err != nil {
		t.Errorf("graceful stop: Run returned %v", err)
	}
	for _, at := range e.Probe.Attempts(held.Handler) {
		if slices.Contains(running, at.Seq) && (!at.Done || at.Err != nil) {
			t.Errorf("%s was handling %s when the stop began; it ended with %v, want it to finish and be acked", held.Handler, at.Envelope.ID, at.Err)
		}
	}
	if n := e.Probe.Counts(held.Handler).Nacked; n != 0 {
		t.Errorf("a graceful stop nacked %d deliveries of %s, want none: in-flight handlers finish", n, held.Handler)
	}
	before := 0
	for _, s := range sent {
		before += len(e.succeeded(held.Handler, s.ID))
	}
	e.Start(nil)
	e.waitHandled(cs, sent)
	e.Quiet()
	e.expectOnce(cs, sent, "a message acked before a graceful stop is not redelivered, one not started is")
	t.Logf("%s: %d of %d handled before the stop (%d in flight at it), the rest after the restart", held.Handler, before, len(sent), len(running))
}

// cloudEventsInterop: what the service publishes reads as a CloudEvents
// binary-mode message, and a producer that writes only CloudEvents
// attributes is understood.
func cloudEventsInterop(t *testing.T, e *Env) {
	in := e.Start(nil)
	cs := e.consumers(in)
	topic := event.TopicOf(e.Suite.Input("sample", 0))
	raw := e.Inspect(topic)
	ours := e.Publish(in, "ce-ours", 0, "")
	m := raw.Wait("our input", func(m *message.Message) bool { return m.Metadata.Get(header.ID) == ours.ID })
	for k, want := range map[string]string{
		header.SpecVersion: header.SpecVersionValue,
		header.Type:        ours.Event.EventType(),
		header.Key:         ours.Key,
	} {
		if got := m.Metadata.Get(k); got != want {
			t.Errorf("our message: %s = %q, want %q", k, got, want)
		}
	}
	for _, k := range []string{header.Source, header.ContentType} {
		if m.Metadata.Get(k) == "" {
			t.Errorf("our message: %s is missing", k)
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, m.Metadata.Get(header.Time)); err != nil {
		t.Errorf("our message: %s: %v", header.Time, err)
	}
	if len(m.Payload) == 0 {
		t.Error("our message has no payload: binary mode carries the event data as the payload")
	}
	if m.Metadata.Get(header.ContentType) == header.ContentTypeJSON {
		var got, want any
		data, _ := json.Marshal(ours.Event)
		_ = json.Unmarshal(data, &want)
		if err := json.Unmarshal(m.Payload, &got); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("our message's payload %s (%v) is not the event's data %s", m.Payload, err, data)
		}
	}

	// Theirs: a producer that sets only CloudEvents attributes.
	id := "foreign-" + uuid.Must(uuid.NewV7()).String()
	foreign := message.NewMessage(id, m.Payload)
	foreign.Metadata = message.Metadata{
		header.ID: id, header.Type: ours.Event.EventType(), header.Source: "/conformance/foreign-producer",
		header.SpecVersion: header.SpecVersionValue, header.ContentType: m.Metadata.Get(header.ContentType),
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.Suite.Timeout)
	defer cancel()
	foreign.SetContext(ctx)
	if err := in.Broker.Publisher().Publish(e.Topic(topic), foreign); err != nil {
		t.Fatal(err)
	}
	e.waitHandled(cs, []Sent{{ID: id, Key: "(none)"}})
	for _, c := range cs {
		env := e.succeeded(c.Handler, id)[0].Envelope
		if env.CorrelationID != id || env.CausationID != "" || env.HopCount != 0 || env.Version != 1 || env.Source != "/conformance/foreign-producer" {
			t.Errorf("%s read the foreign event as %+v, want correlation = its id, no causation, hop 0, version 1 and its source", c.Handler, env)
		}
	}
}

// correlationCausation: every event caused by an input, directly or not,
// carries the input's correlation id, names its cause and counts one more
// hop; a chain started without a correlation id is correlated by the id
// of its first event.
func correlationCausation(t *testing.T, e *Env) {
	in := e.Start(nil)
	cs := e.consumers(in)
	corr := "conformance-chain-" + strings.TrimSuffix(e.Namespace, ".")
	x := e.Publish(in, "chain", 0, corr)
	y := e.Publish(in, "chain-own", 1, "")
	e.waitHandled(cs, []Sent{x, y})
	// Follow-ups may take a while on a broker whose groups are still being
	// assigned: wait for the depth asked for, then settle.
	e.waitChains(corr, y.ID)
	e.Quiet()
	attempts := e.Probe.Attempts("")
	for _, root := range []struct {
		sent Sent
		corr string
	}{{x, corr}, {y, y.ID}} {
		hops := map[string]int{}
		for _, a := range attempts {
			if a.Done && a.Err == nil && a.Envelope.CorrelationID == root.corr {
				if h, ok := hops[a.Envelope.ID]; ok && h != a.Envelope.HopCount {
					t.Errorf("event %s delivered with hop counts %d and %d", a.Envelope.ID, h, a.Envelope.HopCount)
				}
				hops[a.Envelope.ID] = a.Envelope.HopCount
			}
		}
		if h, ok := hops[root.sent.ID]; !ok || h != 0 {
			t.Errorf("input %s not delivered with correlation %q and hop 0 (hop %d, seen %v)", root.sent.ID, root.corr, h, ok)
			continue
		}
		depth := 0
		types := map[int][]string{}
		for _, a := range attempts {
			env := a.Envelope
			if !a.Done || a.Err != nil {
				continue
			}
			if _, caused := hops[env.CausationID]; caused && env.CorrelationID != root.corr {
				t.Errorf("%s %s, caused by %s of the chain %q, carries correlation %q: the correlation id was lost", env.Type, env.ID, env.CausationID, root.corr, env.CorrelationID)
			}
			if env.CorrelationID != root.corr {
				continue
			}
			if env.ID == root.sent.ID {
				if env.CausationID != "" {
					t.Errorf("input %s has causation %q, want none: it starts the chain", env.ID, env.CausationID)
				}
				continue
			}
			cause, ok := hops[env.CausationID]
			switch {
			case !ok:
				t.Errorf("%s %s names causation %q, which is no event of the chain %q", env.Type, env.ID, env.CausationID, root.corr)
			case env.HopCount != cause+1:
				t.Errorf("%s %s has hop count %d, want %d: one more than its cause %s", env.Type, env.ID, env.HopCount, cause+1, env.CausationID)
			}
			depth = max(depth, env.HopCount)
			if !slices.Contains(types[env.HopCount], env.Type) {
				types[env.HopCount] = append(types[env.HopCount], env.Type)
			}
		}
		var chain []string
		for h := 1; h <= depth; h++ {
			chain = append(chain, strconv.Itoa(h)+":"+strings.Join(types[h], ","))
		}
		t.Logf("chain %q: %s, then %v", root.corr, root.sent.Event.EventType(), chain)
		if depth < e.Suite.MinChainDepth {
			t.Errorf("chain %q reached hop %d within the service, want at least %d (Suite.MinChainDepth)", root.corr, depth, e.Suite.MinChainDepth)
		}
	}
}

// chainDepth is the highest hop count of the events of chain corr (a
// correlation id) handled so far.
func (e *Env) chainDepth(corr string) int {
	depth := 0
	for _, a := range e.Probe.Attempts("") {
		if a.Done && a.Err == nil && a.Envelope.CorrelationID == corr {
			depth = max(depth, a.Envelope.HopCount)
		}
	}
	return depth
}
