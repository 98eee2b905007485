package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Event is the message every contender publishes and decodes: about 1 KiB of
// JSON. SentAt is the publish time in Unix nanoseconds, for latency.
type Event struct {
	ID     int    `json:"id"`
	Key    string `json:"key"`
	SentAt int64  `json:"sent_at"`
	Body   string `json:"body"`
}

// EventType, EventVersion and EventKey make Event a Switchyard event.
func (Event) EventType() string  { return "bench.event" }
func (Event) EventVersion() int  { return 1 }
func (e Event) EventKey() string { return e.Key }

// body pads Event's JSON encoding to about 1 KiB.
var body = strings.Repeat("x", 1024-80)

// consumeMode says what a contender's consumer does in a scenario.
type consumeMode int

const (
	consumeNone   consumeMode = iota // no consumer (broker queues keep the messages)
	consumeDrain                     // ack at the subscriber without decoding (memory publish)
	consumeHandle                    // decode into Event and call the handler
)

// contender is one way of moving messages: switchyard, watermill, watermill-4mw or raw.
type contender interface {
	// start prepares topics and queues and, unless mode is consumeNone, starts
	// a consumer that calls h with every decoded message. It returns once the
	// consumer is subscribed.
	start(ctx context.Context, mode consumeMode, h func(Event)) error
	// publish publishes e and returns once the broker acknowledged it.
	publish(ctx context.Context, e *Event) error
	close()
}

// streamPublisher is implemented by contenders whose natural confirmed
// publishing is one pipelined stream (the raw clients' async confirms):
// they publish n events from one goroutine, next(i) giving event i.
type streamPublisher interface {
	publishStream(ctx context.Context, n int, next func(i int) *Event) error
}

// spec is what the parent asks a child process to measure.
type spec struct {
	Broker        string        `json:"broker"`
	Contender     string        `json:"contender"`
	Scenario      string        `json:"scenario"`
	Msgs          int           `json:"msgs"`
	Rate          float64       `json:"rate,omitempty"`
	Publishers    int           `json:"publishers"`
	Concurrency   int           `json:"concurrency"`
	Prefetch      int           `json:"prefetch"`
	Keys          int           `json:"keys"`
	Partitions    int32         `json:"partitions"`
	Prefix        string        `json:"prefix"`
	Run           int           `json:"run"`
	OverrunWindow time.Duration `json:"overrun_window"`
	AMQPURL       string        `json:"amqp_url,omitempty"`
	KafkaBrokers  []string      `json:"kafka_brokers,omitempty"`
}

func (s spec) topic() string {
	return fmt.Sprintf("%s%s-%s-%s-%d", s.Prefix, s.Broker, s.Scenario, s.Contender, s.Run)
}

func (s spec) group() string { return s.topic() + "-g" }

// result is what a child reports, one JSON line on stdout.
type result struct {
	Msgs         int     `json:"msgs"`
	Seconds      float64 `json:"seconds"`
	PerSec       float64 `json:"per_sec"`
	P50ms        float64 `json:"p50_ms,omitempty"`
	P99ms        float64 `json:"p99_ms,omitempty"`
	AllocsPerMsg float64 `json:"allocs_per_msg"`
	BytesPerMsg  float64 `json:"bytes_per_msg"`
	PeakRSSKiB   int64   `json:"peak_rss_kib"`
	CPUusPerMsg  float64 `json:"cpu_us_per_msg"`
	Published    int     `json:"published,omitempty"`
}

