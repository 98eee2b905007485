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
	"github.com/switchyard-go/switchyard/switchyardtest/conformance"
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

// configFile writes the broker settings of e's broker as a file the CLI
// reads, the way an operator points it at the services' own configuration.
func configFile(t *testing.T, e *conformance.Env) string {
	t.Helper()
	cfg := configs[e.BrokerName](t)
	var body string
	switch cfg.Broker.Type {
	case config.BrokerAMQP:
		body = fmt.Sprintf("broker:\n  type: amqp\n  amqp:\n    url: %q\n", cfg.Broker.AMQP.URL)
	case config.BrokerKafka:
		body = fmt.Sprintf("broker:\n  type: kafka\n  kafka:\n    brokers: [%s]\n", strings.Join(cfg.Broker.Kafka.Brokers, ", "))
	default:
		t.Fatalf("no CLI on %s: the in-memory broker lives in one process (the scenario names the brokers it applies to)", e.BrokerName)
	}
	path := filepath.Join(t.TempDir(), "switchyard.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func cli(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(switchyardCLI(t), args...)
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("switchyard %s: %v\nstderr:\n%s", strings.Join(args, " "), err, ee.Stderr)
		}
		t.Fatal(err)
	}
	return out
}

// cliReplaysDeadLetters dead-letters orders through a running service on
// the real broker, lists them with the CLI, replays them once the handler
// is fixed, and sees them handled by the group that failed.
func cliReplaysDeadLetters(t *testing.T, e *conformance.Env) {
	cfgFile := configFile(t, e)
	var broken atomic.Bool
	broken.Store(true)
	var handled sync.Map // order id -> true
	in := e.Start(func(svc *service.Service) error {
		return service.Handle(svc, "inventory.reserve", func(_ context.Context, o handlers.OrderPlaced) error {
			if broken.Load() {
				return failure.Permanent(errors.New("stock service rejected the request"))
			}
			handled.Store(o.OrderID, true)
			return nil
		}, service.Group("inventory"))
	})
	const n = 3
	for i := range n {
		if err := in.Svc.Publish(context.Background(), order(fmt.Sprintf("o-%03d", i))); err != nil {
			t.Fatal(err)
		}
	}
	e.Eventually("three dead letters", func() bool { return e.Probe.Counts("inventory.reserve").DeadLettered == n })
	dlq := e.Topic(service.DeadLetterTopicFor("inventory"))

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
		out := cli(t, "--config", cfgFile, "--json", "dlq", "list", "--topic", dlq)
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
	out := cli(t, "--config", cfgFile, "--json", "dlq", "replay", "--topic", dlq, "--dry-run")
	if err := json.Unmarshal(out, &replay); err != nil || !replay.DryRun || replay.Count != n {
		t.Fatalf("dry run: %+v (%v)\n%s", replay, err, out)
	}
	if got := listed(); got != n {
		t.Fatalf("after a dry run dlq list counts %d, want %d still there", got, n)
	}

	broken.Store(false) // the fix is deployed
	out = cli(t, "--config", cfgFile, "--json", "dlq", "replay", "--topic", dlq, "--yes")
	if err := json.Unmarshal(out, &replay); err != nil || replay.Count != n {
		t.Fatalf("replay: %+v (%v)\n%s", replay, err, out)
	}
	e.Eventually("the replayed orders handled", func() bool {
		count := 0
		handled.Range(func(any, any) bool { count++; return true })
		return count == n
	})
	if got := listed(); got != 0 {
		t.Errorf("after the replay dlq list counts %d, want 0", got)
	}
}
