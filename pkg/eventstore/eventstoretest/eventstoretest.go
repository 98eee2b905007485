// Package eventstoretest is the conformance suite every
// [eventstore.Store] passes: round trip, version checks, one winner among
// concurrent appends, upcasting on load, envelopes that continue the
// correlation chain, and aggregates through a Repository; reading a stream
// after a version for an [eventstore.StreamReader]; reading all by
// position and type, the head and a catch-up subscription for an
// [eventstore.AllReader]. [RunSnapshots] is the suite of an
// [eventstore.SnapshotStore] and of a Repository that uses one.
//
//	func TestConformance(t *testing.T) {
//		eventstoretest.Run(t, func(t *testing.T) eventstore.Store { return newMyStore(t) })
//		eventstoretest.RunSnapshots(t, newMyStore, newMySnapshotStore)
//	}
package eventstoretest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pkg/event"
	"github.com/switchyard-go/switchyard/pkg/eventstore"
	"github.com/switchyard-go/switchyard/pkg/failure"
	"github.com/switchyard-go/switchyard/pkg/middleware"
)

// The store must be built with a zero or JSON-codec [eventstore.Encoder].

type accountOpened struct {
	Owner string `json:"owner"`
}

func (accountOpened) EventType() string { return "test.account_opened" }
func (accountOpened) EventVersion() int { return 1 }

// deposited is at version 2: v1 had "cents" as an integer, v2 has "amount"
// in whole units and a currency.
type deposited struct {
	Amount   float64 `json:"amount"`
	Currency string  `json:"currency"`
}

func (deposited) EventType() string { return "test.deposited" }
func (deposited) EventVersion() int { return 2 }

type depositedV1 struct {
	Cents int `json:"cents"`
}

func (depositedV1) EventType() string { return "test.deposited" }
func (depositedV1) EventVersion() int { return 1 }

type account struct {
	Owner   string
	Balance float64
	Events  int
}

func apply(a account, e event.Event) account {
	switch e := e.(type) {
	case accountOpened:
		a.Owner = e.Owner
	case deposited:
		a.Balance += e.Amount
	}
	a.Events++
	return a
}

