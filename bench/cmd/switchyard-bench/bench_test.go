package main

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"
)

func TestRatioLineFormat(t *testing.T) {
	got := ratioLine{scenario: "memory.e2e", raw: 1.234, wm: math.NaN()}.String()
	want := "ratio memory.e2e switchyard/raw=1.23 switchyard/watermill=n/a"
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	got = ratioLine{scenario: "amqp.publish", raw: 0.7, wm: 4, fairName: "raw-headers", fair: 0.95}.String()
	want = "ratio amqp.publish switchyard/raw=0.70 switchyard/raw-headers=0.95 switchyard/watermill=4.00"
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestTargetVerdict(t *testing.T) {
	for _, tc := range []struct {
		v, want   float64
		ge, vsRaw bool
		verdict   string
	}{
		{0.95, 0.9, true, true, "met"},
		{0.86, 0.9, true, true, "**not met**"},
		{19, 20, false, false, "met"},
		{21, 20, false, false, "**not met**"},
		{2.5, 2, true, false, "met"},            // against Watermill: may well be far above
		{13.57, 0.8, true, true, "**outlier**"}, // against raw: the baseline stalled
	} {
		if got := targetVerdict(tc.v, tc.want, tc.ge, tc.vsRaw); !strings.HasPrefix(got, tc.verdict) {
			t.Errorf("targetVerdict(%v, %v, %v, %v) = %q, want %s", tc.v, tc.want, tc.ge, tc.vsRaw, got, tc.verdict)
		}
	}
}

func TestMedianPerMetric(t *testing.T) {
	m := median([]result{{PerSec: 3, P99ms: 9}, {PerSec: 1, P99ms: 1}, {PerSec: 2, P99ms: 5}})
	if m.PerSec != 2 || m.P99ms != 5 {
		t.Fatalf("median = %+v, want per_sec 2, p99 5", m)
	}
}

func TestRatioAboveOneMeansSwitchyardBetter(t *testing.T) {
	rep := &report{o: options{brokers: []string{"memory"}}, rows: map[key]*row{}}
	add := func(sc, c string, r result) {
		rep.rows[key{"memory", sc, c}] = &row{key: key{"memory", sc, c}, runs: []result{r}, med: r}
	}
	add("e2e", "switchyard", result{PerSec: 200})
	add("e2e", "raw", result{PerSec: 100})
	add("latency", "switchyard", result{P50ms: 1})
	add("latency", "raw", result{P50ms: 4})
	if r := rep.ratio("memory", "e2e", "raw", func(r result) float64 { return r.PerSec }, false); r != 2 {
		t.Errorf("throughput ratio = %v, want 2", r)
	}
	if r := rep.ratio("memory", "latency", "raw", func(r result) float64 { return r.P50ms }, true); r != 4 {
		t.Errorf("latency ratio = %v, want 4", r)
	}
}

// A ratio pairs the runs of one run number: when the machine is fast in
// some runs and slow in others, the median of the per-run ratios still says
// how the two compared, where the ratio of the medians compares one
// contender's slow run with the other's fast one. Break it (ratio of the
// medians) and this gets 0.5 instead of 1.
func TestRatioPairsRunsOfOneNumber(t *testing.T) {
	rep := &report{o: options{brokers: []string{"kafka"}}, rows: map[key]*row{}}
	add := func(c string, perSec ...float64) {
		k := key{"kafka", "publish", c}
		r := &row{key: k}
		for _, v := range perSec {
			r.runs = append(r.runs, result{PerSec: v})
		}
		r.med = median(r.runs)
		rep.rows[k] = r
	}
	// Runs 1-2 on a quiet machine, 4-5 on a busy one; run 3 turned busy
	// between the two contenders. Each run but the third is a tie.
	add("switchyard", 100, 100, 50, 50, 50)
	add("raw", 100, 100, 100, 50, 50)
	tput := func(r result) float64 { return r.PerSec }
	if r := rep.ratio("kafka", "publish", "raw", tput, false); r != 1 {
		t.Errorf("paired ratio = %v, want 1", r)
	}
}

// TestMeasureMemory runs every memory contender through every scenario on a
// few messages: everything published is handled, and a stalled consumer
// stops Switchyard and the raw channel at their buffer.
func TestMeasureMemory(t *testing.T) {
	base := spec{Broker: "memory", Msgs: 300, Publishers: 8, Concurrency: 4, Keys: 16, Prefix: "test-", Run: 1, OverrunWindow: 300 * time.Millisecond}
	for _, c := range []string{"switchyard", "watermill", "watermill-4mw", "raw"} {
		for _, sc := range []string{"publish", "e2e", "latency"} {
			t.Run(c+"/"+sc, func(t *testing.T) {
				s := base
				s.Contender, s.Scenario = c, sc
				if sc == "latency" {
					s.Rate = 3000
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				r, err := measure(ctx, s)
				if err != nil {
					t.Fatal(err)
				}
				if r.Msgs != s.Msgs || r.PerSec <= 0 || r.PeakRSSKiB <= 0 {
					t.Fatalf("result %+v", r)
				}
				if sc == "latency" && r.P99ms < r.P50ms {
					t.Fatalf("p99 %v < p50 %v", r.P99ms, r.P50ms)
				}
			})
		}
	}
	for _, c := range []string{"switchyard", "raw"} {
		t.Run(c+"/overrun", func(t *testing.T) {
			s := base
			s.Contender, s.Scenario, s.Msgs = c, "overrun", 5000
			r, err := measure(context.Background(), s)
			if err != nil {
				t.Fatal(err)
			}
			if r.Published >= s.Msgs {
				t.Fatalf("published %d of %d to a stalled consumer: not bounded", r.Published, s.Msgs)
			}
		})
	}
}
