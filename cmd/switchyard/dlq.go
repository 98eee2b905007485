package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/dlq"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/service"
)

func (a *app) dlqCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "Inspect, replay and purge dead letters",
		Long: `Inspect, replay and purge dead-letter topics.

A handler's dead letters go to "<group>.dead_letter" unless its policy names
another topic; services provision each dead-letter topic for the consumer
group "` + broker.DeadLetterGroup + `", which keeps them until an operator replays or
purges them. Name topics with --topic, or give consumer groups with --group
to use their default dead-letter topics.

list and show only read (the broker must support browsing); replay and purge
consume the dead-letter group and ack a message only once it is dealt with.

With --service URL (and --token), every command goes through the admin API
of that running service instead of opening the broker: that is the only way
to reach a memory broker, and the only way to list and release parked keys
(dead_letter_order: key), which the service keeps.`,
	}
	cmd.AddCommand(a.dlqListCmd(), a.dlqShowCmd(), a.dlqReplayCmd(), a.dlqPurgeCmd(), a.dlqParkedCmd(), a.dlqReleaseCmd())
	return cmd
}

// topicsFlags selects dead-letter topics.
type topicsFlags struct {
	topics, groups []string
}

func (t *topicsFlags) register(fs *pflag.FlagSet, many bool) {
	if many {
		fs.StringArrayVarP(&t.topics, "topic", "t", nil, "dead-letter `topic` (repeatable)")
		fs.StringArrayVarP(&t.groups, "group", "g", nil, "consumer `group` whose default dead-letter topic \"<group>.dead_letter\" to use (repeatable)")
		return
	}
	fs.StringArrayVarP(&t.topics, "topic", "t", nil, "dead-letter `topic`")
	fs.StringArrayVarP(&t.groups, "group", "g", nil, "consumer `group` whose default dead-letter topic \"<group>.dead_letter\" to use")
}

func (t topicsFlags) resolve(many bool) ([]string, error) {
	out := slices.Clone(t.topics)
	for _, g := range t.groups {
		out = append(out, service.DeadLetterTopicFor(g))
	}
	out = slices.Compact(out)
	switch {
	case len(out) == 0:
		return nil, usageErr("give a dead-letter topic with --topic or a consumer group with --group")
	case !many && len(out) > 1:
		return nil, usageErr("one dead-letter topic at a time, got %q", out)
	}
	return out, nil
}

// filter holds the flags that select dead letters by their failure
// metadata; parse turns them into a [dlq.Filter].
type filter struct {
	types, reasons, handlers []string
	sinceArg, untilArg       string
}

func (f *filter) register(fs *pflag.FlagSet) {
	fs.StringArrayVar(&f.types, "type", nil, "only events of this `type` (repeatable)")
	fs.StringArrayVar(&f.reasons, "reason", nil, "only dead letters with this failure `reason`, e.g. retries_exhausted, decode, permanent (repeatable)")
	fs.StringArrayVar(&f.handlers, "handler", nil, "only dead letters of this `handler` (repeatable)")
	fs.StringVar(&f.sinceArg, "since", "", "only dead-lettered at or after `time`: RFC 3339, or a duration ago like 2h")
	fs.StringVar(&f.untilArg, "until", "", "only dead-lettered before `time`: RFC 3339, or a duration ago like 30m")
}

func parseWhen(flag, s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, usageErr("--%s: %q, want RFC 3339 (2026-01-02T15:04:05Z) or a duration ago (90m)", flag, s)
}

func (f *filter) parse(now time.Time) (dlq.Filter, error) {
	out := dlq.Filter{Types: f.types, Reasons: f.reasons, Handlers: f.handlers}
	var err error
	if out.Since, err = parseWhen("since", f.sinceArg, now); err != nil {
		return out, err
	}
	if out.Until, err = parseWhen("until", f.untilArg, now); err != nil {
		return out, err
	}
	if !out.Since.IsZero() && !out.Until.IsZero() && !out.Until.After(out.Since) {
		return out, usageErr("--until (%s) must be after --since (%s)", out.Until.Format(time.RFC3339), out.Since.Format(time.RFC3339))
	}
	return out, nil
}

// ---- list ----

type listGroup struct {
	Handler string    `json:"handler"`
	Group   string    `json:"group"`
	Reason  string    `json:"reason"`
	Count   int       `json:"count"`
	Oldest  time.Time `json:"oldest"`
	Newest  time.Time `json:"newest"`
}

type listMessage struct {
	ID       string    `json:"id"`
	Type     string    `json:"type"`
	Key      string    `json:"key,omitempty"`
	Handler  string    `json:"handler"`
	Reason   string    `json:"reason"`
	Attempts string    `json:"attempts,omitempty"`
	FailedAt time.Time `json:"failed_at"`
	Replays  string    `json:"replays,omitempty"`
}