func decoder(t *testing.T) *eventstore.Decoder {
	t.Helper()
	d := eventstore.NewDecoder(nil, nil)
	if err := eventstore.Register[accountOpened](d); err != nil {
		t.Fatal(err)
	}
	if err := eventstore.Register[deposited](d); err != nil {
		t.Fatal(err)
	}
	err := d.Registry().Upcast("test.deposited", 1, func(p []byte) ([]byte, error) {
		var v1 depositedV1
		if err := json.Unmarshal(p, &v1); err != nil {
			return nil, err
		}
		return json.Marshal(deposited{Amount: float64(v1.Cents) / 100, Currency: "EUR"})
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

var seq atomic.Int64

func stream(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano(), seq.Add(1))
}

// Run runs the suite against stores made by newStore. Each subtest uses
// streams of its own, so newStore may return a shared store.
func Run(t *testing.T, newStore func(t *testing.T) eventstore.Store) {
	ctx := context.Background()

	t.Run("RoundTrip", func(t *testing.T) {
		s := newStore(t)
		id := stream("acct")
		before := time.Now().Add(-time.Second)
		if err := s.Append(ctx, id, 0, accountOpened{Owner: "ada"}, deposited{Amount: 5, Currency: "EUR"}); err != nil {
			t.Fatal(err)
		}
		if err := s.Append(ctx, id, 2, deposited{Amount: 7, Currency: "EUR"}); err != nil {
			t.Fatal(err)
		}
		recs, err := s.Load(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 3 {
			t.Fatalf("loaded %d records, want 3", len(recs))
		}
		ids := map[string]bool{}
		for i, r := range recs {
			if r.StreamID != id || r.Version != i+1 {
				t.Errorf("record %d: stream %q version %d, want %q %d", i, r.StreamID, r.Version, id, i+1)
			}
			if r.Envelope.ID == "" || ids[r.Envelope.ID] {
				t.Errorf("record %d: id %q empty or repeated", i, r.Envelope.ID)
			}
			ids[r.Envelope.ID] = true
			if r.Envelope.Key != id || r.Envelope.CorrelationID == "" || r.Envelope.ContentType != "application/json" {
				t.Errorf("record %d envelope %+v: want key = stream id, a correlation id, JSON", i, r.Envelope)
			}
			if r.Time().Before(before) || r.Time().After(time.Now().Add(time.Second)) {
				t.Errorf("record %d time %v, want about now", i, r.Time())
			}
		}
		if recs[0].Type() != "test.account_opened" || recs[1].Envelope.Version != 2 {
			t.Errorf("types/versions: %s v%d, %s v%d", recs[0].Type(), recs[0].Envelope.Version, recs[1].Type(), recs[1].Envelope.Version)
		}
		evs, err := decoder(t).DecodeAll(recs)
		if err != nil {
			t.Fatal(err)
		}
		if evs[0] != (accountOpened{Owner: "ada"}) || evs[2] != (deposited{Amount: 7, Currency: "EUR"}) {
			t.Errorf("decoded %#v", evs)
		}
		if other, err := s.Load(ctx, stream("unknown")); err != nil || len(other) != 0 {
			t.Errorf("unknown stream: %d records, %v; want none and no error", len(other), err)
		}
	})

	t.Run("VersionMismatchConflicts", func(t *testing.T) {
		s := newStore(t)
		id := stream("acct")
		if err := s.Append(ctx, id, 0, accountOpened{Owner: "a"}, deposited{Amount: 1}); err != nil {
			t.Fatal(err)
		}
		for _, expected := range []int{0, 1, 3} {
			err := s.Append(ctx, id, expected, deposited{Amount: 100})
			if !errors.Is(err, eventstore.ErrConcurrencyConflict) {
				t.Errorf("append at %d to a stream at 2: %v, want ErrConcurrencyConflict", expected, err)
			}
		}
		if err := s.Append(ctx, stream("new"), 1, accountOpened{}); !errors.Is(err, eventstore.ErrConcurrencyConflict) {
			t.Errorf("append at 1 to a new stream: %v, want ErrConcurrencyConflict", err)
		}
		if err := s.Append(ctx, id, eventstore.AnyVersion, deposited{Amount: 3}); err != nil {
			t.Errorf("AnyVersion: %v", err)
		}
		recs, err := s.Load(ctx, id)
		if err != nil || len(recs) != 3 || recs[2].Version != 3 {
			t.Fatalf("after conflicts: %d records, %v; want 3 (nothing from the conflicting appends)", len(recs), err)
		}
		if err := s.Append(ctx, id, 3); err != nil {
			t.Errorf("appending nothing: %v", err)
		}
	})

	t.Run("ConcurrentAppendsOneWins", func(t *testing.T) {
		s := newStore(t)
		id := stream("acct")
		if err := s.Append(ctx, id, 0, accountOpened{Owner: "a"}); err != nil {
			t.Fatal(err)
		}
		const n = 8
		var won, conflicts atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				err := s.Append(ctx, id, 1, deposited{Amount: float64(i)}, deposited{Amount: 1})
				switch {
				case err == nil:
					won.Add(1)
				case errors.Is(err, eventstore.ErrConcurrencyConflict):
					conflicts.Add(1)
				default:
					t.Error(err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if won.Load() != 1 || conflicts.Load() != n-1 {
			t.Fatalf("%d appends won and %d conflicted, want 1 and %d", won.Load(), conflicts.Load(), n-1)
		}
		if recs, _ := s.Load(ctx, id); len(recs) != 3 {
			t.Fatalf("stream has %d events, want 3", len(recs))
		}
	})

	t.Run("UpcastOnLoad", func(t *testing.T) {
		s := newStore(t)
		id := stream("acct")
		if err := s.Append(ctx, id, 0, depositedV1{Cents: 250}); err != nil { // written by older code
			t.Fatal(err)
		}
		recs, err := s.Load(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if recs[0].Envelope.Version != 1 {
			t.Fatalf("stored schema version %d, want 1", recs[0].Envelope.Version)
		}
		e, err := decoder(t).Decode(recs[0])
		if err != nil {
			t.Fatal(err)
		}
		if e != (deposited{Amount: 2.5, Currency: "EUR"}) {
			t.Fatalf("upcast to %#v", e)
		}
		// A version newer than the code knows is refused, not guessed at.
		old := eventstore.NewDecoder(nil, nil)
		if err := eventstore.Register[depositedV1](old); err != nil {
			t.Fatal(err)
		}
		if err := s.Append(ctx, id, 1, deposited{Amount: 1}); err != nil {
			t.Fatal(err)
		}
		recs, _ = s.Load(ctx, id)
		if _, err := old.Decode(recs[1]); failure.ReasonOf(err) != failure.ReasonUnsupportedVersion {
			t.Fatalf("decoding v2 with v1 code: %v, want unsupported_version", err)
		}
	})

	t.Run("EnvelopeContinuesTheChain", func(t *testing.T) {
		s := newStore(t)
		id := stream("acct")
		cctx := middleware.WithCorrelationID(ctx, "corr-7")
		if err := s.Append(cctx, id, 0, accountOpened{Owner: "a"}); err != nil {
			t.Fatal(err)
		}
		recs, err := s.Load(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if recs[0].Envelope.CorrelationID != "corr-7" {
			t.Fatalf("correlation %q, want corr-7", recs[0].Envelope.CorrelationID)
		}
		m := recs[0].Message()
		env, err := event.ReadEnvelope(m)
		if err != nil || env.ID != recs[0].Envelope.ID || env.Type != "test.account_opened" || string(m.Payload) != string(recs[0].Data) {
			t.Fatalf("Message(): %+v %v", env, err)
		}
	})

	t.Run("Repository", func(t *testing.T) {
		repo := &eventstore.Repository[account]{Store: newStore(t), Decoder: decoder(t), Apply: apply}
		id := stream("acct")
		a, err := repo.Load(ctx, id)
		if err != nil || a.Version != 0 {
			t.Fatalf("load of a new aggregate: version %v, %v", a, err)
		}
		a.Record(accountOpened{Owner: "ada"}, deposited{Amount: 10})
		if a.State.Balance != 10 || len(a.Uncommitted()) != 2 {
			t.Fatalf("after Record: %+v, %d pending", a.State, len(a.Uncommitted()))
		}
		if err := repo.Save(ctx, a); err != nil {
			t.Fatal(err)
		}
		if a.Version != 2 || len(a.Uncommitted()) != 0 {
			t.Fatalf("after Save: version %d, %d pending", a.Version, len(a.Uncommitted()))
		}
		// Two writers load the same version; the second save conflicts.
		x, _ := repo.Load(ctx, id)
		y, _ := repo.Load(ctx, id)
		x.Record(deposited{Amount: 1})
		y.Record(deposited{Amount: 2})
		if err := repo.Save(ctx, x); err != nil {
			t.Fatal(err)
		}
		if err := repo.Save(ctx, y); !errors.Is(err, eventstore.ErrConcurrencyConflict) {
			t.Fatalf("stale save: %v, want ErrConcurrencyConflict", err)
		}
		got, err := repo.Load(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != (account{Owner: "ada", Balance: 11, Events: 3}) || got.Version != 3 {
			t.Fatalf("folded %+v at version %d, want ada with 11 from 3 events", got.State, got.Version)
		}
	})

	t.Run("LoadAfter", func(t *testing.T) {
		s, ok := newStore(t).(eventstore.StreamReader)
		if !ok {
			t.Skip("the store does not implement eventstore.StreamReader")
		}
		id := stream("acct")
		if err := s.(eventstore.Store).Append(ctx, id, 0, accountOpened{Owner: "a"}, deposited{Amount: 1}, deposited{Amount: 2}); err != nil {
			t.Fatal(err)
		}
		for after, want := range map[int][]int{0: {1, 2, 3}, 1: {2, 3}, 3: nil, 9: nil} {
			recs, err := s.LoadAfter(ctx, id, after)
			if err != nil {
				t.Fatal(err)
			}
			var got []int
			for _, r := range recs {
				got = append(got, r.Version)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("LoadAfter(%d): versions %v, want %v", after, got, want)
			}
		}
	})

	t.Run("ReadAllByTypeAndHead", func(t *testing.T) {
		st, s, head := allReader(t, newStore)
		a, b := stream("acct"), stream("acct")
		if err := st.Append(ctx, a, 0, accountOpened{Owner: "a"}, deposited{Amount: 1}); err != nil {
			t.Fatal(err)
		}
		if err := st.Append(ctx, b, 0, accountOpened{Owner: "b"}); err != nil {
			t.Fatal(err)
		}
		if err := st.Append(ctx, a, 2, deposited{Amount: 2}); err != nil {
			t.Fatal(err)
		}
		all, err := s.ReadAll(ctx, head, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 4 || all[0].StreamID != a || all[2].StreamID != b || all[3].Version != 3 {
			t.Fatalf("ReadAll after the head: %d records, want a/1 a/2 b/1 a/3", len(all))
		}
		for i := 1; i < len(all); i++ {
			if all[i].Position <= all[i-1].Position {
				t.Fatalf("positions %d then %d: want increasing", all[i-1].Position, all[i].Position)
			}
		}
		if h, err := s.Head(ctx); err != nil || h != all[3].Position {
			t.Fatalf("Head = %d, %v; want the last position %d", h, err, all[3].Position)
		}
		deps, err := s.ReadAll(ctx, head, 100, "test.deposited")
		if err != nil {
			t.Fatal(err)
		}
		if len(deps) != 2 || deps[0].Position != all[1].Position || deps[1].Position != all[3].Position {
			t.Fatalf("ReadAll of test.deposited: %d records, want a/2 and a/3", len(deps))
		}
		both, _ := s.ReadAll(ctx, head, 100, "test.deposited", "test.account_opened")
		page, _ := s.ReadAll(ctx, all[0].Position, 1, "test.account_opened")
		if len(both) != 4 || len(page) != 1 || page[0].StreamID != b {
			t.Fatalf("two types: %d records (want 4); one opened after a/1: %v (want b/1)", len(both), page)
		}
		if none, err := s.ReadAll(ctx, head, 100, "test.never"); err != nil || len(none) != 0 {
			t.Fatalf("unknown type: %d records, %v", len(none), err)
		}
		if _, err := s.ReadAll(ctx, 0, 0); err == nil {
			t.Fatal("ReadAll with limit 0 returned no error")
		}
	})

	t.Run("SubscriptionCatchesUpAndFollows", func(t *testing.T) {
		st, s, head := allReader(t, newStore)
		id := stream("acct")
		if err := st.Append(ctx, id, 0, accountOpened{Owner: "a"}, deposited{Amount: 1}, deposited{Amount: 2}); err != nil {
			t.Fatal(err)
		}
		wake := make(chan struct{}, 1)
		sub, err := eventstore.NewSubscription(s, head, eventstore.SubscriptionConfig{
			Types: []string{"test.deposited"}, BatchSize: 1, PollInterval: time.Hour, Wake: wake,
		})
		if err != nil {
			t.Fatal(err)
		}
		tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		var got []float64
		for len(got) < 2 {
			recs, err := sub.Next(tctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 1 {
				t.Fatalf("batch of %d, want 1", len(recs))
			}
			evs, _ := decoder(t).DecodeAll(recs)
			got = append(got, evs[0].(deposited).Amount)
		}
		// Caught up: Next waits; an append and a wake bring the next.
		done := make(chan []eventstore.Record, 1)
		go func() {
			recs, err := sub.Next(tctx)
			if err != nil {
				t.Error(err)
			}
			done <- recs
		}()
		if err := st.Append(ctx, id, 3, accountOpened{Owner: "ignored"}, deposited{Amount: 3}); err != nil {
			t.Fatal(err)
		}
		wake <- struct{}{}
		recs := <-done
		if len(recs) != 1 || recs[0].Version != 5 {
			t.Fatalf("live batch %v, want version 5 (the deposit, not the other type)", recs)
		}
		if sub.Position() != recs[0].Position || sub.Lag() != 0 {
			t.Fatalf("position %d lag %d, want %d and 0", sub.Position(), sub.Lag(), recs[0].Position)
		}
		cancel()
		if _, err := sub.Next(tctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("Next after cancel: %v", err)
		}
		if fmt.Sprint(got) != "[1 2]" {
			t.Fatalf("history %v, want [1 2]", got)
		}
	})

	t.Run("SoftDelete", func(t *testing.T) {
		s := newStore(t)
		repo := &eventstore.Repository[account]{Store: s, Decoder: decoder(t), Apply: apply}
		id := stream("acct")
		if err := s.Append(ctx, id, 0, accountOpened{Owner: "a"}, deposited{Amount: 1}); err != nil {
			t.Fatal(err)
		}
		if err := eventstore.Delete(ctx, s, id, 1, "closed"); !errors.Is(err, eventstore.ErrConcurrencyConflict) {
			t.Fatalf("delete at a stale version: %v, want ErrConcurrencyConflict", err)
		}
		if err := eventstore.Delete(ctx, s, id, eventstore.AnyVersion, "closed"); err == nil {
			t.Fatal("delete at AnyVersion was accepted")
		}
		if err := eventstore.Delete(ctx, s, id, 2, "closed"); err != nil {
			t.Fatal(err)
		}
		for _, v := range []int{3, eventstore.AnyVersion} {
			if err := s.Append(ctx, id, v, deposited{Amount: 1}); !errors.Is(err, eventstore.ErrStreamDeleted) {
				t.Errorf("append at %d to a deleted stream: %v, want ErrStreamDeleted", v, err)
			}
		}
		if _, err := repo.Load(ctx, id); !errors.Is(err, eventstore.ErrStreamDeleted) {
			t.Errorf("Repository.Load of a deleted stream: %v, want ErrStreamDeleted", err)
		}
		recs, err := s.Load(ctx, id)
		if err != nil || len(recs) != 3 || recs[2].Type() != eventstore.StreamDeletedType {
			t.Fatalf("Load of a deleted stream: %d records, %v; want its events and the tombstone", len(recs), err)
		}
		d := eventstore.NewDecoder(nil, nil)
		_ = eventstore.Register[eventstore.StreamDeleted](d)
		if e, err := d.Decode(recs[2]); err != nil || e != (eventstore.StreamDeleted{Reason: "closed"}) {
			t.Fatalf("tombstone %v %v", e, err)
		}
	})
}

// allReader returns a store from newStore as an AllReader and its head,
// skipping the test for a store that is not one.
func allReader(t *testing.T, newStore func(t *testing.T) eventstore.Store) (eventstore.Store, eventstore.AllReader, int64) {
	t.Helper()
	st := newStore(t)
	s, ok := st.(eventstore.AllReader)
	if !ok {
		t.Skip("the store does not implement eventstore.AllReader")
	}
	head, err := s.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st, s, head
}

// RunSnapshots runs the snapshot suite: the snapshot store keeps the
// latest snapshot per stream and schema version, and a Repository using it
// loads the same state as a full replay, from the snapshot and the events
// after it, and ignores a snapshot of another schema version.
func RunSnapshots(t *testing.T, newStore func(t *testing.T) eventstore.Store, newSnapshots func(t *testing.T) eventstore.SnapshotStore) {
	ctx := context.Background()

	t.Run("StoreKeepsTheLatest", func(t *testing.T) {
		ss := newSnapshots(t)
		id := stream("snap")
		if _, ok, err := ss.LoadSnapshot(ctx, id); ok || err != nil {
			t.Fatalf("snapshot of an unknown stream: %v %v", ok, err)
		}
		at := time.Now().UTC().Truncate(time.Millisecond)
		for _, s := range []eventstore.Snapshot{
			{StreamID: id, Version: 5, EventID: "ev-5", SchemaVersion: 1, Data: []byte(`{"v":5}`), Time: at},
			{StreamID: id, Version: 3, SchemaVersion: 1, Data: []byte(`{"v":3}`), Time: at}, // a slower writer
		} {
			if err := ss.SaveSnapshot(ctx, s); err != nil {
				t.Fatal(err)
			}
		}
		got, ok, err := ss.LoadSnapshot(ctx, id)
		if err != nil || !ok || got.Version != 5 || got.EventID != "ev-5" || string(got.Data) != `{"v":5}` || !got.Time.Equal(at) || got.StreamID != id {
			t.Fatalf("after saving 5 then 3: %+v %v %v, want version 5 with event id ev-5", got, ok, err)
		}
		// A new schema replaces a higher version of the old one.
		if err := ss.SaveSnapshot(ctx, eventstore.Snapshot{StreamID: id, Version: 4, SchemaVersion: 2, Data: []byte(`{}`), Time: at}); err != nil {
			t.Fatal(err)
		}
		if got, _, _ := ss.LoadSnapshot(ctx, id); got.SchemaVersion != 2 || got.Version != 4 {
			t.Fatalf("after a schema 2 snapshot: %+v", got)
		}
	})

	// counting wraps apply to count the events folded by a Load.
	counting := func(n *atomic.Int32) func(account, event.Event) account {
		return func(a account, e event.Event) account { n.Add(1); return apply(a, e) }
	}

	t.Run("RepositoryLoadsTheSnapshotThenTheRest", func(t *testing.T) {
		store, snaps := newStore(t), newSnapshots(t)
		var folded atomic.Int32
		repo := &eventstore.Repository[account]{Store: store, Decoder: decoder(t), Apply: counting(&folded),
			Snapshots: &eventstore.Snapshots[account]{Store: snaps, Every: 4, OnError: func(id string, err error) { t.Error(err) }}}
		full := &eventstore.Repository[account]{Store: store, Decoder: decoder(t), Apply: apply}
		id := stream("acct")
		a := repo.New(id)
		a.Record(accountOpened{Owner: "ada"})
		if err := repo.Save(ctx, a); err != nil {
			t.Fatal(err)
		}
		for i := range 10 { // one deposit per save: snapshots at 4 and 8 events
			a, err := repo.Load(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			a.Record(deposited{Amount: float64(i + 1)})
			if err := repo.Save(ctx, a); err != nil {
				t.Fatal(err)
			}
		}
		snap, ok, err := snaps.LoadSnapshot(ctx, id)
		if err != nil || !ok || snap.Version != 8 || snap.SchemaVersion != 1 {
			t.Fatalf("snapshot %+v %v %v, want one at version 8 (every 4 events), schema 1", snap, ok, err)
		}
		if recs, err := store.Load(ctx, id); err != nil || len(recs) < 8 || snap.EventID != recs[7].Envelope.ID || snap.EventID == "" {
			t.Fatalf("snapshot's event id %q, want the id of the stream's event at version 8 (%v)", snap.EventID, err)
		}
		folded.Store(0)
		got, err := repo.Load(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		want, err := full.Load(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != want.State || got.Version != want.Version || got.Version != 11 {
			t.Fatalf("from the snapshot: %+v at %d; full replay: %+v at %d", got.State, got.Version, want.State, want.Version)
		}
		if n := folded.Load(); n != 3 {
			t.Fatalf("folded %d events on load, want 3 (versions 9-11 after the snapshot at 8)", n)
		}
		// A stale aggregate loaded from the snapshot still conflicts.
		x, _ := repo.Load(ctx, id)
		y, _ := repo.Load(ctx, id)
		x.Record(deposited{Amount: 1})
		y.Record(deposited{Amount: 1})
		if err := repo.Save(ctx, x); err != nil {
			t.Fatal(err)
		}
		if err := repo.Save(ctx, y); !errors.Is(err, eventstore.ErrConcurrencyConflict) {
			t.Fatalf("stale save after a snapshot load: %v", err)
		}
	})

	t.Run("AggregateDecides", func(t *testing.T) {
		store, snaps := newStore(t), newSnapshots(t)
		repo := &eventstore.Repository[account]{Store: store, Decoder: decoder(t), Apply: apply,
			Snapshots: &eventstore.Snapshots[account]{Store: snaps, When: func(a account, _ int) bool { return a.Balance >= 100 }}}
		id := stream("acct")
		a := repo.New(id)
		a.Record(accountOpened{Owner: "ada"}, deposited{Amount: 50})
		_ = repo.Save(ctx, a)
		if _, ok, _ := snaps.LoadSnapshot(ctx, id); ok {
			t.Fatal("a snapshot before the aggregate asked for one")
		}
		a.Record(deposited{Amount: 50})
		_ = repo.Save(ctx, a)
		if s, ok, _ := snaps.LoadSnapshot(ctx, id); !ok || s.Version != 3 {
			t.Fatalf("snapshot %+v %v, want one at version 3, when the balance reached 100", s, ok)
		}
	})

	t.Run("OtherSchemaVersionIsIgnored", func(t *testing.T) {
		store, snaps := newStore(t), newSnapshots(t)
		id := stream("acct")
		if err := store.Append(ctx, id, 0, accountOpened{Owner: "ada"}, deposited{Amount: 5}); err != nil {
			t.Fatal(err)
		}
		// A snapshot written by older code whose state had another shape:
		// decoded as today's account it would read Balance 0.
		old := eventstore.Snapshot{StreamID: id, Version: 2, SchemaVersion: 1, Data: []byte(`{"Owner":"ada","Cents":500,"Events":2}`), Time: time.Now()}
		if err := snaps.SaveSnapshot(ctx, old); err != nil {
			t.Fatal(err)
		}
		var folded atomic.Int32
		repo := &eventstore.Repository[account]{Store: store, Decoder: decoder(t), Apply: counting(&folded),
			Snapshots: &eventstore.Snapshots[account]{Store: snaps, Every: 1, SchemaVersion: 2}}
		a, err := repo.Load(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if a.State != (account{Owner: "ada", Balance: 5, Events: 2}) || folded.Load() != 2 {
			t.Fatalf("loaded %+v folding %d events, want the full replay (balance 5, 2 events)", a.State, folded.Load())
		}
		a.Record(deposited{Amount: 1})
		if err := repo.Save(ctx, a); err != nil {
			t.Fatal(err)
		}
		if s, _, _ := snaps.LoadSnapshot(ctx, id); s.SchemaVersion != 2 || s.Version != 3 {
			t.Fatalf("after a save: snapshot %+v, want schema 2 at version 3 replacing the old one", s)
		}
		// An undecodable snapshot is ignored too, and reported.
		recs, err := store.Load(ctx, id)
		if err != nil || len(recs) != 3 {
			t.Fatalf("stream: %d records, %v", len(recs), err)
		}
		_ = snaps.SaveSnapshot(ctx, eventstore.Snapshot{StreamID: id, Version: 3, EventID: recs[2].Envelope.ID, SchemaVersion: 2, Data: []byte(`not json`), Time: time.Now()})
		var reported error
		repo.Snapshots.OnError = func(_ string, err error) { reported = err }
		folded.Store(0)
		if a, err := repo.Load(ctx, id); err != nil || a.State.Balance != 6 || folded.Load() != 3 || reported == nil {
			t.Fatalf("undecodable snapshot: %+v %v, folded %d, reported %v; want a full replay and a report", a, err, folded.Load(), reported)
		}
	})

	t.Run("SnapshotMustMatchItsStream", func(t *testing.T) {
		store, snaps := newStore(t), newSnapshots(t)
		id := stream("acct")
		if err := store.Append(ctx, id, 0, accountOpened{Owner: "ada"}, deposited{Amount: 5}, deposited{Amount: 7}); err != nil {
			t.Fatal(err)
		}
		recs, err := store.Load(ctx, id)
		if err != nil || len(recs) != 3 {
			t.Fatalf("stream: %d records, %v", len(recs), err)
		}
		var folded atomic.Int32
		var reported []error
		repo := &eventstore.Repository[account]{Store: store, Decoder: decoder(t), Apply: counting(&folded),
			Snapshots: &eventstore.Snapshots[account]{Store: snaps, OnError: func(_ string, err error) { reported = append(reported, err) }}}
		// The snapshots' states are marked (balance 1000) to tell whether
		// Load used them; the stream's true balance is 12.
		marked := func(version int, eventID string) eventstore.Snapshot {
			return eventstore.Snapshot{StreamID: id, Version: version, EventID: eventID, SchemaVersion: 1,
				Data: []byte(fmt.Sprintf(`{"Owner":"ada","Balance":1000,"Events":%d}`, version)), Time: time.Now()}
		}
		for _, c := range []struct {
			name string
			snap eventstore.Snapshot
		}{
			// The events were restored from an older backup, the snapshots were not.
			{"ahead of the stream", marked(5, "restored-away")},
			// The stream was written again after a restore: another event at version 2.
			{"another event at its version", marked(2, "not-"+recs[1].Envelope.ID)},
			// Taken before snapshots kept their last event's id: cannot be checked.
			{"without an event id", marked(2, "")},
		} {
			if _, err := store.Load(ctx, id); err != nil {
				t.Fatal(err)
			}
			// Stores keep the highest version of a schema: start afresh.
			_ = snaps.SaveSnapshot(ctx, eventstore.Snapshot{StreamID: id, Version: 1, SchemaVersion: 99, Data: []byte(`{}`)})
			if err := snaps.SaveSnapshot(ctx, c.snap); err != nil {
				t.Fatal(err)
			}
			folded.Store(0)
			reported = nil
			a, err := repo.Load(ctx, id)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if a.State != (account{Owner: "ada", Balance: 12, Events: 3}) || a.Version != 3 || folded.Load() != 3 {
				t.Fatalf("%s: loaded %+v at %d folding %d events, want the full replay (balance 12, 3 events)", c.name, a.State, a.Version, folded.Load())
			}
			if c.snap.EventID == "" {
				continue // nothing to report: an old snapshot, replaced by the next one taken
			}
			if len(reported) != 1 || !errors.Is(reported[0], eventstore.ErrSnapshotMismatch) {
				t.Fatalf("%s: reported %v, want one error wrapping ErrSnapshotMismatch", c.name, reported)
			}
		}
		// The snapshot whose last event is the stream's at its version is used.
		_ = snaps.SaveSnapshot(ctx, eventstore.Snapshot{StreamID: id, Version: 1, SchemaVersion: 99, Data: []byte(`{}`)})
		if err := snaps.SaveSnapshot(ctx, marked(2, recs[1].Envelope.ID)); err != nil {
			t.Fatal(err)
		}
		folded.Store(0)
		reported = nil
		a, err := repo.Load(ctx, id)
		if err != nil || a.State.Balance != 1007 || a.Version != 3 || folded.Load() != 1 || reported != nil {
			t.Fatalf("matching snapshot: %+v %v, folded %d, reported %v; want the snapshot (balance 1000) plus version 3", a, err, folded.Load(), reported)
		}
	})
}
