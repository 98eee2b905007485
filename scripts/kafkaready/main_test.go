package main

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/internal/brokertest"
)

// runMainEnv makes the test binary run kafkaready's main instead of the
// tests: the tests run the program as scripts/kafka.sh does, exit code and
// output included, and it is built with the tests' flags (-race).
const runMainEnv = "KAFKAREADY_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// kafkaready runs the program with args and returns its exit code, stdout,
// stderr and how long it took. killAfter bounds a run that ignores its own
// -timeout.
func kafkaready(t *testing.T, killAfter time.Duration, args ...string) (int, string, string, time.Duration) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(killAfter, func() { cmd.Process.Kill() })
	err := cmd.Wait()
	took := time.Since(start)
	if !timer.Stop() {
		t.Fatalf("kafkaready %s still running after %v, killed: it ignores its -timeout\nstdout: %s\nstderr: %s",
			strings.Join(args, " "), killAfter, &stdout, &stderr)
	}
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String(), took
}

// Against a working broker the smoke check passes: a consumer group joins,
// reads the record it produced and commits, which is what scripts/kafka.sh
// waits for before it calls Kafka ready.
func TestSmokeJoinsAGroupAndCommitsOnKafka(t *testing.T) {
	brokers := brokertest.KafkaBrokers(t)
	code, stdout, stderr, took := kafkaready(t, 3*time.Minute, "-smoke", "-brokers", brokers, "-timeout", "90s")
	if code != 0 {
		t.Fatalf("kafkaready -smoke on %s: exit %d after %v\nstdout: %s\nstderr: %s", brokers, code, took, stdout, stderr)
	}
	if want := "kafkaready: " + brokers + " answers metadata (1 broker(s)), produce/consume round trip ok"; !strings.Contains(stdout, want) {
		t.Fatalf("kafkaready -smoke on %s printed %q, want %q", brokers, stdout, want)
	}
	t.Logf("smoke check on %s took %v", brokers, took)
}

// Where no Kafka answers, kafkaready fails once its -timeout has passed,
// not sooner and not much later, and says what it waited for and the last
// error: a start script must not hang on it, nor call a broker ready that
// is not.
func TestFailsWithinItsTimeoutWithoutKafka(t *testing.T) {
	const timeout = 3 * time.Second
	cases := []struct {
		name  string
		serve func(l net.Listener) // nil: nothing listens
	}{
		{"nothing listening", nil},
		{"server hanging up", func(l net.Listener) {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}},
		// Connections are queued by the kernel but never read or answered.
		{"server not answering", func(net.Listener) {}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := l.Addr().String()
			if c.serve == nil {
				l.Close()
			} else {
				var wg sync.WaitGroup
				wg.Go(func() { c.serve(l) })
				t.Cleanup(func() { l.Close(); wg.Wait() })
			}
			code, stdout, stderr, took := kafkaready(t, 2*time.Minute, "-smoke", "-brokers", addr, "-timeout", timeout.String())
			if code != 1 {
				t.Fatalf("kafkaready on %s (%s): exit %d, want 1\nstdout: %s\nstderr: %s", addr, c.name, code, stdout, stderr)
			}
			if want := "kafkaready: " + addr + ": not ready: context deadline exceeded (last error: "; !strings.Contains(stderr, want) {
				t.Errorf("kafkaready on %s: stderr %q, want it to contain %q", addr, stderr, want)
			}
			// Generous slack: process start and a last attempt on a loaded 2-core machine.
			if took < timeout || took > timeout+30*time.Second {
				t.Errorf("kafkaready -timeout %v on %s gave up after %v, want from %v to %v", timeout, addr, took, timeout, timeout+30*time.Second)
			}
			t.Logf("%s: gave up after %v: %s", c.name, took, strings.TrimSpace(stderr))
		})
	}
}
