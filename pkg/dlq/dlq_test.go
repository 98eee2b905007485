package dlq_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/dlq"
	"github.com/switchyard-go/switchyard/pkg/header"
)

func TestList(t *testing.T) {
	eachBroker(t, func(t *testing.T, b broker.Broker) {
		dl, origin := unique("inventory.dead_letter"), unique("orders")
		seed(t, b, dl, origin, "inventory")
		browseIDs(t, b, dl, broker.DeadLetterGroup, 4)
		c := dlq.New(b)
		ctx := context.Background()

		s, err := c.List(ctx, dl, dlq.Filter{}, false)
		if err != nil {
			t.Fatal(err)
		}
		counts := map[string]int{}
		for _, g := range s.Groups {
			counts[g.Handler+"/"+g.Group+"/"+g.Reason] = g.Count
		}
		want := map[string]int{"inventory.reserve/inventory/timeout": 2, "inventory.reserve/inventory/invalid_payload": 1, "inventory.release/inventory/timeout": 1}
		if s.Count != 4 || fmt.Sprint(counts) != fmt.Sprint(want) || s.Letters != nil {
			t.Fatalf("list: count %d, groups %v, %d letters; want 4, %v and none", s.Count, counts, len(s.Letters), want)
		}
		if g := s.Groups[0]; !g.Oldest.Equal(failedAt0) || !g.Newest.Equal(failedAt0.Add(3*time.Minute)) {
			t.Errorf("timeout/reserve oldest %s newest %s", g.Oldest, g.Newest)
		}

		for name, tc := range map[string]struct {
			f    dlq.Filter
			want []int
		}{
			"reason":  {dlq.Filter{Reasons: []string{"timeout"}}, []int{0, 2, 3}},
			"handler": {dlq.Filter{Handlers: []string{"inventory.release"}}, []int{2}},
			"type":    {dlq.Filter{Types: []string{"orders.order_placed"}}, []int{0, 1, 3}},
			"group":   {dlq.Filter{Groups: []string{"nobody"}}, nil},
			"time":    {dlq.Filter{Since: failedAt0.Add(time.Minute), Until: failedAt0.Add(3 * time.Minute)}, []int{1, 2}},
			"all":     {dlq.Filter{Reasons: []string{"timeout"}, Handlers: []string{"inventory.reserve"}, Groups: []string{"inventory"}}, []int{0, 3}},
		} {
			s, err := c.List(ctx, dl, tc.f, true)
			if err != nil {
				t.Fatal(err)
			}
			var got []int
			for _, l := range s.Letters {
				var i int
				fmt.Sscanf(l.ID[strings.LastIndex(l.ID, "-")+1:], "%d", &i)
				got = append(got, i)
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) || s.Count != len(tc.want) {
				t.Errorf("filter %s: %v (count %d), want %v", name, got, s.Count, tc.want)
			}
		}

		if _, err := c.List(ctx, dl, dlq.Filter{Since: failedAt0, Until: failedAt0}, false); !errors.Is(err, dlq.ErrInvalidOption) {
			t.Errorf("empty time range: %v, want ErrInvalidOption", err)
		}
		if got := browseIDs(t, b, dl, broker.DeadLetterGroup, 4); len(got) != 4 {
			t.Fatalf("list consumed dead letters: %d left", len(got))
		}
	})
}

func TestShow(t *testing.T) {
	eachBroker(t, func(t *testing.T, b broker.Broker) {
		dl, origin := unique("inventory.dead_letter"), unique("orders")
		ids := seed(t, b, dl, origin, "inventory")
		browseIDs(t, b, dl, broker.DeadLetterGroup, 4)
		c := dlq.New(b)
		l, err := c.Show(context.Background(), dl, ids[1])
		if err != nil {
			t.Fatal(err)
		}
		if l.ID != ids[1] || l.Topic != dl || l.Reason != "invalid_payload" || l.Handler != "inventory.reserve" || l.Group != "inventory" ||
			l.OriginalTopic != origin || l.Attempts != 3 || !strings.Contains(l.Error, "boom 1") || l.Type != "orders.order_placed" ||
			l.Key != "order-1" || !l.FailedAt.Equal(failedAt0.Add(time.Minute)) || string(l.Payload) != `{"order_id":"1"}` ||
			l.Headers[header.CorrelationID] != "corr-"+ids[1] {
			t.Fatalf("shown %+v", l)
		}
		if _, err := c.Show(context.Background(), dl, "nope"); !errors.Is(err, dlq.ErrNotFound) {
			t.Fatalf("unknown id: %v, want ErrNotFound", err)
		}
	})
}

