package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
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
