package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/switchyard-go/switchyard/config"
	"github.com/switchyard-go/switchyard/handlers"
	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/service"
)

var (
	cliOnce sync.Once
	cliPath string
	cliErr  error
)

// switchyardCLI builds the operator CLI once per test binary.
func switchyardCLI(t *testing.T) string {
	t.Helper()
	cliOnce.Do(func() {
		dir, err := os.MkdirTemp("", "switchyard-cli")
		if err != nil {
			cliErr = err
			return
		}
		cliPath = filepath.Join(dir, "switchyard")
		out, err := exec.Command("go", "build", "-o", cliPath, "github.com/switchyard-go/switchyard/cmd/switchyard").CombinedOutput()
		if err != nil {
			cliErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if cliErr != nil {
		t.Fatal(cliErr)
	}
	return cliPath
}

// configFile writes the harness's broker settings as a file the CLI reads,
// the way an operator points it at the services' own configuration.
func (h *harness) configFile() string {
	h.t.Helper()
	var body string
	switch h.cfg.Broker.Type {
	case config.BrokerAMQP:
		body = fmt.Sprintf("broker:\n  type: amqp\n  amqp:\n    url: %q\n", h.cfg.Broker.AMQP.URL)
	case config.BrokerKafka:
		body = fmt.Sprintf("broker:\n  type: kafka\n  kafka:\n    brokers: [%s]\n", strings.Join(h.cfg.Broker.Kafka.Brokers, ", "))
	default:
		h.t.Fatalf("no CLI config for %s: the in-memory broker lives in one process", h.kind)
	}
	path := filepath.Join(h.t.TempDir(), "switchyard.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		h.t.Fatal(err)
	}
	return path
}

func (h *harness) cli(args ...string) []byte {
	h.t.Helper()
	cmd := exec.Command(switchyardCLI(h.t), args...)
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			h.t.Fatalf("switchyard %s: %v\nstderr:\n%s", strings.Join(args, " "), err, ee.Stderr)
		}
		h.t.Fatal(err)
	}
	return out
}

// TestCLIReplaysDeadLetters dead-letters orders through a running service on
// the real broker, lists them with the CLI, replays them once the handler is
// fixed, and sees them handled by the group that failed.
func TestCLIReplaysDeadLetters(t *testing.T) {
	for _, k := range kinds()[1:] { // the real brokers
		t.Run(k.name, func(t *testing.T) {
			h := newHarness(t, k)
			cfgFile := h.configFile()
			svc := h.service(h.broker())
			var broken atomic.Bool
			broken.Store(true)
			var handled counter
			must(t, service.Handle(svc, "inventory.reserve", func(_ context.Context, e handlers.OrderPlaced) error {
				if broken.Load() {
					return failure.Permanent(errors.New("stock service rejected the request"))
				}
				handled.add(e.OrderID)
				return nil
			}, service.Group("inventory")))
			h.run(svc)
			const n = 3
			publishOrders(t, svc, n)
			eventually(t, "three dead letters", func() bool { return svc.Stats().DeadLettered == n })
			dlq := h.ns + service.DeadLetterTopicFor("inventory")

			var list struct {
				Topics []struct {
					Topic  string `json:"topic"`
					Count  int    `json:"count"`
					Groups []struct {
						Handler, Reason string
						Count           int
					} `json:"by_handler_reason"`
				} `json:"topics"`
			}
			listed := func() int {
				out := h.cli("--config", cfgFile, "--json", "dlq", "list", "--topic", dlq)
				if err := json.Unmarshal(out, &list); err != nil || len(list.Topics) != 1 {
					t.Fatalf("dlq list --json: %v\n%s", err, out)
				}
				return list.Topics[0].Count
			}
			if got := listed(); got != n {
				t.Fatalf("dlq list counts %d dead letters, want %d", got, n)
			}
			if g := list.Topics[0].Groups; len(g) != 1 || g[0].Handler != "inventory.reserve" || g[0].Reason != "permanent" || g[0].Count != n {
				t.Errorf("dlq list groups = %+v, want %d × inventory.reserve/permanent", g, n)
			}

			var replay struct {
				Count  int  `json:"count"`
				DryRun bool `json:"dry_run"`
			}
			out := h.cli("--config", cfgFile, "--json", "dlq", "replay", "--topic", dlq, "--dry-run")
			if err := json.Unmarshal(out, &replay); err != nil || !replay.DryRun || replay.Count != n {
				t.Fatalf("dry run: %+v (%v)\n%s", replay, err, out)
			}
			if got := listed(); got != n {
				t.Fatalf("after a dry run dlq list counts %d, want %d still there", got, n)
			}

			broken.Store(false) // the fix is deployed
			out = h.cli("--config", cfgFile, "--json", "dlq", "replay", "--topic", dlq, "--yes")
			if err := json.Unmarshal(out, &replay); err != nil || replay.Count != n {
				t.Fatalf("replay: %+v (%v)\n%s", replay, err, out)
			}
			eventually(t, "the replayed orders handled", func() bool { _, d := handled.total(); return d == n })
			if got := listed(); got != 0 {
				t.Errorf("after the replay dlq list counts %d, want 0", got)
			}
		})
	}
}
