package main

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/switchyard-go/switchyard/config"
)

func (a *app) configCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check or show the configuration",
		Long: `Check or show the configuration file the services read, with the environment
overrides and defaults applied as the services apply them.`,
	}
	cmd.AddCommand(a.configCheckCmd(), a.configShowCmd())
	return cmd
}

func (a *app) configCheckCmd() *cobra.Command {
	var connect bool
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Validate the configuration and report every problem",
		Long: `Load and validate the configuration. On success it prints one line naming the
broker; otherwise it lists every problem, each naming the field, the value and
what is allowed, and exits with status 2. With --connect it also opens the
broker, to check addresses and credentials.

Unknown keys and unknown SWITCHYARD_* variables are errors. Two things only
the service itself can check: whether every name under handlers (and every
SWITCHYARD_HANDLERS_* variable) names a registered handler — service.Run
refuses one that does not —, and the app section, which only the service's
own struct (config.LoadApp) describes.`,
		Example: `  switchyard config check --config prod.yaml
  SWITCHYARD_CONFIG=prod.yaml switchyard config check --connect`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			file := a.configPath
			if file == "" {
				file = "(none)"
			}
			cfg, err := config.Load(a.configPath)
			if err != nil {
				problems := splitProblems(err, a.configPath)
				if a.json {
					_ = a.printJSON(map[string]any{"ok": false, "file": file, "problems": problems})
				} else {
					fmt.Fprintf(a.stdout, "config %s: %d problem(s):\n", file, len(problems))
					for _, p := range problems {
						fmt.Fprintf(a.stdout, "  - %s\n", p)
					}
				}
				return silent{code: exitUsage}
			}
			summary := fmt.Sprintf("broker=%s service=%s log=%s/%s handlers=%d file=%s",
				cfg.Broker.Type, cfg.Service.Name, cfg.Log.Level, cfg.Log.Format, len(cfg.Handlers), file)
			if connect {
				b, err := openBroker(cmd.Context(), cfg, a.logger)
				if err != nil {
					return fmt.Errorf("config valid, but opening broker %s failed: %w", cfg.Broker.Type, err)
				}
				caps := b.Capabilities()
				_ = b.Close()
				summary += fmt.Sprintf(" connected=yes delivery=%s ordering=%q durable=%t", caps.Delivery, caps.Ordering, caps.Durable)
			}
			if a.json {
				return a.printJSON(map[string]any{"ok": true, "file": file, "broker": cfg.Broker.Type, "service": cfg.Service.Name, "connected": connect})
			}
			fmt.Fprintln(a.stdout, "config ok:", summary)
			return nil
		},
	}
	cmd.Flags().BoolVar(&connect, "connect", false, "also open the broker to check that it is reachable")
	return cmd
}

// splitProblems turns config.Load's joined error into one line per problem,
// without the "config FILE: " prefix.
func splitProblems(err error, path string) []string {
	msg := strings.TrimPrefix(err.Error(), "config "+path+": ")
	var out []string
	for _, line := range strings.Split(msg, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out
}

func (a *app) configShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show",
		Short: "Print the effective configuration as YAML, secrets redacted",
		Long: `Print the configuration the services would run with (file, then environment
overrides, then defaults) as YAML, or JSON with --json: every default filled in,
and only the selected broker's section. Handler entries show what the file and
the environment give, inherited from defaults; what a handler's code sets is
not known here. Passwords, secrets and tokens are replaced by "REDACTED", and
so is the password part of every URL and DSN (postgres.dsn), in the app
section too.`,
		Example: `  switchyard config show --config prod.yaml
  switchyard --json config show --config prod.yaml`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			out, err := yaml.Marshal(cfg.Effective())
			if err != nil {
				return fmt.Errorf("config show: %w", err)
			}
			var doc yaml.Node
			if err := yaml.Unmarshal(out, &doc); err != nil {
				return fmt.Errorf("config show: %w", err)
			}
			redactNode(&doc, "", "")
			if a.json {
				var tree any
				if err := doc.Decode(&tree); err != nil {
					return fmt.Errorf("config show: %w", err)
				}
				return a.printJSON(tree)
			}
			if out, err = yaml.Marshal(&doc); err != nil {
				return fmt.Errorf("config show: %w", err)
			}
			_, err = a.stdout.Write(out)
			return err
		},
	}
}

// redacted replaces a secret.
const redacted = "REDACTED"

// secretField reports whether a key of this name holds a secret.
func secretField(name string) bool {
	n := strings.ToLower(name)
	return strings.Contains(n, "password") || strings.Contains(n, "secret") || strings.Contains(n, "token")
}

// urlField reports whether a key of this name holds URLs or DSNs.
func urlField(name string) bool {
	n := strings.ToLower(name)
	return strings.HasSuffix(n, "url") || strings.HasSuffix(n, "urls") || strings.HasSuffix(n, "dsn")
}

// kvPassword is the password of a key=value DSN (libpq's form:
// host=db password=secret, or password='it”s secret').
var kvPassword = regexp.MustCompile(`(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.|'')*'|\S+)`)

// redactURL replaces the password of u's userinfo, or of a key=value DSN.
func redactURL(s string) string {
	if !strings.Contains(s, "://") {
		return kvPassword.ReplaceAllString(s, "${1}"+redacted)
	}
	u, err := url.Parse(s)
	if err != nil {
		// Unparseable: hide whatever could be credentials.
		if at := strings.LastIndex(s, "@"); at >= 0 {
			if i := strings.Index(s, "://"); i >= 0 && i < at {
				return s[:i+3] + redacted + s[at:]
			}
			return redacted + s[at:]
		}
		return s
	}
	if u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); !ok {
		return s
	}
	u.User = url.UserPassword(u.User.Username(), redacted)
	return u.String()
}

// showNotes explain the values config show prints empty because they are
// decided per handler or mean "off".
var showNotes = map[string]string{
	"defaults.group":             "default: the handler's name",
	"defaults.dead_letter_topic": "default: <group>.dead_letter",
	"defaults.order_on_retry":    "default: keep for ordered handlers, release otherwise",
	"defaults.prefetch":          "0: the broker's prefetch",
	"http.addr":                  "empty: no operations HTTP server",
	"defaults.retry.max_elapsed": "0s: no limit",
}

// redactNode replaces the secrets of a YAML tree in place, by key name,
// and adds showNotes; key is the mapping key n was read from, path its
// dotted path.
func redactNode(n *yaml.Node, key, path string) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			redactNode(c, key, path)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			p := k
			if path != "" {
				p = path + "." + k
			}
			redactNode(n.Content[i+1], k, p)
		}
	case yaml.ScalarNode:
		switch {
		case n.Value != "" && n.Tag != "!!null" && secretField(key):
			n.SetString(redacted)
		case n.Tag == "!!str" && urlField(key):
			n.Value = redactURL(n.Value)
		}
		if note, ok := showNotes[path]; ok && (n.Value == "" || n.Value == "0") {
			n.LineComment = note
		}
	}
}
