package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

var scenarioContenders = map[string][]string{
	"publish": {"switchyard", "switchyard-async", "watermill", "raw"},
	"e2e":     {"switchyard", "watermill", "watermill-4mw", "raw"},
	"latency": {"switchyard", "watermill", "watermill-4mw", "raw"},
	"overrun": {"switchyard", "watermill", "raw"},
}

// fairRaw is, per broker, the raw contender that publishes the same bytes
// as a Switchyard message (body, properties and headers), measured in the
// publish scenario next to the minimal "raw".
var fairRaw = map[string]string{"amqp": "raw-headers", "kafka": "raw-headers"}

// contenders are the contenders of scenario sc on broker b, as far as
// --contenders (only, when not empty) lets them run.
func contenders(b, sc string, only []string) []string {
	cs := scenarioContenders[sc]
	if f := fairRaw[b]; f != "" && sc == "publish" {
		cs = append(slices.Clone(cs), f)
	}
	if len(only) == 0 {
		return cs
	}
	var out []string
	for _, c := range cs {
		if slices.Contains(only, c) {
			out = append(out, c)
		}
	}
	return out
}

type key struct{ broker, scenario, contender string }

// row is the median of one contender's runs of one scenario.
type row struct {
	key
	med  result
	runs []result
	rate float64
	msgs int
	err  error
}

type report struct {
	o          options
	rows       map[key]*row
	order      []key
	start, end time.Time
	loadStart  string
	loadEnd    string
	prefix     string
	amqpURL    string
	kafka      []string
	rabbitVer  string
	kafkaVer   string
}

func runParent(ctx context.Context, o options) error {
	rep := &report{o: o, rows: map[key]*row{}, start: time.Now(), loadStart: loadAvg(),
		prefix: fmt.Sprintf("sybench-%d-", time.Now().Unix())}
	for _, b := range o.brokers {
		switch b {
		case "amqp":
			rep.amqpURL = os.Getenv("SWITCHYARD_TEST_AMQP_URL")
			if rep.amqpURL == "" {
				return fmt.Errorf("--brokers amqp: SWITCHYARD_TEST_AMQP_URL is not set (run `make up` and source .work/env)")
			}
			rep.rabbitVer = rabbitVersion(rep.amqpURL)
		case "kafka":
			if v := os.Getenv("SWITCHYARD_TEST_KAFKA_BROKERS"); v != "" {
				rep.kafka = strings.Split(v, ",")
			} else {
				return fmt.Errorf("--brokers kafka: SWITCHYARD_TEST_KAFKA_BROKERS is not set (run `make up` and source .work/env)")
			}
			rep.kafkaVer = kafkaVersion()
		}
	}
	failed := false
	for _, b := range o.brokers {
		msgs := map[string]int{"memory": o.memoryMsgs, "amqp": o.amqpMsgs, "kafka": o.kafkaMsgs}[b]
		scenarios := []string{"publish", "e2e", "latency"}
		if b == "memory" {
			scenarios = append(scenarios, "overrun")
		}
		for _, sc := range scenarios {
			if !slices.Contains(o.scenarios, sc) {
				continue
			}
			n, rate := msgs, 0.0
			switch sc {
			case "latency":
				// Half the slowest contender's measured maximum, the same
				// offered load for all.
				rate = math.Inf(1)
				for _, c := range contenders(b, "e2e", nil) {
					if r := rep.rows[key{b, "e2e", c}]; r != nil && r.err == nil {
						rate = min(rate, r.med.PerSec/2)
					}
				}
				if o.latencyRate > 0 {
					rate = o.latencyRate
				}
				if math.IsInf(rate, 1) {
					continue
				}
				n = max(100, min(msgs, int(rate*o.latencySecs)))
			case "overrun":
				n = o.overrunMsgs
			}
			for run := 1; run <= o.runs; run++ {
				for _, c := range contenders(b, sc, o.contenders) {
					k := key{b, sc, c}
					r := rep.rows[k]
					if r == nil {
						r = &row{key: k, rate: rate, msgs: n}
						rep.rows[k] = r
						rep.order = append(rep.order, k)
					}
					if r.err != nil {
						continue
					}
					pubs := o.publishers
					if b == "memory" {
						pubs = o.memPublishers
					}
					s := spec{Broker: b, Contender: c, Scenario: sc, Msgs: n, Rate: rate,
						Publishers: pubs, Concurrency: o.concurrency, Prefetch: o.prefetch,
						Keys: o.keys, Partitions: int32(o.partitions), Prefix: rep.prefix, Run: run,
						OverrunWindow: o.overrunWindow, AMQPURL: rep.amqpURL, KafkaBrokers: rep.kafka}
					res, err := runOne(ctx, o, s)
					if err != nil {
						fmt.Fprintln(os.Stderr, "FAILED", err)
						r.err, failed = err, true
						continue
					}
					fmt.Fprintf(os.Stderr, "%-7s %-8s %-14s run %d: %9.0f msg/s p50=%.2fms p99=%.2fms allocs/msg=%.1f cpu=%.1fus/msg rss=%dMiB\n",
						b, sc, c, run, res.PerSec, res.P50ms, res.P99ms, res.AllocsPerMsg, res.CPUusPerMsg, res.PeakRSSKiB/1024)
					r.runs = append(r.runs, res)
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
			}
			for _, c := range contenders(b, sc, o.contenders) {
				if r := rep.rows[key{b, sc, c}]; r != nil && r.err == nil {
					r.med = median(r.runs)
				}
			}
		}
		rep.cleanup(b)
	}
	rep.end, rep.loadEnd = time.Now(), loadAvg()
	rep.writeText(os.Stdout)
	if o.writeDocs != "" {
		f, err := os.Create(o.writeDocs)
		if err != nil {
			return err
		}
		rep.writeDocs(f)
		if err := f.Close(); err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "wrote", o.writeDocs)
	}
	if failed {
		return errFailed
	}
	return nil
}

