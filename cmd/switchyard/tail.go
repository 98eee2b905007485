package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/spf13/cobra"

	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/header"
)

type tailLine struct {
	Topic         string            `json:"topic"`
	Time          string            `json:"time,omitempty"`
	Type          string            `json:"type,omitempty"`
	ID            string            `json:"id"`
	Key           string            `json:"key,omitempty"`
	CorrelationID string            `json:"correlation_id,omitempty"`
	Headers       map[string]string `json:"headers"`
	Payload       json.RawMessage   `json:"payload,omitempty"`
	Text          string            `json:"payload_text,omitempty"`
}

func (a *app) tailCmd() *cobra.Command {
	var (
		topic, group string
		count        int
	)
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Follow a topic and print each message",
		Long: `Follow a topic as its own consumer group and print each message as it arrives:
time, type, id, key, correlation id and payload (one JSON object per line
with --json). Ctrl-C stops.

The default group is a new "switchyard-tail-<random>", which sees every
message published after it subscribed and takes none from the services.
Naming an existing group with --group competes with that group's consumers:
the messages tail receives are acked and gone for them.`,
		Example: `  switchyard tail --topic orders.order_placed
  switchyard tail -t orders.order_placed --json | jq .payload
  switchyard tail -t orders.order_placed --count 1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if topic == "" {
				return usageErr("--topic is required")
			}
			if group == "" {
				var r [4]byte
				_, _ = rand.Read(r[:])
				group = "switchyard-tail-" + hex.EncodeToString(r[:])
			}
			ctx := cmd.Context()
			b, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer b.Close()
			sub, err := b.Subscriber(group, broker.SubscriberOptions{Prefetch: 1, Ordered: true})
			if err != nil {
				return fmt.Errorf("tail %q: %w", topic, err)
			}
			defer sub.Close()
			msgs, err := sub.Subscribe(ctx, topic)
			if err != nil {
				return fmt.Errorf("tail %q: %w", topic, err)
			}
			if !a.json {
				fmt.Fprintf(a.stderr, "following %q as group %q; Ctrl-C stops\n", topic, group)
			}
			n := 0
			for {
				select {
				case <-ctx.Done():
					return nil // Ctrl-C is how tail ends
				case m, ok := <-msgs:
					if !ok {
						return nil
					}
					err := a.printTail(topic, m)
					m.Ack()
					if err != nil {
						return err
					}
					if n++; count > 0 && n >= count {
						return nil
					}
				}
			}
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&topic, "topic", "t", "", "`topic` to follow (required)")
	fs.StringVarP(&group, "group", "g", "", "consumer `group` (default: a new switchyard-tail-<random>)")
	fs.IntVarP(&count, "count", "n", 0, "exit after `N` messages (0: follow until Ctrl-C)")
	return cmd
}

func (a *app) printTail(topic string, m *message.Message) error {
	md := m.Metadata
	// The envelope's defaults: a chain's first event carries no correlation
	// header, its correlation id is its own id.
	env, _ := event.ReadEnvelope(m)
	if a.json {
		l := tailLine{
			Topic: topic, Time: md.Get(header.Time), Type: md.Get(header.Type), ID: m.UUID,
			Key: md.Get(header.Key), CorrelationID: env.CorrelationID, Headers: map[string]string(md),
		}
		if json.Valid(m.Payload) {
			l.Payload = json.RawMessage(m.Payload)
		} else {
			l.Text = string(m.Payload)
		}
		return a.printJSON(l)
	}
	when := md.Get(header.Time)
	if t, err := time.Parse(time.RFC3339Nano, when); err == nil {
		when = t.UTC().Format("2006-01-02T15:04:05.000Z")
	}
	_, err := fmt.Fprintf(a.stdout, "%s  %s  id=%s key=%s correlation=%s\n%s\n",
		dash(when), dash(md.Get(header.Type)), m.UUID, dash(md.Get(header.Key)), dash(env.CorrelationID),
		prettyPayload(m.Payload, "    "))
	return err
}