func newContender(s spec) (contender, error) {
	switch s.Broker + "/" + s.Contender {
	case "memory/switchyard":
		return &symemory{s: s}, nil
	case "memory/switchyard-async":
		return &asyncPublisher{&symemory{s: s}}, nil
	case "amqp/switchyard-async":
		return &asyncPublisher{&syamqp{s: s}}, nil
	case "kafka/switchyard-async":
		return &asyncPublisher{&sykafka{s: s}}, nil
	case "memory/watermill", "memory/watermill-4mw":
		return &wmmemory{s: s, mw: s.Contender == "watermill-4mw"}, nil
	case "memory/raw":
		return &rawmemory{s: s}, nil
	case "amqp/switchyard":
		if pipelines(s) {
			return &asyncPublisher{&syamqp{s: s}}, nil
		}
		return &syamqp{s: s}, nil
	case "amqp/watermill", "amqp/watermill-4mw":
		return &wmamqp{s: s, mw: s.Contender == "watermill-4mw"}, nil
	case "amqp/raw":
		return &rawamqp{s: s}, nil
	case "amqp/raw-headers":
		return &rawamqp{s: s, envelope: true}, nil
	case "kafka/switchyard":
		if pipelines(s) {
			return &asyncPublisher{&sykafka{s: s}}, nil
		}
		return &sykafka{s: s}, nil
	case "kafka/watermill", "kafka/watermill-4mw":
		return &wmkafka{s: s, mw: s.Contender == "watermill-4mw"}, nil
	case "kafka/raw":
		return &rawkafka{s: s}, nil
	case "kafka/raw-headers":
		return &rawkafka{s: s, envelope: true}, nil
	}
	return nil, fmt.Errorf("bench: unknown contender %q on broker %q", s.Contender, s.Broker)
}

// pipelines reports whether Switchyard's contender publishes with
// PublishAsync from one goroutine in scenario s: in e2e and latency on
// RabbitMQ and Kafka, where the raw contender pipelines from one goroutine
// too, so that the two publish alike and the scenario compares their
// consumers. (With 1000 goroutines each waiting in Service.Publish, the
// publish side alone cost Switchyard about 6 µs/msg more client CPU than
// the raw stream, counted against its consumer.) The publish scenario
// measures both ways: switchyard and switchyard-async.
func pipelines(s spec) bool {
	return s.Scenario == "e2e" || s.Scenario == "latency"
}