// medianOf is the median of v (sorted in place).
func medianOf(v []float64) float64 {
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// median takes the median of every metric separately.
func median(rs []result) result {
	pick := func(f func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		return medianOf(v)
	}
	return result{
		Msgs:         rs[0].Msgs,
		Seconds:      pick(func(r result) float64 { return r.Seconds }),
		PerSec:       pick(func(r result) float64 { return r.PerSec }),
		P50ms:        pick(func(r result) float64 { return r.P50ms }),
		P99ms:        pick(func(r result) float64 { return r.P99ms }),
		AllocsPerMsg: pick(func(r result) float64 { return r.AllocsPerMsg }),
		BytesPerMsg:  pick(func(r result) float64 { return r.BytesPerMsg }),
		PeakRSSKiB:   int64(pick(func(r result) float64 { return float64(r.PeakRSSKiB) })),
		CPUusPerMsg:  pick(func(r result) float64 { return r.CPUusPerMsg }),
		Published:    int(pick(func(r result) float64 { return float64(r.Published) })),
	}
}

// ratioLine is one `ratio SCENARIO switchyard/raw=X switchyard/watermill=Y`
// line; on a broker with a fair raw contender (see fairRaw) the publish
// lines also carry `switchyard/raw-headers=Z` between the two.
type ratioLine struct {
	scenario string
	raw, wm  float64 // NaN when not measured
	fairName string  // the fair raw contender, or "" when the line has none
	fair     float64
}

func (l ratioLine) String() string {
	f := func(v float64) string {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return "n/a"
		}
		return fmt.Sprintf("%.2f", v)
	}
	if l.fairName != "" {
		return fmt.Sprintf("ratio %s switchyard/raw=%s switchyard/%s=%s switchyard/watermill=%s", l.scenario, f(l.raw), l.fairName, f(l.fair), f(l.wm))
	}
	return fmt.Sprintf("ratio %s switchyard/raw=%s switchyard/watermill=%s", l.scenario, f(l.raw), f(l.wm))
}

func (rep *report) med(b, sc, c string) (result, bool) {
	r := rep.rows[key{b, sc, c}]
	if r == nil || r.err != nil || len(r.runs) == 0 {
		return result{}, false
	}
	return r.med, true
}

// ratio computes metric(other)/metric(switchyard) when inverse (lower is
// better), else metric(switchyard)/metric(other): above 1 always means
// Switchyard did better.
func (rep *report) ratio(b, sc, other string, metric func(result) float64, inverse bool) float64 {
	return rep.ratioOf(b, sc, "switchyard", other, metric, inverse)
}

