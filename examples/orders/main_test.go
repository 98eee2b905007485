package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// parseSummary reads "summary: k=v k=v ..." into a map.
func parseSummary(t *testing.T, out string) map[string]int64 {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "summary: ") {
		t.Fatalf("stdout = %q, want exactly one summary line", out)
	}
	fields := map[string]int64{}
	for _, kv := range strings.Fields(strings.TrimPrefix(lines[0], "summary: ")) {
		k, v, ok := strings.Cut(kv, "=")
		n, err := strconv.ParseInt(v, 10, 64)
		if !ok || err != nil {
			t.Fatalf("summary field %q is not key=integer", kv)
		}
		fields[k] = n
	}
	return fields
}

func TestRunPrintsDeterministicSummary(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"--orders", "20"}, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, stderr.String())
	}
	got := parseSummary(t, stdout.String())
	// 20 orders: order 3 is invalid, orders 10 and 20 are rejected, the
	// other 17 are reserved and confirmed (order 5 after two failures).
	want := map[string]int64{
		"orders":        20,
		"published":     20 + 19 + 17,                                 // placed, inventory outcomes, notifications
		"handled":       19 + 17 + (20 + 17 + 2) + (20 + 17 + 2 + 17), // inventory, notifications, analytics, order-status
		"retried":       2,
		"dead_lettered": 1,
		"nacked":        0,
		"duplicates":    0,
		"reserved":      17,
		"rejected":      2,
		"notified":      17,
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %d, want %d (summary %q)", k, got[k], w, stdout.String())
		}
	}
	if e := expect(20); e.handled != want["handled"] || e.published != want["published"] {
		t.Errorf("expect(20) = %+v disagrees with the hand count", e)
	}
}

func TestRunIsRepeatable(t *testing.T) {
	var first string
	for i := range 3 {
		var stdout bytes.Buffer
		if err := run(context.Background(), []string{"--orders", "30", "--settle", "20ms"}, &stdout, io.Discard); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = stdout.String()
		} else if stdout.String() != first {
			t.Fatalf("run %d printed %q, run 0 printed %q", i, stdout.String(), first)
		}
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--orders", "0"}, "--orders: 0"},
		{[]string{"--log-level", "loud"}, `--log-level: "loud"`},
		{[]string{"--timeout", "0s"}, "--timeout"},
		{[]string{"extra"}, "unexpected arguments"},
		{[]string{"--orders", "0", "--log-level", "loud"}, "--log-level"}, // every problem at once
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout bytes.Buffer
			err := run(context.Background(), tt.args, &stdout, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
			if stdout.Len() != 0 {
				t.Fatalf("stdout = %q after a flag error", stdout.String())
			}
		})
	}
}

func TestRunInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := run(ctx, []string{"--orders", "5"}, io.Discard, io.Discard)
	if !errors.Is(err, errInterrupted) {
		t.Fatalf("err = %v, want errInterrupted", err)
	}
}

func TestRunTimesOut(t *testing.T) {
	var stdout bytes.Buffer
	// 1ns cannot be enough: the run must fail with a clear message, not hang.
	err := run(context.Background(), []string{"--orders", "5", "--timeout", "1ns"}, &stdout, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("err = %v, want a timeout", err)
	}
}

func TestRunWithMemoryConfigFile(t *testing.T) {
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"--config", "memory.yaml", "--orders", "20"}, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	got := parseSummary(t, stdout.String())
	if got["handled"] != 131 || got["retried"] != 2 || got["dead_lettered"] != 1 {
		t.Fatalf("summary %q, want the same counts as without --config", stdout.String())
	}
}

func TestRunReportsConfigErrors(t *testing.T) {
	err := run(context.Background(), []string{"--config", "testdata/does-not-exist.yaml"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "does-not-exist.yaml") {
		t.Fatalf("err = %v, want it to name the missing file", err)
	}
}
