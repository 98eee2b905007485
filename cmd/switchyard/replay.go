package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/spf13/cobra"

	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/header"
	"github.com/switchyard-go/switchyard/pkg/middleware"
)

// drainFlags are the flags replay and purge share.
type drainFlags struct {
	tf     topicsFlags
	f      filter
	dryRun bool
	yes    bool
	limit  int
	idle   time.Duration
	rate   string
}

func (d *drainFlags) register(cmd *cobra.Command, verb string) {
	fs := cmd.Flags()
	d.tf.register(fs, false)
	d.f.register(fs)
	fs.BoolVar(&d.dryRun, "dry-run", false, "only list what would be "+verb+"; change nothing")
	fs.BoolVarP(&d.yes, "yes", "y", false, "do not ask for confirmation (required when stdin is not a terminal)")
	fs.IntVar(&d.limit, "limit", 0, "stop after `N` messages (0: no limit)")
	fs.DurationVar(&d.idle, "idle", 2*time.Second, "stop when no new message arrived for this `duration`")
	fs.StringVar(&d.rate, "rate", "", "at most `N/s` messages per second, e.g. 50/s (default: no limit)")
}

// parseRate turns "50/s" or "50" into the interval between two messages.
func parseRate(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseFloat(strings.TrimSuffix(s, "/s"), 64)
	if err != nil || n <= 0 {
		return 0, usageErr("--rate: %q, want a positive number per second like 50/s", s)
	}
	return time.Duration(float64(time.Second) / n), nil
}

type drainResult struct {
	Topic       string   `json:"topic"`
	DryRun      bool     `json:"dry_run"`
	Done        []string `json:"ids"`
	Count       int      `json:"count"`
	NotMatching int      `json:"left_not_matching"`
	NotReached  int      `json:"left_not_reached"`
	NoTopic     int      `json:"left_without_original_topic,omitempty"`
}

// drainSpec is one replay or purge run.
type drainSpec struct {
	verb     string // "replayed" or "purged"
	topic    string
	filter   *filter
	limit    int
	idle     time.Duration
	interval time.Duration
	known    map[string]bool // ids seen by a browse beforehand; nil if none
	total    int             // matching messages expected, 0 if unknown
	// act deals with a matching message before it is acked; skip says to
	// leave it in the dead-letter topic.
	act func(ctx context.Context, m *message.Message) (skip bool, err error)
}

// drain consumes topic as the dead-letter group: a matching message is
// handed to act and acked once act returned; any other message is nacked so
// that it stays. It stops after limit messages, once every known message was
// seen, when no new message came for idle, or when ctx is done.
func (a *app) drain(ctx context.Context, b broker.Broker, spec drainSpec) (drainResult, error) {
	res := drainResult{Topic: spec.topic, Done: []string{}}
	sub, err := b.Subscriber(broker.DeadLetterGroup, broker.SubscriberOptions{})
	if err != nil {
		return res, fmt.Errorf("subscribe to %q: %w", spec.topic, err)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		_ = sub.Close()
	}()
	msgs, err := sub.Subscribe(sctx, spec.topic)
	if err != nil {
		return res, fmt.Errorf("subscribe to %q: %w", spec.topic, err)
	}
	bar := newProgress(a.stderr, !a.json && isTerminal(a.stderr), spec.verb, spec.total)
	defer bar.done()
	idle := time.NewTimer(spec.idle)
	defer idle.Stop()
	seen := map[string]bool{}
	seenKnown := 0
	var last time.Time
loop:
	for {
		if spec.limit > 0 && len(res.Done) >= spec.limit {
			break
		}
		if spec.known != nil && seenKnown == len(spec.known) {
			break
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-idle.C:
			break loop
		case m, ok := <-msgs:
			if !ok {
				break loop
			}
			if seen[m.UUID] { // nacked earlier in this run, or dead-lettered again
				m.Nack()
				continue
			}
			seen[m.UUID] = true
			if spec.known[m.UUID] {
				seenKnown++
			}
			if !idle.Stop() {
				select {
				case <-idle.C:
				default:
				}
			}
			idle.Reset(spec.idle)
			if !spec.filter.match(m) {
				res.NotMatching++
				m.Nack()
				continue
			}
			if spec.interval > 0 && !last.IsZero() {
				if err := (middleware.SystemClock{}).Sleep(ctx, time.Until(last.Add(spec.interval))); err != nil {
					m.Nack()
					return res, err
				}
			}
			last = time.Now()
			skip, err := spec.act(ctx, m)
			if err != nil {
				m.Nack()
				return res, err
			}
			if skip {
				res.NoTopic++
				m.Nack()
				continue
			}
			m.Ack()
			res.Done = append(res.Done, m.UUID)
			bar.set(len(res.Done))
		}
	}
	for id := range spec.known {
		if !seen[id] {
			res.NotReached++
		}
	}
	return res, nil
}