// ratioOf is ratio for one of Switchyard's contenders, mine
// ("switchyard" or "switchyard-async"): the median of the per-run ratios.
// The contenders of one run number ran one after the other, so a run's
// ratio compares them under the same conditions of the shared machine,
// and the median of those ratios is not moved by the machine getting
// faster or slower between runs, as a ratio of two medians is (each
// median may come from another run). A row with a failed run reports no
// ratio (med is not ok), so both rows have a run for every round.
func (rep *report) ratioOf(b, sc, mine, other string, metric func(result) float64, inverse bool) float64 {
	_, ok1 := rep.med(b, sc, mine)
	_, ok2 := rep.med(b, sc, other)
	if !ok1 || !ok2 {
		return math.NaN()
	}
	ys, xs := rep.rows[key{b, sc, mine}].runs, rep.rows[key{b, sc, other}].runs
	per := make([]float64, min(len(ys), len(xs)))
	for i := range per {
		if inverse {
			per[i] = metric(xs[i]) / metric(ys[i])
		} else {
			per[i] = metric(ys[i]) / metric(xs[i])
		}
	}
	return medianOf(per)
}

func (rep *report) ratios() []ratioLine {
	tput := func(r result) float64 { return r.PerSec }
	p50 := func(r result) float64 { return r.P50ms }
	p99 := func(r result) float64 { return r.P99ms }
	allocs := func(r result) float64 { return r.AllocsPerMsg }
	rss := func(r result) float64 { return float64(r.PeakRSSKiB) }
	var out []ratioLine
	for _, b := range rep.o.brokers {
		pub := ratioLine{scenario: b + ".publish", raw: rep.ratio(b, "publish", "raw", tput, false), wm: rep.ratio(b, "publish", "watermill", tput, false)}
		async := ratioLine{scenario: b + ".publish-async", raw: rep.ratioOf(b, "publish", "switchyard-async", "raw", tput, false), wm: rep.ratioOf(b, "publish", "switchyard-async", "watermill", tput, false)}
		if f := fairRaw[b]; f != "" {
			pub.fairName, pub.fair = f, rep.ratio(b, "publish", f, tput, false)
			async.fairName, async.fair = f, rep.ratioOf(b, "publish", "switchyard-async", f, tput, false)
		}
		out = append(out, pub, async,
			ratioLine{scenario: b + ".e2e", raw: rep.ratio(b, "e2e", "raw", tput, false), wm: rep.ratio(b, "e2e", "watermill", tput, false)},
			ratioLine{scenario: b + ".e2e-4mw", raw: rep.ratio(b, "e2e", "raw", tput, false), wm: rep.ratio(b, "e2e", "watermill-4mw", tput, false)},
			ratioLine{scenario: b + ".latency-p50", raw: rep.ratio(b, "latency", "raw", p50, true), wm: rep.ratio(b, "latency", "watermill", p50, true)},
			ratioLine{scenario: b + ".latency-p99", raw: rep.ratio(b, "latency", "raw", p99, true), wm: rep.ratio(b, "latency", "watermill", p99, true)},
			ratioLine{scenario: b + ".e2e-allocs", raw: rep.ratio(b, "e2e", "raw", allocs, true), wm: rep.ratio(b, "e2e", "watermill", allocs, true)},
		)
		if b == "memory" {
			out = append(out, ratioLine{scenario: b + ".overrun-rss", raw: rep.ratio(b, "overrun", "raw", rss, true), wm: rep.ratio(b, "overrun", "watermill", rss, true)})
		}
	}
	return out
}

func (rep *report) writeTable(w io.Writer, md bool) {
	head := []string{"broker", "scenario", "contender", "msgs", "msg/s", "p50 ms", "p99 ms", "allocs/msg", "KiB/msg", "CPU µs/msg", "peak RSS MiB", "runs"}
	if md {
		fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(head, " | "), strings.Repeat("---|", len(head)))
	} else {
		fmt.Fprintf(w, "%-7s %-8s %-14s %7s %9s %8s %8s %10s %8s %10s %12s %4s\n", toAny(head)...)
	}
	for _, k := range rep.order {
		r := rep.rows[k]
		var cells []any
		if r.err != nil || len(r.runs) == 0 {
			cells = []any{k.broker, k.scenario, k.contender, r.msgs, "FAILED", "", "", "", "", "", "", len(r.runs)}
		} else {
			m := r.med
			lat := func(v float64) string {
				if k.scenario != "latency" {
					return "-"
				}
				return fmt.Sprintf("%.2f", v)
			}
			msgs := fmt.Sprint(r.msgs)
			if k.scenario == "overrun" {
				msgs = fmt.Sprintf("%d/%d", m.Published, r.msgs)
			}
			if k.scenario == "latency" {
				msgs = fmt.Sprintf("%d@%.0f/s", r.msgs, r.rate)
			}
			cells = []any{k.broker, k.scenario, k.contender, msgs, fmt.Sprintf("%.0f", m.PerSec), lat(m.P50ms), lat(m.P99ms),
				fmt.Sprintf("%.1f", m.AllocsPerMsg), fmt.Sprintf("%.1f", m.BytesPerMsg/1024), fmt.Sprintf("%.1f", m.CPUusPerMsg), fmt.Sprintf("%.0f", float64(m.PeakRSSKiB)/1024), len(r.runs)}
		}
		if md {
			s := make([]string, len(cells))
			for i, c := range cells {
				s[i] = fmt.Sprint(c)
			}
			fmt.Fprintf(w, "| %s |\n", strings.Join(s, " | "))
		} else {
			fmt.Fprintf(w, "%-7s %-8s %-14s %7v %9v %8v %8v %10v %8v %10v %12v %4v\n", cells...)
		}
	}
}