type listTopic struct {
	Topic    string        `json:"topic"`
	Count    int           `json:"count"`
	Groups   []listGroup   `json:"by_handler_reason"`
	Messages []listMessage `json:"messages,omitempty"`
}

// listTopicOf is the CLI's view of a summary.
func listTopicOf(s dlq.Summary) listTopic {
	lt := listTopic{Topic: s.Topic, Count: s.Count, Groups: []listGroup{}}
	for _, g := range s.Groups {
		lt.Groups = append(lt.Groups, listGroup(g))
	}
	for _, l := range s.Letters {
		lt.Messages = append(lt.Messages, listMessage{
			ID: l.ID, Type: l.Type, Key: l.Key, Handler: l.Handler, Reason: l.Reason,
			Attempts: l.Headers[header.DeadLetterAttempts], FailedAt: l.FailedAt, Replays: l.Headers[header.ReplayCount],
		})
	}
	return lt
}

func (a *app) dlqListCmd() *cobra.Command {
	var (
		tf       topicsFlags
		f        filter
		messages bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Count dead letters per topic, handler and reason",
		Long: `Count the dead letters kept on each topic, grouped by the handler that gave up
and the failure reason, without consuming them. With --messages, list each
message too (id, type, key, handler, reason, attempts, time of failure).`,
		Example: `  switchyard dlq list --group inventory --group notifications
  switchyard dlq list --topic inventory.dead_letter --messages --reason retries_exhausted
  switchyard dlq list --group inventory --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			topics, err := tf.resolve(true)
			if err != nil {
				return err
			}
			flt, err := f.parse(time.Now())
			if err != nil {
				return err
			}
			ops, done, err := a.deadLetters(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			var out []listTopic
			for _, topic := range topics {
				s, err := ops.List(cmd.Context(), topic, flt, messages)
				if err != nil {
					return err
				}
				out = append(out, listTopicOf(s))
			}
			if a.json {
				return a.printJSON(map[string]any{"topics": out})
			}
			return a.printList(out, messages)
		},
	}
	tf.register(cmd.Flags(), true)
	f.register(cmd.Flags())
	cmd.Flags().BoolVar(&messages, "messages", false, "list every message, not only the counts")
	return cmd
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func (a *app) printList(topics []listTopic, messages bool) error {
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tHANDLER\tGROUP\tREASON\tCOUNT\tOLDEST\tNEWEST")
	total := 0
	for _, t := range topics {
		total += t.Count
		if t.Count == 0 {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t0\t-\t-\n", t.Topic)
		}
		for _, g := range t.Groups {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", t.Topic, dash(g.Handler), dash(g.Group), dash(g.Reason), g.Count, fmtTime(g.Oldest), fmtTime(g.Newest))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "%d dead letter(s) in %d topic(s)\n", total, len(topics))
	if !messages {
		return nil
	}
	for _, t := range topics {
		if len(t.Messages) == 0 {
			continue
		}
		fmt.Fprintf(a.stdout, "\n%s:\n", t.Topic)
		tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tTYPE\tKEY\tHANDLER\tREASON\tATTEMPTS\tFAILED AT\tREPLAYS")
		for _, m := range t.Messages {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, dash(m.Type), dash(m.Key), dash(m.Handler), dash(m.Reason), dash(m.Attempts), fmtTime(m.FailedAt), dash(m.Replays))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ---- show ----

type shownMessage struct {
	Topic   string            `json:"topic"`
	ID      string            `json:"id"`
	Failure map[string]string `json:"failure"`
	Headers map[string]string `json:"headers"`
	Payload json.RawMessage   `json:"payload,omitempty"`
	Text    string            `json:"payload_text,omitempty"`
}

func (a *app) dlqShowCmd() *cobra.Command {
	var (
		tf topicsFlags
		id string
	)
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show one dead letter: failure, headers and payload",
		Long: `Show one dead letter without consuming it: why it failed (reason, error,
handler, group, original topic, attempts, first and last failure), every
header, and the payload (indented when it is JSON). Find ids with
"dlq list --messages".`,
		Example: `  switchyard dlq show --topic inventory.dead_letter --id 0193a1b2-...
  switchyard dlq show --group inventory --id 0193a1b2-... --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			topics, err := tf.resolve(false)
			if err != nil {
				return err
			}
			if id == "" {
				return usageErr("--id is required")
			}
			ops, done, err := a.deadLetters(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			l, err := ops.Show(cmd.Context(), topics[0], id)
			if err != nil {
				return fmt.Errorf("dlq show: %w", err)
			}
			found := l.Message()
			return a.printMessage(topics[0], found)
		},
	}
	tf.register(cmd.Flags(), false)
	cmd.Flags().StringVar(&id, "id", "", "message `id` (required)")
	return cmd
}