// replayMessage builds what replay publishes for dead letter m: the original
// message addressed to the group that failed, with the failure metadata
// removed and the replay counted. ok is false when m does not name its
// original topic.
func replayMessage(m *message.Message) (topic string, out *message.Message, ok bool) {
	topic = m.Metadata.Get(header.DeadLetterTopic)
	if topic == "" {
		return "", nil, false
	}
	out = message.NewMessage(m.UUID, m.Payload)
	for k, v := range m.Metadata {
		if strings.HasPrefix(k, "sy_dlq_") {
			continue
		}
		out.Metadata[k] = v
	}
	delete(out.Metadata, header.Attempt)
	delete(out.Metadata, header.FirstFailure)
	delete(out.Metadata, header.RetryTarget)
	n, _ := strconv.Atoi(m.Metadata.Get(header.ReplayCount))
	out.Metadata[header.ReplayCount] = strconv.Itoa(n + 1)
	if g := m.Metadata.Get(header.DeadLetterGroup); g != "" {
		out.Metadata[header.RetryTarget] = g
	}
	return topic, out, true
}

// preview browses topic for the messages a run would deal with.
func (a *app) preview(ctx context.Context, b broker.Broker, topic string, f *filter, limit int) (known map[string]bool, matching []*message.Message, err error) {
	known = map[string]bool{}
	err = browse(ctx, b, topic, func(m *message.Message) bool {
		known[m.UUID] = true
		if f.match(m) && (limit <= 0 || len(matching) < limit) {
			matching = append(matching, m)
		}
		return true
	})
	return known, matching, err
}