func TestReplay(t *testing.T) {
	eachBroker(t, func(t *testing.T, b broker.Broker) {
		dl, origin := unique("inventory.dead_letter"), unique("orders")
		ids := seed(t, b, dl, origin, "inventory")
		browseIDs(t, b, dl, broker.DeadLetterGroup, 4)
		c := dlq.New(b)
		ctx := context.Background()
		f := dlq.Filter{Reasons: []string{"timeout"}, Handlers: []string{"inventory.reserve"}}

		dry, err := c.Replay(ctx, dl, dlq.DrainOptions{Filter: f, DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		if !dry.DryRun || dry.Count != 2 || dry.NotMatching != 2 || len(dry.Letters) != 2 {
			t.Fatalf("dry run: %+v", dry)
		}
		if got := browseIDs(t, b, dl, broker.DeadLetterGroup, 4); len(got) != 4 {
			t.Fatalf("dry run changed the topic: %d left", len(got))
		}

		var mu sync.Mutex
		var progress []dlq.Progress
		const rate = 20 // per second: two replays at least 50ms apart
		start := time.Now()
		res, err := c.Replay(ctx, dl, dlq.DrainOptions{Filter: f, Rate: rate, Idle: 3 * time.Second,
			Progress: func(p dlq.Progress) { mu.Lock(); progress = append(progress, p); mu.Unlock() }})
		if err != nil {
			t.Fatal(err)
		}
		if elapsed := time.Since(start); elapsed < time.Second/rate {
			t.Errorf("two replays at %d/s took %s", rate, elapsed)
		}
		if res.Count != 2 || res.NotReached != 0 {
			t.Fatalf("replay: %+v", res)
		}
		mu.Lock()
		if fmt.Sprint(progress) != "[{1 2} {2 2}]" {
			t.Errorf("progress %v, want [{1 2} {2 2}]", progress)
		}
		mu.Unlock()

		// The replays are on the original topic, for the failing group.
		want := []string{ids[0], ids[3]}
		if got := browseIDs(t, b, origin, "inventory", 2); !slices.Equal(got, want) {
			t.Fatalf("replayed to %s: %q, want %q", origin, got, want)
		}
		var replayed []*message.Message
		_ = b.(broker.Browser).Browse(ctx, origin, "inventory", func(m *message.Message) bool { replayed = append(replayed, m); return true })
		for _, m := range replayed {
			md := m.Metadata
			if md.Get(header.ReplayCount) != "1" || md.Get(header.RetryTarget) != "inventory" || md.Get(header.CorrelationID) != "corr-"+m.UUID {
				t.Errorf("%s: replaycount %q, retry group %q, correlation %q", m.UUID, md.Get(header.ReplayCount), md.Get(header.RetryTarget), md.Get(header.CorrelationID))
			}
			for k := range md {
				if strings.HasPrefix(k, "sy_dlq_") || k == header.Attempt {
					t.Errorf("%s: header %s left on the replay", m.UUID, k)
				}
			}
		}
		if got := browseIDs(t, b, dl, broker.DeadLetterGroup, 2); !slices.Equal(got, []string{ids[1], ids[2]}) {
			t.Fatalf("left on %s: %q, want %q", dl, got, []string{ids[1], ids[2]})
		}

		if _, err := c.Replay(ctx, dl, dlq.DrainOptions{Limit: -1, Rate: -2}); !errors.Is(err, dlq.ErrInvalidOption) ||
			!strings.Contains(err.Error(), "limit: -1") || !strings.Contains(err.Error(), "rate: -2") {
			t.Errorf("bad options: %v", err)
		}
	})
}

func TestPurge(t *testing.T) {
	eachBroker(t, func(t *testing.T, b broker.Broker) {
		dl, origin := unique("inventory.dead_letter"), unique("orders")
		ids := seed(t, b, dl, origin, "inventory")
		browseIDs(t, b, dl, broker.DeadLetterGroup, 4)
		c := dlq.New(b)
		ctx := context.Background()
		f := dlq.Filter{Types: []string{"orders.order_placed"}, Reasons: []string{"timeout"}}
		dry, err := c.Purge(ctx, dl, dlq.DrainOptions{Filter: f, DryRun: true})
		if err != nil || dry.Count != 2 {
			t.Fatalf("dry run: %+v, %v; want 2", dry, err)
		}
		res, err := c.Purge(ctx, dl, dlq.DrainOptions{Filter: f, Idle: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if res.Count != dry.Count || !slices.Equal(res.IDs, []string{ids[0], ids[3]}) {
			t.Fatalf("purged %+v, want %q", res, []string{ids[0], ids[3]})
		}
		if got := browseIDs(t, b, dl, broker.DeadLetterGroup, 2); !slices.Equal(got, []string{ids[1], ids[2]}) {
			t.Fatalf("left after purge: %q", got)
		}
		if n := len(browseIDs(t, b, origin, "inventory", 0)); n != 0 {
			t.Fatalf("purge published %d messages", n)
		}
		res, err = c.Purge(ctx, dl, dlq.DrainOptions{Idle: 3 * time.Second})
		if err != nil || res.Count != 2 {
			t.Fatalf("purge everything: %+v, %v", res, err)
		}
		if got := browseIDs(t, b, dl, broker.DeadLetterGroup, 0); len(got) != 0 {
			t.Fatalf("left after purging everything: %q", got)
		}
	})
}