// failureKeys are the dead-letter headers, in display order, with labels.
var failureKeys = []struct{ key, label string }{
	{header.DeadLetterReason, "reason"},
	{header.DeadLetterHandler, "handler"},
	{header.DeadLetterGroup, "group"},
	{header.DeadLetterTopic, "original topic"},
	{header.DeadLetterAttempts, "attempts"},
	{header.DeadLetterFirstFailure, "first failure"},
	{header.DeadLetterLastFailure, "last failure"},
	{header.ReplayCount, "replays"},
	{header.DeadLetterError, "error"},
}

func (a *app) printMessage(topic string, m *message.Message) error {
	if a.json {
		sm := shownMessage{Topic: topic, ID: m.UUID, Failure: map[string]string{}, Headers: map[string]string(m.Metadata)}
		for _, fk := range failureKeys {
			if v := m.Metadata.Get(fk.key); v != "" {
				sm.Failure[strings.ReplaceAll(fk.label, " ", "_")] = v
			}
		}
		if json.Valid(m.Payload) {
			sm.Payload = json.RawMessage(m.Payload)
		} else {
			sm.Text = string(m.Payload)
		}
		return a.printJSON(sm)
	}
	w := a.stdout
	fmt.Fprintf(w, "id:       %s\ntopic:    %s\n", m.UUID, topic)
	fmt.Fprintln(w, "failure:")
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	for _, fk := range failureKeys {
		if v := m.Metadata.Get(fk.key); v != "" {
			fmt.Fprintf(tw, "  %s:\t%s\n", fk.label, v)
		}
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "headers:")
	keys := make([]string, 0, len(m.Metadata))
	for k := range m.Metadata {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	tw = tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	for _, k := range keys {
		fmt.Fprintf(tw, "  %s:\t%s\n", k, m.Metadata[k])
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "payload:")
	fmt.Fprintln(w, prettyPayload(m.Payload, "  "))
	return nil
}

// prettyPayload indents JSON, or quotes anything else.
func prettyPayload(p []byte, indent string) string {
	var buf bytes.Buffer
	if json.Valid(p) && json.Indent(&buf, p, indent, "  ") == nil {
		return indent + buf.String()
	}
	return indent + strconv.Quote(string(p))
}

// ---- parked keys ----

func (a *app) dlqParkedCmd() *cobra.Command {
	var group string
	cmd := &cobra.Command{
		Use:   "parked",
		Short: "List the keys parked behind a dead letter (dead_letter_order: key)",
		Long: `List the keys the running service parks: with dead_letter_order: key, once a
message of a key is dead-lettered, later messages of that key follow it
(reason key_parked) until its first dead letter is replayed successfully or
the key is released. Needs --service.`,
		Example: `  switchyard --service http://127.0.0.1:9090 dlq parked --group inventory`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ops, done, err := a.deadLetters(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			keys, err := ops.Parked(cmd.Context(), group)
			if err != nil {
				return err
			}
			if a.json {
				return a.printJSON(map[string]any{"keys": keys})
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "GROUP\tKEY\tBEHIND\tSINCE")
			for _, k := range keys {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.Group, k.Key, k.MessageID, fmtTime(k.Since))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%d parked key(s)\n", len(keys))
			return nil
		},
	}
	cmd.Flags().StringVarP(&group, "group", "g", "", "only keys of this consumer `group`")
	return cmd
}

func (a *app) dlqReleaseCmd() *cobra.Command {
	var group, key string
	cmd := &cobra.Command{
		Use:   "release",
		Short: "Release a parked key: its later messages are handled again",
		Long: `Release a key parked behind its dead letters (dead_letter_order: key): later
messages of the key are handled again instead of following them. The dead
letters themselves stay; replay or purge them separately. Needs --service
and a writable admin API (http.admin.write).`,
		Example: `  switchyard --service http://127.0.0.1:9090 dlq release --group inventory --key order-42`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if group == "" || key == "" {
				return usageErr("--group and --key are required")
			}
			ops, done, err := a.deadLetters(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			if err := ops.Release(cmd.Context(), group, key); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "released key %q of group %q\n", key, group)
			return nil
		},
	}
	cmd.Flags().StringVarP(&group, "group", "g", "", "consumer `group` as the handler declares it (required)")
	cmd.Flags().StringVar(&key, "key", "", "the parked `key` (required)")
	return cmd
}