func toAny(s []string) []any {
	a := make([]any, len(s))
	for i, v := range s {
		a[i] = v
	}
	return a
}

func (rep *report) writeText(w io.Writer) {
	fmt.Fprintln(w)
	rep.writeTable(w, false)
	fmt.Fprintln(w)
	for _, l := range rep.ratios() {
		fmt.Fprintln(w, l)
	}
	for _, k := range rep.order {
		if r := rep.rows[k]; r.err != nil {
			fmt.Fprintf(w, "error %s/%s/%s: %v\n", k.broker, k.scenario, k.contender, r.err)
		}
	}
	fmt.Fprintf(w, "load average: start %s, end %s\n", rep.loadStart, rep.loadEnd)
}

// cleanup deletes what this run created on the broker (queues, exchanges,
// topics named with the run's prefix). Best effort.
func (rep *report) cleanup(b string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	switch b {
	case "kafka":
		cl, err := kgo.NewClient(kgo.SeedBrokers(rep.kafka...))
		if err != nil {
			return
		}
		defer cl.Close()
		adm := kadm.NewClient(cl)
		topics, err := adm.ListTopics(ctx)
		if err != nil {
			return
		}
		var del []string
		for _, t := range topics.Names() {
			if strings.HasPrefix(t, rep.prefix) {
				del = append(del, t)
			}
		}
		if len(del) > 0 {
			_, _ = adm.DeleteTopics(ctx, del...)
		}
		groups, err := adm.ListGroups(ctx)
		if err == nil {
			var gs []string
			for _, g := range groups.Groups() {
				if strings.HasPrefix(g, rep.prefix) {
					gs = append(gs, g)
				}
			}
			if len(gs) > 0 {
				_, _ = adm.DeleteGroups(ctx, gs...)
			}
		}
	case "amqp":
		conn, err := amqp091.Dial(rep.amqpURL)
		if err != nil {
			return
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			return
		}
		for _, q := range rabbitctl(ctx, "list_queues", "name") {
			if strings.HasPrefix(q, rep.prefix) {
				_, _ = ch.QueueDelete(q, false, false, false)
			}
		}
		for _, x := range rabbitctl(ctx, "list_exchanges", "name") {
			if strings.HasPrefix(x, rep.prefix) {
				_ = ch.ExchangeDelete(x, false, false)
			}
		}
	}
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func rabbitVersion(url string) string {
	conn, err := amqp091.Dial(url)
	if err != nil {
		return "unknown"
	}
	defer conn.Close()
	if v, ok := conn.Properties["version"].(string); ok {
		return v
	}
	return "unknown"
}

// kafkaVersion reads the version from the jar scripts/up.sh installed.
func kafkaVersion() string {
	m, _ := filepath.Glob(".cache/kafka/libs/kafka_2.13-*.jar")
	for _, p := range m {
		v := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), "kafka_2.13-"), ".jar")
		if !strings.ContainsAny(v, "-") {
			return v
		}
	}
	return "unknown"
}

func machine() (cpu, mem, kernel string) {
	cpu, mem, kernel = "unknown", "unknown", "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				var kb int64
				fmt.Sscan(strings.TrimSpace(v), &kb)
				mem = fmt.Sprintf("%.1f GiB", float64(kb)/1024/1024)
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	return cpu, mem, kernel
}

var _ = runtime.NumCPU
