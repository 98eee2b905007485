package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/switchyard-go/switchyard/pkg/admin"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// handlerCmd groups what the CLI can do to a running service's handlers,
// through its admin API.
func (a *app) handlerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "handler",
		Short: "Pause, resume and list the handlers of a running service (needs --service)",
		Long: `Pause, resume and list the handlers of a running service through its admin
API (--service, --token). A paused handler takes nothing from the broker:
what is published meanwhile waits there, in order, until it is resumed.
Pausing and resuming need a writable admin API (http.admin.write).`,
	}
	cmd.AddCommand(a.handlerListCmd(), a.handlerPauseCmd(true), a.handlerPauseCmd(false))
	return cmd
}

// adminClient is the admin API client --service and --token name.
func (a *app) adminClient() (*admin.Client, error) {
	if a.service == "" {
		return nil, usageErr("--service is required: the handlers live in the running service, reached through its admin API")
	}
	if a.token == "" {
		return nil, usageErr("--service needs --token (or $%s): the admin API requires its bearer token", envToken)
	}
	c, err := admin.NewClient(a.service, a.token, nil)
	if err != nil {
		return nil, usageErr("--service: %v", err)
	}
	return c, nil
}

func (a *app) handlerListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "Each handler's pause switch and circuit-breaker state",
		Example: `  switchyard --service http://127.0.0.1:9090 handler list`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.adminClient()
			if err != nil {
				return err
			}
			fs, err := c.Flow(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(fs)
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "HANDLER\tPAUSED\tBREAKER")
			for _, f := range fs {
				fmt.Fprintf(w, "%s\t%t\t%s\n", f.Handler, f.Paused, breakerText(f))
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func breakerText(f service.FlowState) string {
	if f.Breaker == "" {
		return "-"
	}
	return f.Breaker
}

func (a *app) handlerPauseCmd(pause bool) *cobra.Command {
	use, short, verb := "resume NAME", "Let a paused handler take messages again", "resumed"
	if pause {
		use, short, verb = "pause NAME", "Stop a handler taking messages until it is resumed", "paused"
	}
	return &cobra.Command{
		Use:     use,
		Short:   short,
		Example: "  switchyard --service http://127.0.0.1:9090 handler " + use[:len(use)-5] + " inventory.reserve",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.adminClient()
			if err != nil {
				return err
			}
			set := c.Resume
			if pause {
				set = c.Pause
			}
			if _, err := set(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%s handler %q\n", verb, args[0])
			return nil
		},
	}
}
