package service

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/switchyard-go/switchyard/adapters/memory"
)

type pingEvent struct{}

func (pingEvent) EventType() string { return "test.ping" }
func (pingEvent) EventVersion() int { return 1 }

type pongEvent struct{}

func (pongEvent) EventType() string { return "test.pong" }
func (pongEvent) EventVersion() int { return 1 }

func TestWarnCyclesLogsEachCycle(t *testing.T) {
	b, err := memory.New(memory.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var logs bytes.Buffer
	s := New(b, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	noop := func(context.Context, pingEvent) error { return nil }
	if err := Handle(s, "ping", noop, Publishes(pongEvent{})); err != nil {
		t.Fatal(err)
	}
	if err := Handle(s, "pong", func(context.Context, pongEvent) error { return nil }, Publishes(pingEvent{})); err != nil {
		t.Fatal(err)
	}
	if c := s.Graph().Cycles(); len(c) != 1 {
		t.Fatalf("Graph().Cycles() = %q, want one cycle", c)
	}
	s.warnCycles()
	if got := logs.String(); !strings.Contains(got, "cycle=\"test.ping -> ping -> test.pong -> pong -> test.ping\"") {
		t.Fatalf("warning not logged, logs:\n%s", got)
	}
}

type keyedEvent struct {
	ID string `json:"id"`
}

func (keyedEvent) EventType() string  { return "test.keyed" }
func (keyedEvent) EventVersion() int  { return 2 }
func (e keyedEvent) EventKey() string { return e.ID }
func (keyedEvent) EventTopic() string { return "keyed-topic" }

func TestGraphDescribesEvents(t *testing.T) {
	b, err := memory.New(memory.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s := New(b, WithNamespace("staging."))
	if err := Handle(s, "k", func(context.Context, keyedEvent) error { return nil }, Publishes(pingEvent{})); err != nil {
		t.Fatal(err)
	}
	events := s.Graph().Events()
	if len(events) != 2 {
		t.Fatalf("Events() = %+v, want test.keyed and test.ping", events)
	}
	k, p := events[0], events[1]
	if k.Name != "test.keyed" || k.Version != 2 || k.Topic != "staging.keyed-topic" || !k.Keyed || !strings.Contains(string(k.Schema), `"id"`) {
		t.Errorf("test.keyed described as %+v (schema %s)", k, k.Schema)
	}
	if p.Name != "test.ping" || p.Version != 1 || p.Topic != "staging.test.ping" || p.Keyed || len(p.Schema) == 0 {
		t.Errorf("test.ping described as %+v", p)
	}
}
