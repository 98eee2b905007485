//go:build !switchyard_no_kafka && !switchyard_no_amqp

package main

import (
	"testing"
	"time"
)

// ms is a time in Unix microseconds, t milliseconds after a fixed origin.
func ms(t int64) int64 { return 1_700_000_000_000_000 + t*1000 }

func TestAnalyseWindows(t *testing.T) {
	const a, b = 101, 102
	names := map[int]string{a: "a", b: "b"}
	h := func(id string, pid int, key string, off, start, end int64) handling {
		return handling{id: id, pid: pid, key: key, part: 0, off: off, started: ms(start), ended: ms(end)}
	}
	from, to := time.UnixMicro(ms(0)), time.UnixMicro(ms(10_000))
	tests := []struct {
		name   string
		hs     []handling
		leftAt map[int]time.Time
		check  func(t *testing.T, w *windows)
	}{{
		name: "handover after the old owner finished: no overlap, no violation",
		hs: []handling{
			h("m1", a, "k", 1, 0, 100), h("m2", a, "k", 2, 100, 200),
			h("m3", b, "k", 3, 300, 400),
		},
		check: func(t *testing.T, w *windows) {
			if w.overlaps != 0 || w.orderViolations != 0 || w.afterLeave+w.afterRebalance != 0 {
				t.Errorf("got %+v, want nothing flagged", w)
			}
		},
	}, {
		name: "same key on two members at once",
		hs: []handling{
			h("m1", a, "k", 1, 0, 500),
			h("m2", b, "k", 2, 200, 300), // begins while a still handles m1
			h("x1", b, "other", 1, 100, 600),
		},
		check: func(t *testing.T, w *windows) {
			if w.overlaps != 1 {
				t.Errorf("overlaps = %d, want 1 (%v)", w.overlaps, w.overlapSamples)
			}
		},
	}, {
		name: "a member going back in its key's order",
		hs: []handling{
			h("m2", a, "k", 2, 0, 100), h("m1", a, "k", 1, 100, 200),
		},
		check: func(t *testing.T, w *windows) {
			if w.orderViolations != 1 || w.redeliveredBehind != 1 {
				t.Errorf("orderViolations = %d, redeliveredBehind = %d, want 1, 1", w.orderViolations, w.redeliveredBehind)
			}
		},
	}, {
		name: "a repeat behind later messages is a duplicate, not an order violation",
		hs: []handling{
			h("m1", a, "k", 1, 0, 100), h("m2", a, "k", 2, 100, 200),
			h("m1", a, "k", 1, 200, 300), // redelivered after m2
		},
		check: func(t *testing.T, w *windows) {
			if w.orderViolations != 0 || w.afterRebalance != 1 || w.redeliveredBehind != 1 {
				t.Errorf("orderViolations = %d, afterRebalance = %d, redeliveredBehind = %d, want 0, 1, 1",
					w.orderViolations, w.afterRebalance, w.redeliveredBehind)
			}
		},
	}, {
		name: "a repeat after the first handler left is not a rebalance repeat",
		hs: []handling{
			h("m1", a, "k", 1, 0, 100),
			h("m1", b, "k", 1, 2000, 2100), // a left at 1000
			h("m2", b, "j", 2, 0, 100),
			h("m2", a, "j", 2, 500, 600), // b never left: the drain failed
		},
		leftAt: map[int]time.Time{a: time.UnixMicro(ms(1000))},
		check: func(t *testing.T, w *windows) {
			if w.afterLeave != 1 || w.afterRebalance != 1 {
				t.Errorf("afterLeave = %d, afterRebalance = %d, want 1, 1", w.afterLeave, w.afterRebalance)
			}
		},
	}, {
		name: "the longest gap of a stream is its stall",
		hs: []handling{
			h("m1", a, "k", 1, 0, 100), h("m2", a, "j", 2, 100, 200),
			h("m3", b, "k", 3, 1400, 1500), h("m4", b, "j", 4, 1500, 1600),
		},
		check: func(t *testing.T, w *windows) {
			s := w.longestStall(w.from, w.to)
			if s.length() != 1300*time.Millisecond || s.stream != "partition 0" {
				t.Errorf("longest stall = %s on %q, want 1.3s on partition 0", s.length(), s.stream)
			}
			if n := w.stallsOver(time.Second); n != 1 {
				t.Errorf("stallsOver(1s) = %d, want 1", n)
			}
			if s := w.longestStall(ms(1550), ms(1700)); s.length() != 100*time.Millisecond {
				t.Errorf("stall around 1.6s = %s, want 100ms", s.length())
			}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, analyseWindows(tt.hs, names, tt.leftAt, from, to))
		})
	}
}

func TestHandlingPositionAndStream(t *testing.T) {
	k := handling{part: 3, off: 42, seq: 7}
	r := handling{part: -1, off: -1, seq: 7}
	if k.position() != 42 || k.stream() != "partition 3" {
		t.Errorf("kafka handling: position %d stream %q", k.position(), k.stream())
	}
	if r.position() != 7 || r.stream() != "queue" {
		t.Errorf("rabbitmq handling: position %d stream %q", r.position(), r.stream())
	}
}
