// Package eventstoretest is the conformance suite every
// [eventstore.Store] passes: round trip, version checks, one winner among
// concurrent appends, upcasting on load, envelopes that continue the
// correlation chain, and aggregates through a Repository.
//
//	func TestConformance(t *testing.T) {
//		eventstoretest.Run(t, func(t *testing.T) eventstore.Store { return newMyStore(t) })
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
}