// measure runs one scenario of one contender in this process.
func measure(ctx context.Context, s spec) (result, error) {
	c, err := newContender(s)
	if err != nil {
		return result{}, err
	}
	defer c.close()

	var (
		handled  atomic.Int64
		done     = make(chan struct{})
		doneOnce sync.Once
		warm     = make(chan struct{})
		warmOnce sync.Once
		gate     = make(chan struct{})
		lat      []int64
	)
	n := s.Msgs
	if s.Scenario == "latency" {
		lat = make([]int64, n)
	}
	// The event comes by value: a pointer into the contender's own
	// variable would make that variable escape to the heap, an allocation
	// of the harness's that a handler of the contender's would not make.
	h := func(e Event) {
		if e.ID < 0 {
			warmOnce.Do(func() { close(warm) })
			return
		}
		if s.Scenario == "overrun" {
			<-gate
		}
		if lat != nil && e.ID < len(lat) {
			atomic.StoreInt64(&lat[e.ID], time.Now().UnixNano()-e.SentAt)
		}
		if handled.Add(1) == int64(n) {
			doneOnce.Do(func() { close(done) })
		}
	}
	mode := consumeHandle
	if s.Scenario == "publish" {
		mode = consumeNone
		if s.Broker == "memory" {
			mode = consumeDrain
		}
	}
	if f := os.Getenv("SWITCHYARD_BENCH_CPUPROFILE"); f != "" {
		pf, err := os.Create(fmt.Sprintf("%s.%s.%s.%s", f, s.Broker, s.Scenario, s.Contender))
		if err == nil {
			_ = pprof.StartCPUProfile(pf)
			defer pprof.StopCPUProfile()
		}
	}
	if f := os.Getenv("SWITCHYARD_BENCH_MEMPROFILE"); f != "" {
		runtime.MemProfileRate = 512
		defer func() {
			if pf, err := os.Create(fmt.Sprintf("%s.%s.%s.%s", f, s.Broker, s.Scenario, s.Contender)); err == nil {
				_ = pprof.Lookup("allocs").WriteTo(pf, 0)
				_ = pf.Close()
			}
		}()
	}
	if err := c.start(ctx, mode, h); err != nil {
		return result{}, err
	}

	// One warm-up message: topic metadata, connections and the consumer
	// group's partition assignment are settled before the clock starts.
	if err := c.publish(ctx, &Event{ID: -1, Key: "warmup", SentAt: time.Now().UnixNano(), Body: body}); err != nil {
		return result{}, fmt.Errorf("bench: warm-up publish: %w", err)
	}
	if mode == consumeHandle {
		select {
		case <-warm:
		case <-ctx.Done():
			return result{}, fmt.Errorf("bench: warm-up message not consumed: %w", ctx.Err())
		}
	}

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cpuBefore := cpuTime()
	// Keys are made before the clock starts: their strings are the
	// harness's, not a contender's.
	keys := make([]string, max(s.Keys, 1))
	for k := range keys {
		keys[k] = "k" + strconv.Itoa(k)
	}
	start := time.Now()
	next := func(i int) *Event {
		if s.Rate > 0 {
			due := start.Add(time.Duration(float64(i) / s.Rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
		}
		return &Event{ID: i, Key: keys[i%len(keys)], SentAt: time.Now().UnixNano(), Body: body}
	}

	pubCtx := ctx
	if s.Scenario == "overrun" {
		var cancel context.CancelFunc
		pubCtx, cancel = context.WithTimeout(ctx, s.OverrunWindow)
		defer cancel()
	}
	published, perr := publishAll(pubCtx, c, s, n, next)
	pubEnd := time.Now()
	if perr != nil && s.Scenario != "overrun" {
		return result{}, perr
	}

	var end time.Time
	switch {
	case s.Scenario == "overrun":
		end = pubEnd
	case mode == consumeHandle:
		select {
		case <-done:
		case <-ctx.Done():
			return result{}, fmt.Errorf("bench: handled %d of %d: %w", handled.Load(), n, ctx.Err())
		}
		end = time.Now()
	default:
		end = pubEnd
	}
	runtime.ReadMemStats(&after)
	cpu := cpuTime() - cpuBefore
	r := result{
		CPUusPerMsg:  float64(cpu.Microseconds()) / float64(n),
		Msgs:         n,
		Seconds:      end.Sub(start).Seconds(),
		AllocsPerMsg: float64(after.Mallocs-before.Mallocs) / float64(n),
		BytesPerMsg:  float64(after.TotalAlloc-before.TotalAlloc) / float64(n),
		PeakRSSKiB:   peakRSS(),
		Published:    published,
	}
	if s.Scenario == "overrun" {
		r.AllocsPerMsg = float64(after.Mallocs-before.Mallocs) / float64(max(published, 1))
		r.BytesPerMsg = float64(after.TotalAlloc-before.TotalAlloc) / float64(max(published, 1))
		r.CPUusPerMsg = float64(cpu.Microseconds()) / float64(max(published, 1))
		close(gate)
	}
	r.PerSec = float64(n) / r.Seconds
	if s.Scenario == "overrun" {
		r.PerSec = float64(published) / r.Seconds
	}
	if lat != nil {
		slices.Sort(lat)
		r.P50ms = float64(lat[len(lat)/2]) / 1e6
		r.P99ms = float64(lat[len(lat)*99/100]) / 1e6
	}
	return r, nil
}

// publishAll publishes n events, either as the contender's own stream or from
// s.Publishers goroutines each publishing one event at a time. It returns
// how many were acknowledged.
func publishAll(ctx context.Context, c contender, s spec, n int, next func(int) *Event) (int, error) {
	if sp, ok := c.(streamPublisher); ok {
		var count atomic.Int64
		err := sp.publishStream(ctx, n, func(i int) *Event {
			count.Store(int64(i))
			return next(i)
		})
		if err == nil {
			return n, nil
		}
		return int(count.Load()), err
	}
	var (
		idx   atomic.Int64
		acked atomic.Int64
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for range s.Publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(idx.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := c.publish(ctx, next(i)); err != nil {
					once.Do(func() { first = fmt.Errorf("bench: publish %d: %w", i, err) })
					return
				}
				acked.Add(1)
			}
		}()
	}
	// A publisher blocked on backpressure may not see ctx (Service.Publish
	// does not hand ctx to the broker message): stop waiting for it once ctx
	// is done; the overrun child exits with it still blocked.
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-ctx.Done():
		select {
		case <-finished:
		case <-time.After(200 * time.Millisecond):
		}
		once.Do(func() { first = ctx.Err() })
	}
	return int(acked.Load()), first
}

// peakRSS reads VmHWM from /proc/self/status, in KiB (0 where unavailable).
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb
		}
	}
	return 0
}

var errClosed = errors.New("bench: closed")

// cpuTime is the user plus system CPU time this process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
