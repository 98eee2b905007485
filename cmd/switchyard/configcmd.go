package main

import (
	"fmt"
	"net/url"
	"reflect"
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
broker, to check addresses and credentials.`,
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
overrides, then defaults) as YAML. Passwords, secrets and tokens are replaced
by "REDACTED", and so is the password part of every URL.`,
		Example: `  switchyard config show --config prod.yaml`,
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			red := redact(reflect.ValueOf(cfg), "").Interface()
			if a.json {
				return a.printJSON(red)
			}
			out, err := yaml.Marshal(red)
			if err != nil {
				return fmt.Errorf("config show: %w", err)
			}
			_, err = a.stdout.Write(out)
			return err
		},
	}
}

// redacted replaces a secret.
const redacted = "REDACTED"

// secretField reports whether a string field of this name holds a secret.
func secretField(name string) bool {
	n := strings.ToLower(name)
	return strings.Contains(n, "password") || strings.Contains(n, "secret") || strings.Contains(n, "token")
}

// urlField reports whether a field of this name holds URLs.
func urlField(name string) bool {
	n := strings.ToLower(name)
	return strings.HasSuffix(n, "url") || strings.HasSuffix(n, "urls")
}

// redactURL replaces the password of u's userinfo.
func redactURL(s string) string {
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

// redact returns a deep copy of v with secrets replaced. field is the name
// of the struct field v was read from.
func redact(v reflect.Value, field string) reflect.Value {
	switch v.Kind() {
	case reflect.String:
		out := reflect.New(v.Type()).Elem()
		s := v.String()
		switch {
		case s != "" && secretField(field):
			s = redacted
		case urlField(field):
			s = redactURL(s)
		}
		out.SetString(s)
		return out
	case reflect.Struct:
		out := reflect.New(v.Type()).Elem()
		out.Set(v)
		for i := 0; i < v.NumField(); i++ {
			if f := v.Type().Field(i); f.IsExported() {
				out.Field(i).Set(redact(v.Field(i), f.Name))
			}
		}
		return out
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		out := reflect.New(v.Type().Elem())
		out.Elem().Set(redact(v.Elem(), field))
		return out
	case reflect.Slice:
		if v.IsNil() {
			return v
		}
		out := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := 0; i < v.Len(); i++ {
			out.Index(i).Set(redact(v.Index(i), field))
		}
		return out
	case reflect.Map:
		if v.IsNil() {
			return v
		}
		out := reflect.MakeMapWithSize(v.Type(), v.Len())
		for it := v.MapRange(); it.Next(); {
			out.SetMapIndex(it.Key(), redact(it.Value(), field))
		}
		return out
	}
	return v
}
