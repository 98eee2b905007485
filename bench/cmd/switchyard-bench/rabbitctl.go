package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
)

// rabbitctl runs `rabbitmqctl -q LIST ITEM` for the test node (the
// command SWITCHYARD_TEST_RABBITMQCTL names, else plain rabbitmqctl) and
// returns one value per line; nil if rabbitmqctl is not available.
func rabbitctl(ctx context.Context, list, item string) []string {
	ctl := os.Getenv("SWITCHYARD_TEST_RABBITMQCTL")
	if ctl == "" {
		ctl = "rabbitmqctl"
	}
	out, err := exec.CommandContext(ctx, ctl, "-q", "--no-table-headers", list, item).Output()
	if err != nil {
		return nil
	}
	var r []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			r = append(r, l)
		}
	}
	return r
}
