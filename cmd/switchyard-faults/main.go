//go:build !switchyard_no_kafka && !switchyard_no_amqp

package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-go/switchyard/config"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == consumeCommand {
		os.Exit(consumeMain(os.Args[2:]))
	}
	os.Exit(driverMain(os.Args[1:]))
}

// scenario is one named run on one broker.
type scenario struct {
	name, broker string
	run          func(ctx context.Context, e *env) *result
}

func (s scenario) id() string { return s.name + "/" + s.broker }

func scenarios() []scenario {
	var out []scenario
	for _, k := range []string{config.BrokerAMQP, config.BrokerKafka} {
		out = append(out, scenario{"kill9", k, func(ctx context.Context, e *env) *result { return e.kill9(ctx, k, false) }})
		if exactlyOnceAvailable() {
			out = append(out, scenario{"kill9-eo", k, func(ctx context.Context, e *env) *result { return e.kill9(ctx, k, true) }})
		}
	}
	for _, k := range []string{config.BrokerAMQP, config.BrokerKafka} {
		out = append(out,
			scenario{"group-sigterm", k, func(ctx context.Context, e *env) *result { return e.groupLeave(ctx, k, true) }},
			scenario{"group-sigkill", k, func(ctx context.Context, e *env) *result { return e.groupLeave(ctx, k, false) }})
	}
	for _, k := range []string{config.BrokerMemory, config.BrokerAMQP, config.BrokerKafka} {
		out = append(out, scenario{"badinput", k, func(ctx context.Context, e *env) *result { return e.badInput(ctx, k) }})
	}
	for _, k := range []string{config.BrokerKafka, config.BrokerAMQP} {
		out = append(out,
			scenario{scenarioPrefix(k) + "rebalance", k, func(ctx context.Context, e *env) *result { return e.rebalance(ctx, k) }},
			scenario{scenarioPrefix(k) + "rolling-restart", k, func(ctx context.Context, e *env) *result { return e.rollingRestart(ctx, k) }})
	}
	// Broker restarts last: they disturb every other client of the broker.
	out = append(out,
		scenario{"rabbitmq-restart", config.BrokerAMQP, func(ctx context.Context, e *env) *result { return e.brokerRestart(ctx, config.BrokerAMQP) }},
		scenario{"kafka-restart", config.BrokerKafka, func(ctx context.Context, e *env) *result { return e.brokerRestart(ctx, config.BrokerKafka) }})
	return out
}

func driverMain(args []string) int {
	fs := flag.NewFlagSet("switchyard-faults", flag.ContinueOnError)
	runFilter := fs.String("run", "", "run only scenarios whose name/broker contains one of these comma-separated words (e.g. kill9,badinput/amqp)")
	list := fs.Bool("list", false, "list the scenarios and exit")
	scripts := fs.String("scripts", "scripts", "directory holding rabbitmq.sh and kafka.sh")
	verbose := fs.Bool("v", false, "log progress at info level, including the consumers'")
	declareDL := fs.Bool("declare-dead-letters", true, "declare every dead-letter topic for the operators' group before the bad-input run, as the service does itself on brokers implementing broker.Provisioner")
	timeout := fs.Duration("timeout", 30*time.Minute, "give up on the whole run after this")
	cluster := fs.Bool("cluster", false, "run the cluster scenarios (leader kills on the three-node clusters of scripts/cluster.sh, make faults-cluster) instead of the single-node ones")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var selected []scenario
	all := scenarios()
	if *cluster {
		all = clusterScenarios()
	}
	for _, s := range all {
		if *runFilter == "" || matches(s.id(), *runFilter) {
			selected = append(selected, s)
		}
	}
	if *list {
		for _, s := range selected {
			fmt.Println(s.id())
		}
		return 0
	}
	if len(selected) == 0 {
		fmt.Fprintf(os.Stderr, "switchyard-faults: no scenario matches %q (see -list)\n", *runFilter)
		return 2
	}
	// The driver logs its progress (and the adapters' warnings) at info;
	// -v adds the consumers' logs.
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	adapterLevel := slog.LevelError
	if *verbose {
		adapterLevel = slog.LevelInfo
	}
	e := &env{
		run:      strconv.FormatInt(time.Now().UnixMilli()%(36*36*36*36*36*36), 36),
		scripts:  *scripts,
		logger:   logger,
		adapters: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: adapterLevel})),
		verbose:  *verbose,

		declareDeadLetters: *declareDL,
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	failed, skipped := 0, 0
	start := time.Now()
	for _, s := range selected {
		t0 := time.Now()
		fmt.Fprintf(os.Stderr, "=== %s (run %s)\n", s.id(), e.run)
		r := s.run(ctx, e)
		if r.skipped != "" {
			fmt.Fprintf(os.Stderr, "SKIP scenario=%s broker=%s: %s\n", r.scenario, r.broker, r.skipped)
			skipped++
			continue
		}
		fmt.Println(r.line())
		for _, f := range r.failures {
			fmt.Fprintf(os.Stderr, "FAIL scenario=%s broker=%s: %s\n", r.scenario, r.broker, f)
		}
		if len(r.failures) > 0 {
			failed++
		} else {
			e.cleanup(ctx, s.broker, e.namespace(r.scenario, s.broker))
		}
		fmt.Fprintf(os.Stderr, "--- %s took %s\n", s.id(), time.Since(t0).Round(time.Second))
	}
	fmt.Fprintf(os.Stderr, "switchyard-faults: %d scenarios in %s\n", len(selected), time.Since(start).Round(time.Second))
	// The plain closing line CI runners read: "faults: N passed, N failed".
	fmt.Printf("faults: %d passed, %d failed, %d skipped\n", len(selected)-failed-skipped, failed, skipped)
	if failed > 0 {
		return 1
	}
	return 0
}

func matches(id, filter string) bool {
	for _, w := range strings.Split(filter, ",") {
		if w = strings.TrimSpace(w); w != "" && strings.Contains(id, w) {
			return true
		}
	}
	return false
}
