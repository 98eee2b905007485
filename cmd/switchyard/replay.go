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

	"github.com/spf13/cobra"

	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/dlq"
	"github.com/switchyard-go/switchyard/pkg/header"
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
	fs.DurationVar(&d.idle, "idle", 2*time.Second, "stop when no new message arrived for this `duration` (before the first one, at least 30s when a browse saw some)")
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

// drainResult is what replay and purge print with --json.
type drainResult = dlq.Result

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

// drainFunc is dlq.Operations' Replay or Purge.
type drainFunc func(ctx context.Context, ops dlq.Operations, topic string, o dlq.DrainOptions) (dlq.Result, error)

func (a *app) runDrain(cmd *cobra.Command, d *drainFlags, verb string, act drainFunc) error {
	topics, err := d.tf.resolve(false)
	if err != nil {
		return err
	}
	topic := topics[0]
	flt, err := d.f.parse(time.Now())
	if err != nil {
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
	o := dlq.DrainOptions{Filter: flt, Limit: d.limit, Idle: d.idle}
	if interval > 0 {
		o.Rate = float64(time.Second) / float64(interval)
	}
	ctx := cmd.Context()
	ops, done, err := a.deadLetters(ctx)
	if err != nil {
		return err
	}
	defer done()

	// A dry run first: it is the answer to --dry-run, and otherwise the
	// count the operator confirms.
	preview := o
	preview.DryRun = true
	dry, err := act(ctx, ops, topic, preview)
	if d.dryRun {
		if err != nil {
			return err
		}
		return a.printDryRun(topic, verb, dry)
	}
	browsed := err == nil
	if err != nil && !errors.Is(err, dlq.ErrNoBrowser) {
		return err
	}
	if browsed && dry.Count == 0 {
		dry.DryRun = false
		return a.printDrain(topic, verb, dry) // nothing to do: ask nothing
	}
	if !d.yes {
		what := "every matching dead letter"
		if browsed {
			what = fmt.Sprintf("%d dead letter(s)", dry.Count)
		}
		if err := a.confirm(fmt.Sprintf("%s %s of %q?", map[string]string{"replayed": "Replay", "purged": "Purge"}[verb], what, topic)); err != nil {
			return err
		}
	}
	bar := newProgress(a.stderr, !a.json && isTerminal(a.stderr), verb, dry.Count)
	o.Progress = func(p dlq.Progress) { bar.set(p.Done) }
	res, err := act(ctx, ops, topic, o)
	bar.done()
	if err != nil {
		return fmt.Errorf("%s %d before stopping: %w", verb, len(res.IDs), err)
	}
	return a.printDrain(topic, verb, res)
}

func (a *app) printDrain(topic, verb string, res dlq.Result) error {
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

func (a *app) printDryRun(topic, verb string, res dlq.Result) error {
	if a.json {
		res.Letters = nil
		return a.printJSON(res)
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTYPE\tHANDLER\tREASON\tFAILED AT\tTO TOPIC")
	for _, l := range res.Letters {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", l.ID, dash(l.Type), dash(l.Handler),
			dash(l.Reason), fmtTime(l.FailedAt), dash(l.OriginalTopic))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "dry run: would have %s %d of %d dead letter(s) of %q; nothing changed\n", verb, res.Count, res.Count+res.NotMatching, topic)
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
			return a.runDrain(cmd, &d, "replayed", func(ctx context.Context, ops dlq.Operations, topic string, o dlq.DrainOptions) (dlq.Result, error) {
				return ops.Replay(ctx, topic, o)
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
			return a.runDrain(cmd, &d, "purged", func(ctx context.Context, ops dlq.Operations, topic string, o dlq.DrainOptions) (dlq.Result, error) {
				return ops.Purge(ctx, topic, o)
			})
		},
	}
	d.register(cmd, "purged")
	return cmd
}
