package projection_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/pkg/eventstore"
	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/projection"
	"github.com/switchyard-go/switchyard/pkg/service"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type orderPlaced struct {
	OrderID string  `json:"order_id"`
	Total   float64 `json:"total"`
}

func (orderPlaced) EventType() string  { return "orders.order_placed" }
func (orderPlaced) EventVersion() int  { return 1 }
func (orderPlaced) EventTopic() string { return "orders" }

type orderPaid struct {
	OrderID string `json:"order_id"`
}

func (orderPaid) EventType() string  { return "orders.order_paid" }
func (orderPaid) EventVersion() int  { return 1 }
func (orderPaid) EventTopic() string { return "orders" }

type ignored struct{}

func (ignored) EventType() string { return "other.ignored" }
func (ignored) EventVersion() int { return 1 }

// models is an in-memory read model per target, as a test's handlers
// write it.
type models struct {
	mu   sync.Mutex
	rows map[string]map[string]string // target → order → status
	adds map[string]int               // target → handler calls
}

func newModels() *models {
	return &models{rows: map[string]map[string]string{}, adds: map[string]int{}}
}

func (m *models) set(target, id, status string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rows[target] == nil {
		m.rows[target] = map[string]string{}
	}
	m.rows[target][id] = status
	m.adds[target]++
}

func (m *models) get(target string) map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.rows[target])
}

func (m *models) calls(target string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.adds[target]
}

