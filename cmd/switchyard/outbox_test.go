package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard-go/switchyard/adapters/postgres"
	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/outbox"
)

// refuseAll is a broker publisher that refuses everything.
type refuseAll struct{}

func (refuseAll) Publish(topic string, _ ...*message.Message) error {
	return fmt.Errorf("publish to %q: TOPIC_AUTHORIZATION_FAILED", topic)
}
func (refuseAll) Close() error { return nil }

// On the real PostgreSQL: a record parked by the relay is listed by
// "outbox list" with its attempts, error and what it holds back, and
// "outbox retry --id" makes it (and then its key) due again.
func TestOutboxListAndRetry(t *testing.T) {
	t.Setenv(envConfig, "")
	url := brokertest.PostgresURL(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	table := "cli_outbox_" + tableNonce()
	ob, err := postgres.NewOutbox(pool, postgres.OutboxConfig{Table: table})
	if err != nil {
		t.Fatal(err)
	}
	if err := ob.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	defer pool.Exec(context.Background(), `DROP TABLE `+table)
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []outbox.Message
	for _, id := range []string{"poison", "behind"} {
		m := message.NewMessage(id, []byte(`{}`))
		m.Metadata.Set(header.Key, "order-7")
		msgs = append(msgs, outbox.Message{Topic: "audit", Message: m})
	}
	if err := ob.Add(ctx, tx, msgs...); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	relay := &outbox.Relay{Store: ob, Publisher: refuseAll{}, MaxAttempts: 1}
	if _, err := relay.Flush(ctx); err == nil {
		t.Fatal("Flush through a refusing publisher returned nil")
	}

	file := writeFile(t, "outbox.yaml", "outbox: {store: postgres, table: "+table+"}\npostgres: {dsn: \""+url+"\"}\n")
	r := cli(t, "", "outbox", "list", "--config", file)
	mustOK(t, r)
	for _, w := range []string{"poison", "order-7", "TOPIC_AUTHORIZATION_FAILED", "1 parked record(s)"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("list output misses %q:\n%s", w, r.stdout)
		}
	}
	r = cli(t, "", "--json", "outbox", "list", "--config", file)
	mustOK(t, r)
	var listed []parkedJSON
	if err := json.Unmarshal([]byte(r.stdout), &listed); err != nil || len(listed) != 1 {
		t.Fatalf("--json list: %v\n%s", err, r.stdout)
	}
	p := listed[0]
	if p.MessageID != "poison" || p.Attempts != 1 || p.Held != 1 || p.Topic != "audit" {
		t.Fatalf("listed %+v; want poison, 1 attempt, 1 record held behind it", p)
	}

	if r := cli(t, "", "outbox", "retry", "--config", file); r.code != exitUsage {
		t.Fatalf("retry without --id or --all: exit %d, want %d\n%s", r.code, exitUsage, r.stderr)
	}
	r = cli(t, "", "outbox", "retry", "--id", fmt.Sprint(p.ID), "--config", file)
	mustOK(t, r)
	if !strings.Contains(r.stdout, "1 record(s) unparked") {
		t.Fatalf("retry output:\n%s", r.stdout)
	}
	if l, _ := ob.Parked(ctx, 10); len(l) != 0 {
		t.Fatalf("still parked after retry: %+v", l)
	}
	// Due again: a working publisher now publishes both, in order.
	pub := &collect{}
	if n, err := (&outbox.Relay{Store: ob, Publisher: pub}).Flush(ctx); n != 2 || err != nil {
		t.Fatalf("Flush after retry = %d, %v; want both records", n, err)
	}
	if strings.Join(pub.ids, ",") != "poison,behind" {
		t.Fatalf("published %v, want poison then behind", pub.ids)
	}

	// Without outbox.store: postgres the commands say what is missing.
	noOutbox := writeFile(t, "none.yaml", "postgres: {dsn: \""+url+"\"}\n")
	if r := cli(t, "", "outbox", "list", "--config", noOutbox); r.code != exitUsage || !strings.Contains(r.stderr, "outbox.store") {
		t.Fatalf("list without outbox.store: exit %d\n%s", r.code, r.stderr)
	}
}

type collect struct{ ids []string }

func (c *collect) Publish(_ string, msgs ...*message.Message) error {
	for _, m := range msgs {
		c.ids = append(c.ids, m.UUID)
	}
	return nil
}
func (c *collect) Close() error { return nil }

func tableNonce() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
