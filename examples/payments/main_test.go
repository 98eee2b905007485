package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestRunPrintsSummary(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"--requests", "10"}, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, stderr.String())
	}
	// Requests 5 and 10 are declined; 4 and 8 fail once first.
	want := "summary: requested=10 captured=8 declined=2 captured_cents=8084 retried=2 dead_lettered=0\n"
	if stdout.String() != want {
		t.Errorf("stdout = %q, want %q", stdout.String(), want)
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	err := run(context.Background(), []string{"--requests", "0"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--requests: 0") {
		t.Fatalf("err = %v, want it to name --requests", err)
	}
}