func newProjection(t *testing.T, store projection.Store, m *models, opts ...projection.Option) *projection.Projection {
	t.Helper()
	opts = append([]projection.Option{projection.WithPollInterval(5 * time.Millisecond), projection.WithBatchSize(3)}, opts...)
	p, err := projection.New("order_summaries", store, nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := projection.Handle(p, func(ctx context.Context, e orderPlaced) error {
		m.set(projection.Target(ctx), e.OrderID, "placed")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := projection.Handle(p, func(ctx context.Context, e orderPaid) error {
		m.set(projection.Target(ctx), e.OrderID, "paid")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return p
}

func checkpoint(t *testing.T, store projection.Store, name string) projection.Checkpoint {
	t.Helper()
	cp, err := store.Checkpoint(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10s: %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func run(t *testing.T, p *projection.Projection, src eventstore.AllReader) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, src) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func appendOrders(t *testing.T, es eventstore.Store, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		id := fmt.Sprintf("o%d", i)
		if err := es.Append(context.Background(), id, 0, orderPlaced{OrderID: id}, ignored{}); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if err := es.Append(context.Background(), id, 2, orderPaid{OrderID: id}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func want(from, to int) map[string]string {
	w := map[string]string{}
	for i := from; i < to; i++ {
		w[fmt.Sprintf("o%d", i)] = map[bool]string{true: "paid", false: "placed"}[i%2 == 0]
	}
	return w
}

// Run catches up on history, follows new events, resumes from its
// checkpoint after a restart without applying anything twice, and reports
// its status.
func TestRunCatchesUpFollowsAndResumes(t *testing.T) {
	es := eventstore.NewMemory(eventstore.Encoder{})
	store := projection.NewMemory()
	m := newModels()
	appendOrders(t, es, 0, 5)
	p := newProjection(t, store, m)
	stop := run(t, p, es)
	eventually(t, "history applied", func() bool { return maps.Equal(m.get("order_summaries_v1"), want(0, 5)) })
	appendOrders(t, es, 5, 8)
	eventually(t, "live events applied", func() bool { return maps.Equal(m.get("order_summaries_v1"), want(0, 8)) })
	head, _ := es.Head(context.Background())
	eventually(t, "status caught up", func() bool { s := p.Status(); return s.Position > 0 && s.Lag == 0 && s.Head == head })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	calls := m.calls("order_summaries_v1")
	if calls != 12 {
		t.Fatalf("%d handler calls, want 12 (8 placed, 4 paid; the ignored type never reaches a handler)", calls)
	}

	// A new process: the same store's checkpoint, nothing applied again.
	appendOrders(t, es, 8, 10)
	p2 := newProjection(t, store, m)
	run(t, p2, es)
	eventually(t, "resumed", func() bool { return maps.Equal(m.get("order_summaries_v1"), want(0, 10)) })
	eventually(t, "resumed status", func() bool { return p2.Status().Lag == 0 })
	if got := m.calls("order_summaries_v1"); got != calls+3 {
		t.Fatalf("%d handler calls after the restart, want %d: the restart re-applied events before its checkpoint", got, calls+3)
	}
	if st := p2.Status(); !st.Running || st.Target != "order_summaries_v1" || st.Rebuilding || st.Applied != 3 {
		t.Fatalf("status %+v", st)
	}
}

// A handler error rolls the batch back and the batch is retried; a
// permanent one stops Run with the error and the checkpoint before it.
func TestRunRetriesAndStopsOnPermanentErrors(t *testing.T) {
	es := eventstore.NewMemory(eventstore.Encoder{})
	store := projection.NewMemory()
	p, err := projection.New("flaky", store, nil, projection.WithPollInterval(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	fails := 2
	seen := map[string]bool{}
	_ = projection.Handle(p, func(ctx context.Context, e orderPlaced) error {
		mu.Lock()
		defer mu.Unlock()
		if e.OrderID == "bad" {
			return failure.Permanent(errors.New("cannot apply"))
		}
		if fails > 0 {
			fails--
			return errors.New("database away")
		}
		seen[e.OrderID] = true
		return nil
	})
	appendOrders(t, es, 0, 2)
	_ = es.Append(context.Background(), "bad", 0, orderPlaced{OrderID: "bad"})
	err = p.Run(context.Background(), es)
	if !failure.IsPermanent(err) || !strings.Contains(err.Error(), "cannot apply") {
		t.Fatalf("Run: %v, want the permanent error", err)
	}
	if !seen["o0"] || !seen["o1"] {
		t.Fatalf("applied %v, want o0 and o1 after the retries", seen)
	}
	if cp := checkpoint(t, store, "flaky"); cp.Position != 4 { // o0: placed 1, (ignored 2), paid 3; o1: placed 4, (ignored 5)
		t.Fatalf("checkpoint at %d, want 4 (right before the bad event)", cp.Position)
	}
	if st := p.Status(); st.LastError == nil {
		t.Fatal("status has no last error")
	}
}

// A rebuild replays into the next generation while the live target keeps
// serving and being updated, then switches; the rebuilt model equals the
// live one, and Run goes on with the new target.
func TestRebuildSwitchesToAnEqualModel(t *testing.T) {
	es := eventstore.NewMemory(eventstore.Encoder{})
	store := projection.NewMemory()
	m := newModels()
	var switched []string
	p := newProjection(t, store, m, projection.WithSwitch(func(_ context.Context, from, to string) error {
		switched = append(switched, from+"->"+to)
		return nil
	}))
	appendOrders(t, es, 0, 20)
	run(t, p, es)
	eventually(t, "live model", func() bool { return maps.Equal(m.get("order_summaries_v1"), want(0, 20)) })

	// Appends go on during the rebuild.
	ctx := context.Background()
	writing := make(chan struct{})
	go func() { defer close(writing); appendOrders(t, es, 20, 40) }()
	if err := p.Rebuild(ctx, es); err != nil {
		t.Fatal(err)
	}
	<-writing
	if len(switched) != 2 || switched[0] != "->order_summaries_v1" || switched[1] != "order_summaries_v1->order_summaries_v2" {
		t.Fatalf("switches %v", switched)
	}
	eventually(t, "both models complete", func() bool {
		return maps.Equal(m.get("order_summaries_v2"), want(0, 40)) && p.Status().Target == "order_summaries_v2"
	})
	// The live v1 stopped at the switch; v2 has everything.
	if cp := checkpoint(t, store, "order_summaries"); cp.Target != "order_summaries_v2" || cp.Generation != 2 || cp.Rebuild != nil {
		t.Fatalf("checkpoint %+v", cp)
	}
	if got := m.calls("order_summaries_v2"); got != 60 {
		t.Fatalf("v2 had %d handler calls, want 60: each event once", got)
	}
	if st := p.Status(); st.Rebuilding {
		t.Fatalf("status after the switch: %+v", st)
	}
	// Readers ask for the live target without waiting for a unit of work.
	held, err := store.Begin(ctx, "order_summaries")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Rollback(ctx)
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if target, err := p.Target(tctx); err != nil || target != "order_summaries_v2" {
		t.Fatalf("Target during a unit of work: %q, %v", target, err)
	}
}

// A broker-fed projection applies each message once, whatever the
// redeliveries, and a rebuild from the store marks replayed events seen in
// the new target so that their redelivery after the switch changes nothing.
func TestSubscribeDedupesByMessageID(t *testing.T) {
	b, err := memory.New(memory.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	svc := service.New(b)
	store := projection.NewMemory()
	m := newModels()
	p := newProjection(t, store, m)
	if err := p.Subscribe(svc); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-svc.Ready()

	es := eventstore.NewMemory(eventstore.Encoder{})
	appendOrders(t, es, 0, 3)
	recs, _ := es.ReadAll(ctx, 0, 100)
	pub := b.Publisher()
	for range 2 { // every message twice: a redelivery
		for _, r := range recs {
			topic := "orders"
			if r.Type() == "other.ignored" {
				continue
			}
			if err := pub.Publish(topic, r.Message()); err != nil {
				t.Fatal(err)
			}
		}
	}
	eventually(t, "broker-fed model", func() bool { return maps.Equal(m.get("order_summaries_v1"), want(0, 3)) })
	eventually(t, "all handled", func() bool { return svc.Stats().Handled == 10 })
	if got := m.calls("order_summaries_v1"); got != 5 {
		t.Fatalf("%d handler calls for 5 events published twice, want 5", got)
	}
	if err := p.Rebuild(ctx, es); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.Type() != "other.ignored" {
			_ = pub.Publish("orders", r.Message())
		}
	}
	eventually(t, "redeliveries handled", func() bool { return svc.Stats().Handled == 15 })
	if got := m.calls("order_summaries_v2"); got != 5 || !maps.Equal(m.get("order_summaries_v2"), want(0, 3)) {
		t.Fatalf("v2: %d calls, %v; want the 5 replayed events once", got, m.get("order_summaries_v2"))
	}
}

func TestCollectorExportsStatus(t *testing.T) {
	es := eventstore.NewMemory(eventstore.Encoder{})
	p := newProjection(t, projection.NewMemory(), newModels())
	appendOrders(t, es, 0, 2)
	run(t, p, es)
	eventually(t, "caught up", func() bool { return p.Status().Position == 4 })
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(projection.NewCollector(p))
	err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP switchyard_projection_lag Positions the projection's live read model is behind the event store head.
# TYPE switchyard_projection_lag gauge
switchyard_projection_lag{projection="order_summaries"} 0
# HELP switchyard_projection_position Last global position applied to the projection's live read model.
# TYPE switchyard_projection_position gauge
switchyard_projection_position{projection="order_summaries"} 4
# HELP switchyard_projection_rebuilding 1 while a rebuild of the projection is in progress.
# TYPE switchyard_projection_rebuilding gauge
switchyard_projection_rebuilding{projection="order_summaries"} 0
`), "switchyard_projection_lag", "switchyard_projection_position", "switchyard_projection_rebuilding")
	if err != nil {
		t.Fatal(err)
	}
}

func TestNewValidates(t *testing.T) {
	_, err := projection.New("Order-Summaries", nil, nil, projection.WithBatchSize(-1))
	for _, w := range []string{`name "Order-Summaries"`, "store: required", "batch size -1"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("New: %v, want it to name %q", err, w)
		}
	}
	p, _ := projection.New("x", projection.NewMemory(), nil)
	_ = projection.Handle(p, func(context.Context, orderPlaced) error { return nil })
	if err := projection.Handle(p, func(context.Context, orderPlaced) error { return nil }); err == nil {
		t.Error("a second handler for one type was accepted")
	}
}

// lateSource is the rebuild's view of the store: on its first short read
// (the rebuild thinks it caught up) it first lets an event commit and the
// live side apply it, before the rebuild takes the projection's lock.
type lateSource struct {
	*eventstore.Memory
	once  sync.Once
	late  func()
	batch int
}

func (s *lateSource) ReadAll(ctx context.Context, after int64, limit int, types ...string) ([]eventstore.Record, error) {
	recs, err := s.Memory.ReadAll(ctx, after, limit, types...)
	if err == nil && len(recs) < limit {
		s.once.Do(s.late)
	}
	return recs, err
}

// An event that commits and reaches the live target after the rebuild's
// last read but before its switch is in the new target too: the switch
// reads on under the projection's lock.
func TestRebuildCatchesEventsCommittedBeforeTheSwitch(t *testing.T) {
	es := eventstore.NewMemory(eventstore.Encoder{})
	store := projection.NewMemory()
	m := newModels()
	p := newProjection(t, store, m)
	appendOrders(t, es, 0, 4)
	run(t, p, es)
	eventually(t, "live model", func() bool { return maps.Equal(m.get("order_summaries_v1"), want(0, 4)) })
	src := &lateSource{Memory: es, late: func() {
		appendOrders(t, es, 4, 5)
		eventually(t, "the live side applied the late event", func() bool { return maps.Equal(m.get("order_summaries_v1"), want(0, 5)) })
	}}
	if err := p.Rebuild(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	if got := m.get("order_summaries_v2"); !maps.Equal(got, want(0, 5)) {
		t.Fatalf("rebuilt model %v, want %v: the event applied live before the switch is missing", got, want(0, 5))
	}
}

type orderPlacedV2 struct {
	OrderID string `json:"order_id"`
}

func (orderPlacedV2) EventType() string { return "orders.order_placed" }
func (orderPlacedV2) EventVersion() int { return 2 }

// An event the code cannot decode (a schema version newer than it knows)
// stops Run with a permanent error naming it, before it: nothing is
// skipped. A closed wake channel leaves Run polling, not spinning.
func TestRunStopsOnAnUndecodableEvent(t *testing.T) {
	es := eventstore.NewMemory(eventstore.Encoder{})
	store := projection.NewMemory()
	m := newModels()
	wake := make(chan struct{})
	close(wake)
	p := newProjection(t, store, m, projection.WithWake(wake))
	appendOrders(t, es, 0, 1)
	_ = es.Append(context.Background(), "o9", 0, orderPlacedV2{OrderID: "o9"})
	err := p.Run(context.Background(), es)
	if failure.ReasonOf(err) != failure.ReasonUnsupportedVersion || !strings.Contains(err.Error(), "position 4") {
		t.Fatalf("Run: %v, want unsupported_version at position 4", err)
	}
	if cp := checkpoint(t, store, "order_summaries"); cp.Position != 3 {
		t.Fatalf("checkpoint %d, want 3, right before the undecodable event", cp.Position)
	}
}

// A rebuild finished by another process while this one was reading ends
// with ErrRebuildSuperseded, and the other's switch stands.
func TestRebuildSupersededByAnother(t *testing.T) {
	es := eventstore.NewMemory(eventstore.Encoder{})
	store := projection.NewMemory()
	m := newModels()
	appendOrders(t, es, 0, 3)
	mine, other := newProjection(t, store, m), newProjection(t, store, m)
	src := &lateSource{Memory: es, late: func() {
		if err := other.Rebuild(context.Background(), es); err != nil {
			t.Error(err)
		}
	}}
	if err := mine.Rebuild(context.Background(), src); !errors.Is(err, projection.ErrRebuildSuperseded) {
		t.Fatalf("Rebuild: %v, want ErrRebuildSuperseded", err)
	}
	if cp := checkpoint(t, store, "order_summaries"); cp.Target != "order_summaries_v2" || cp.Rebuild != nil {
		t.Fatalf("checkpoint %+v, want the other's switch to v2", cp)
	}
}

// A handler that panics does not take the process down: Run (and a
// rebuild) stop with a permanent error of reason panic, the checkpoint
// right before the event, as for any permanent error; a service handler's
// panic is dead-lettered the same way.
func TestRunStopsOnAPanickingHandler(t *testing.T) {
	es := eventstore.NewMemory(eventstore.Encoder{})
	store := projection.NewMemory()
	p, err := projection.New("panicky", store, nil, projection.WithPollInterval(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	_ = projection.Handle(p, func(ctx context.Context, e orderPlaced) error {
		if e.OrderID == "bad" {
			var m map[string]int
			m[e.OrderID]++ // a bug: assignment to a nil map
		}
		return nil
	})
	appendOrders(t, es, 0, 2)
	_ = es.Append(context.Background(), "bad", 0, orderPlaced{OrderID: "bad"})
	err = p.Run(context.Background(), es)
	if failure.ReasonOf(err) != failure.ReasonPanic || !failure.IsPermanent(err) || !strings.Contains(err.Error(), "nil map") {
		t.Fatalf("Run: %v, want a permanent error of reason panic naming the panic", err)
	}
	if cp := checkpoint(t, store, "panicky"); cp.Position != 4 { // o1 placed; the bad event is 6
		t.Fatalf("checkpoint at %d, want 4 (right before the panicking event)", cp.Position)
	}
	if err := p.Rebuild(context.Background(), es); failure.ReasonOf(err) != failure.ReasonPanic {
		t.Fatalf("Rebuild: %v, want a permanent error of reason panic", err)
	}
}
