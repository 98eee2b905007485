package main

import (
	"bytes"
	"context"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestDemoRunsWithoutSetup: `go run ./examples/orders-cqrs` with no
// configuration walks an order through the API and says so.
func TestDemoRunsWithoutSetup(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), nil, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		"place an empty order           POST /orders -> 422",
		"can't ship before payment",
		"can't pay twice",
		`"status":"shipped"`,
		"[v1 orders.order_placed, v2 orders.order_paid, v3 orders.order_shipped]",
		"demo: 10 steps answered as expected",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestBadFlagsAndSettingsAreNamed(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"frobnicate"}, nil, `unexpected arguments ["frobnicate"]`},
		{[]string{"demo", "--addr", ":1"}, nil, "--addr: only for serve"},
		{[]string{"--log-level", "loud"}, nil, `--log-level: "loud"`},
		{[]string{"rebuild"}, nil, "rebuild: the in-memory event store starts empty in every process"},
		{nil, map[string]string{"SWITCHYARD_APP_COMMAND_TIMEOUT": "-1s"}, "app.command_timeout: -1s, want > 0"},
		{nil, map[string]string{"SWITCHYARD_OUTBOX_STORE": "postgres"}, "postgres.dsn: required when outbox.store is postgres"},
	} {
		t.Run(strings.Join(tc.args, " ")+tc.want, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tc.args, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("run %v: %v, want an error saying %q", tc.args, err, tc.want)
			}
		})
	}
}

// lockedBuffer is a bytes.Buffer safe for a writer and a reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestServeUntilInterrupted: serve answers on its address and ends
// cleanly when interrupted.
func TestServeUntilInterrupted(t *testing.T) {
	isolate(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr lockedBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve", "--addr", "127.0.0.1:0"}, &stdout, &stderr) }()
	addr := regexp.MustCompile(`serving on (http://\S+)`)
	var base string
	deadline := time.Now().Add(30 * time.Second)
	for base == "" {
		if m := addr.FindStringSubmatch(stdout.String()); m != nil {
			base = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("no address after 30s; stderr:\n%s", stderr.String())
		} else {
			time.Sleep(10 * time.Millisecond)
		}
	}
	expectRefusal(t, "POST", base+"/orders/nope/ship", "", http.StatusNotFound, "no such order")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve ended with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve still running 30s after the interrupt")
	}
}