func (a *app) confirm(question string) error {
	if !isTerminal(a.stdin) {
		return usageErr("refusing to go on without --yes: stdin is not a terminal to confirm on")
	}
	fmt.Fprintf(a.stderr, "%s [y/N] ", question)
	line, err := bufio.NewReader(a.stdin).ReadString('\n')
	if errors.Is(err, io.EOF) {
		fmt.Fprintln(a.stderr)
	} else if err != nil {
		return err
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return errors.New("aborted")
}

func (a *app) runDrain(cmd *cobra.Command, d *drainFlags, verb string, act func(context.Context, broker.Broker, *message.Message) (bool, error)) error {
	topics, err := d.tf.resolve(false)
	if err != nil {
		return err
	}
	topic := topics[0]
	if err := d.f.parse(time.Now()); err != nil {
		return err
	}
	interval, err := parseRate(d.rate)
	if err != nil {
		return err
	}
	if d.limit < 0 {
		return usageErr("--limit: %d, want >= 0", d.limit)
	}
	if d.idle <= 0 {
		return usageErr("--idle: %s, want > 0", d.idle)
	}
	ctx := cmd.Context()
	b, err := a.open(ctx)
	if err != nil {
		return err
	}
	defer b.Close()

	known, matching, err := a.preview(ctx, b, topic, &d.f, d.limit)
	if d.dryRun {
		if err != nil {
			return err
		}
		return a.printDryRun(topic, verb, known, matching)
	}
	if errors.Is(err, ErrNoBrowser) {
		known, matching = nil, nil // consume until idle
	} else if err != nil {
		return err
	}
	if known != nil && len(matching) == 0 {
		known = map[string]bool{} // nothing to do: stop at once, ask nothing
	} else if !d.yes {
		what := "every matching dead letter"
		if known != nil {
			what = fmt.Sprintf("%d dead letter(s)", len(matching))
		}
		if err := a.confirm(fmt.Sprintf("%s %s of %q?", map[string]string{"replayed": "Replay", "purged": "Purge"}[verb], what, topic)); err != nil {
			return err
		}
	}
	res, err := a.drain(ctx, b, drainSpec{
		verb: verb, topic: topic, filter: &d.f, limit: d.limit, idle: d.idle, interval: interval,
		known: known, total: len(matching),
		act: func(ctx context.Context, m *message.Message) (bool, error) { return act(ctx, b, m) },
	})
	res.Count = len(res.Done)
	if err != nil {
		return fmt.Errorf("%s %d before stopping: %w", verb, res.Count, err)
	}
	if a.json {
		return a.printJSON(res)
	}
	fmt.Fprintf(a.stdout, "%s %d dead letter(s) of %q; left %d not matching, %d not reached",
		verb, res.Count, topic, res.NotMatching, res.NotReached)
	if res.NoTopic > 0 {
		fmt.Fprintf(a.stdout, ", %d without an original topic (%s)", res.NoTopic, header.DeadLetterTopic)
	}
	fmt.Fprintln(a.stdout)
	if res.NotReached > 0 {
		fmt.Fprintln(a.stderr, "switchyard: some dead letters were not reached: they were in flight elsewhere or waited behind a non-matching message with the same key; run again to retry them")
	}
	return nil
}

func (a *app) printDryRun(topic, verb string, known map[string]bool, matching []*message.Message) error {
	if a.json {
		ids := make([]string, 0, len(matching))
		for _, m := range matching {
			ids = append(ids, m.UUID)
		}
		return a.printJSON(drainResult{Topic: topic, DryRun: true, Done: ids, Count: len(ids), NotMatching: len(known) - len(ids)})
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTYPE\tHANDLER\tREASON\tFAILED AT\tTO TOPIC")
	for _, m := range matching {
		md := m.Metadata
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.UUID, dash(md.Get(header.Type)), dash(md.Get(header.DeadLetterHandler)),
			dash(md.Get(header.DeadLetterReason)), fmtTime(failedAt(m)), dash(md.Get(header.DeadLetterTopic)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "dry run: would have %s %d of %d dead letter(s) of %q; nothing changed\n", verb, len(matching), len(known), topic)
	return nil
}

func (a *app) dlqReplayCmd() *cobra.Command {
	var d drainFlags
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Send dead letters back to the handler that gave up on them",
		Long: `Replay dead letters: consume the dead-letter topic as group "` + broker.DeadLetterGroup + `" and
republish each matching message to its original topic (header ` + header.DeadLetterTopic + `),
addressed to the consumer group that failed (` + header.RetryTarget + `), so only that
group handles it again; other groups ack and skip it. The replayed message
keeps its id, payload, correlation id and event headers; the failure headers
and the retry attempt are removed and ` + header.ReplayCount + ` is incremented.

A dead letter is acked only after its replay was confirmed by the broker.
Messages not matching the filters are handed back (nacked) and stay. The run
stops when every dead letter present at the start was seen, after --limit
replays, or when no new message came for --idle. A replayed message that
fails again is dead-lettered again; it is not replayed twice in one run.`,
		Example: `  switchyard dlq replay --group inventory --dry-run
  switchyard dlq replay --topic inventory.dead_letter --reason retries_exhausted --since 2h --yes
  switchyard dlq replay --topic inventory.dead_letter --type orders.order_placed --rate 20/s --limit 500 --yes`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runDrain(cmd, &d, "replayed", func(ctx context.Context, b broker.Broker, m *message.Message) (bool, error) {
				topic, out, ok := replayMessage(m)
				if !ok {
					return true, nil
				}
				out.SetContext(ctx)
				if err := b.Publisher().Publish(topic, out); err != nil {
					return false, fmt.Errorf("replay %s to %q: %w", m.UUID, topic, err)
				}
				return false, nil
			})
		},
	}
	d.register(cmd, "replayed")
	return cmd
}

func (a *app) dlqPurgeCmd() *cobra.Command {
	var d drainFlags
	cmd := &cobra.Command{
		Use:   "purge",
		Short: "Delete dead letters for good",
		Long: `Purge dead letters: consume the dead-letter topic as group "` + broker.DeadLetterGroup + `" and
ack every matching message, which deletes it for good. Without filters, every
dead letter goes. Asks for confirmation on a terminal unless --yes; refuses
to run without --yes when stdin is not a terminal.`,
		Example: `  switchyard dlq purge --group inventory --dry-run
  switchyard dlq purge --topic inventory.dead_letter --reason decode --yes`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runDrain(cmd, &d, "purged", func(context.Context, broker.Broker, *message.Message) (bool, error) {
				return false, nil
			})
		},
	}
	d.register(cmd, "purged")
	return cmd
}
