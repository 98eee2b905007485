package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/switchyard-go/switchyard/adapters/postgres"
	"github.com/switchyard-go/switchyard/config"
)

// outboxCmd is "switchyard outbox": the records the outbox relay parked
// after outbox.max_attempts failed publishes, and their retry.
func (a *app) outboxCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "outbox",
		Short: "List and retry outbox records parked after repeated publish failures",
		Long: `The outbox relay parks a record after outbox.max_attempts failed publishes
(an unroutable topic, a message too large, an ACL denial): it is kept in the
outbox table with its attempts and last error, and the later records of its
key wait behind it. Fix the cause, then retry: the record is published again
with a fresh count of attempts, and its key's waiting records follow in order.

Needs outbox.store: postgres and the postgres section of the configuration.`,
		Example: `  switchyard outbox list --config prod.yaml
  switchyard outbox retry --id 42 --config prod.yaml
  switchyard outbox retry --all --config prod.yaml`,
	}
	cmd.AddCommand(a.outboxListCmd(), a.outboxRetryCmd())
	return cmd
}

// openOutbox opens the configured outbox table on its own pool, closed by
// the returned function.
func (a *app) openOutbox(ctx context.Context) (*postgres.Outbox, func(), error) {
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, nil, err
	}
	if cfg.Outbox.Store != config.StorePostgres {
		return nil, nil, usageErr("outbox.store: %q, want %s: the outbox commands read the postgres outbox table", cfg.Outbox.Store, config.StorePostgres)
	}
	pool, err := cfg.OpenPostgres(ctx)
	if err != nil {
		return nil, nil, err
	}
	ob, err := postgres.NewOutbox(pool, cfg.Outbox.PostgresConfig())
	if err != nil {
		pool.Close()
		return nil, nil, &exitError{code: exitUsage, err: err}
	}
	return ob, pool.Close, nil
}

type parkedJSON struct {
	ID        int64     `json:"id"`
	Topic     string    `json:"topic"`
	Key       string    `json:"key"`
	MessageID string    `json:"message_id"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error"`
	CreatedAt time.Time `json:"created_at"`
	ParkedAt  time.Time `json:"parked_at"`
	Held      int       `json:"held"`
}

func (a *app) outboxListCmd() *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List parked outbox records, oldest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 1 {
				return usageErr("--limit: %d, want >= 1", limit)
			}
			ob, closePool, err := a.openOutbox(cmd.Context())
			if err != nil {
				return err
			}
			defer closePool()
			parked, err := ob.Parked(cmd.Context(), limit)
			if err != nil {
				return err
			}
			if a.json {
				out := make([]parkedJSON, len(parked))
				for i, p := range parked {
					out[i] = parkedJSON(p)
				}
				return a.printJSON(out)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tTOPIC\tKEY\tMESSAGE\tATTEMPTS\tPARKED AT\tHELD BEHIND\tLAST ERROR")
			for _, p := range parked {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%d\t%s\n", p.ID, p.Topic, orDash(p.Key), p.MessageID, p.Attempts,
					p.ParkedAt.UTC().Format(time.RFC3339), p.Held, oneLine(p.LastError))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%d parked record(s) in %s\n", len(parked), ob.Table())
			return nil
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 100, "most records to list")
	return cmd
}

func (a *app) outboxRetryCmd() *cobra.Command {
	var ids []int64
	var all bool
	cmd := &cobra.Command{
		Use:   "retry (--id ID ... | --all)",
		Short: "Unpark outbox records so that the relay publishes them again",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if all == (len(ids) > 0) {
				return usageErr("give --id (one or more) or --all, not both and not neither")
			}
			ob, closePool, err := a.openOutbox(cmd.Context())
			if err != nil {
				return err
			}
			defer closePool()
			var n int
			if all {
				n, err = ob.UnparkAll(cmd.Context())
			} else {
				n, err = ob.Unpark(cmd.Context(), ids...)
			}
			if err != nil {
				return err
			}
			if a.json {
				return a.printJSON(map[string]int{"unparked": n})
			}
			fmt.Fprintf(a.stdout, "%d record(s) unparked in %s; the relay publishes them next\n", n, ob.Table())
			if !all && n < len(ids) {
				fmt.Fprintf(a.stdout, "%d id(s) were not parked (unknown, already published or not parked)\n", len(ids)-n)
			}
			return nil
		},
	}
	cmd.Flags().Int64SliceVar(&ids, "id", nil, "parked record `id` to retry (repeatable, or comma-separated)")
	cmd.Flags().BoolVar(&all, "all", false, "retry every parked record (after an outage)")
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps a table row on one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
