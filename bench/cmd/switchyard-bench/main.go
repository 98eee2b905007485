package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"time"
)

// options are the command's flags.
type options struct {
	brokers       []string
	runs          int
	memoryMsgs    int
	amqpMsgs      int
	kafkaMsgs     int
	overrunMsgs   int
	overrunWindow time.Duration
	latencySecs   float64
	latencyRate   float64
	publishers    int
	memPublishers int
	concurrency   int
	prefetch      int
	keys          int
	partitions    int
	writeDocs     string
	childTimeout  time.Duration
	scenarios     []string
	contenders    []string // only these, when not empty
}

func main() {
	child := flag.String("child", "", "internal: run one measurement described by this JSON spec")
	var o options
	brokers := flag.String("brokers", "memory", "comma-separated brokers to measure: memory, amqp, kafka")
	flag.IntVar(&o.runs, "runs", 5, "runs per scenario and contender; the median is reported (ratios: the median of the per-run ratios)")
	flag.IntVar(&o.memoryMsgs, "memory-msgs", 20000, "messages per run on the in-memory broker")
	flag.IntVar(&o.amqpMsgs, "amqp-msgs", 10000, "messages per run on RabbitMQ")
	flag.IntVar(&o.kafkaMsgs, "kafka-msgs", 50000, "messages per run on Kafka")
	flag.IntVar(&o.overrunMsgs, "overrun-msgs", 200000, "messages the overrun scenario tries to publish to a stalled consumer")
	flag.DurationVar(&o.overrunWindow, "overrun-window", 3*time.Second, "how long the overrun scenario publishes")
	flag.Float64Var(&o.latencySecs, "latency-seconds", 3, "target length of a latency run (messages = rate x seconds, at most the broker's msgs)")
	flag.Float64Var(&o.latencyRate, "latency-rate", 0, "fixed rate of the latency scenario in msg/s; 0 = half the slowest contender's e2e throughput")
	flag.IntVar(&o.publishers, "publishers", 1000, "concurrent publishing goroutines, each waiting for its acknowledgement, for Switchyard, Watermill and raw memory (the raw AMQP and Kafka clients pipeline from one goroutine with the same window of 1000 unconfirmed messages)")
	flag.IntVar(&o.memPublishers, "memory-publishers", 64, "concurrent publishing goroutines on the in-memory broker, for all its contenders (see docs/benchmarks.md: more waiters slow Switchyard's memory publisher)")
	flag.IntVar(&o.concurrency, "concurrency", 4, "handler concurrency of the raw worker pools (Switchyard's default)")
	flag.IntVar(&o.prefetch, "prefetch", 100, "RabbitMQ prefetch for all three contenders (Switchyard's default)")
	flag.IntVar(&o.keys, "keys", 256, "distinct message keys (Kafka partition keys)")
	flag.IntVar(&o.partitions, "partitions", 3, "partitions of the Kafka topics (Switchyard's default)")
	flag.StringVar(&o.writeDocs, "write-docs", "", "also write the report as Markdown to this file (e.g. docs/benchmarks.md)")
	flag.DurationVar(&o.childTimeout, "child-timeout", 3*time.Minute, "limit for one measurement")
	scenarios := flag.String("scenarios", "publish,e2e,latency,overrun", "scenarios to run (latency needs e2e)")
	only := flag.String("contenders", "", "run only these contenders (comma-separated, e.g. switchyard-async,raw,raw-headers); empty = all")
	flag.Parse()
	o.scenarios = strings.Split(*scenarios, ",")
	if *only != "" {
		o.contenders = strings.Split(*only, ",")
	}

	if *child != "" {
		os.Exit(runChild(*child))
	}
	o.brokers = strings.Split(*brokers, ",")
	for _, b := range o.brokers {
		if !slices.Contains([]string{"memory", "amqp", "kafka"}, b) {
			fmt.Fprintf(os.Stderr, "switchyard-bench: --brokers: unknown broker %q (want memory, amqp, kafka)\n", b)
			os.Exit(2)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := runParent(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "switchyard-bench:", err)
		os.Exit(1)
	}
}

// runChild measures one spec and prints the result as one JSON line.
func runChild(js string) int {
	var s spec
	if err := json.Unmarshal([]byte(js), &s); err != nil {
		fmt.Fprintln(os.Stderr, "switchyard-bench: -child:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	r, err := measure(ctx, s)
	if err != nil {
		fmt.Fprintln(os.Stderr, "switchyard-bench:", err)
		return 1
	}
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
	// The contender's goroutines (a stalled consumer, blocked publishers)
	// end with the process.
	return 0
}

// runOne runs spec s in a child process of this executable.
func runOne(ctx context.Context, o options, s spec) (result, error) {
	exe, err := os.Executable()
	if err != nil {
		return result{}, err
	}
	js, _ := json.Marshal(s)
	cctx, cancel := context.WithTimeout(ctx, o.childTimeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, exe, "-child", string(js))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return result{}, fmt.Errorf("%s/%s/%s run %d: %w: %s", s.Broker, s.Scenario, s.Contender, s.Run, err, strings.TrimSpace(lastLines(stderr.String(), 5)))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var r result
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		return result{}, fmt.Errorf("%s/%s/%s: bad child output %q: %w", s.Broker, s.Scenario, s.Contender, stdout.String(), err)
	}
	return r, nil
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

var errFailed = errors.New("some measurements failed")
