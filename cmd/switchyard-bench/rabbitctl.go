package main

import (
	"context"
	"os/exec"
	"strings"
)

// rabbitctl runs `rabbitmqctl -q LIST ITEM` on this machine and returns one
// value per line; nil if rabbitmqctl is not available.
func rabbitctl(ctx context.Context, list, item string) []string {
	out, err := exec.CommandContext(ctx, "rabbitmqctl", "-q", "--no-table-headers", list, item).Output()
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
