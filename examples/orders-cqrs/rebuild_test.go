package main

import (
	"bytes"
	"context"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// TestRebuildSubcommandSwitchesALiveServer: with the events and the read
// model in PostgreSQL, `orders-cqrs rebuild` in another process rebuilds
// the read model from the events while a server keeps serving it; the
// server then reads the new table, with the same summaries. A restarted
// server continues from its checkpoint and applies nothing twice.
func TestRebuildSubcommandSwitchesALiveServer(t *testing.T) {
	usePostgres(t)
	s := isolate(t)
	base, _ := startApp(t, "memory.yaml")
	var ids []string
	for i := range 3 {
		id := "order-" + s + "-" + string(rune('a'+i))
		ids = append(ids, id)
		var r commandReply
		if st := request(t, "POST", base+"/orders", strings.Replace(aliceOrder, "%s", id, 1), nil, &r); st != http.StatusCreated {
			t.Fatalf("place %s: %d", id, st)
		}
	}
	if st := request(t, "POST", base+"/orders/"+ids[0]+"/pay", "", nil, nil); st != http.StatusOK {
		t.Fatalf("pay: %d", st)
	}
	read := func(base string) []Summary {
		t.Helper()
		var out []Summary
		for i, id := range ids {
			want := 1
			if i == 0 {
				want = 2
			}
			var sum Summary
			if st := request(t, "GET", base+"/orders/"+id+"?min_version="+string(rune('0'+want)), "", nil, &sum); st != http.StatusOK {
				t.Fatalf("GET %s: %d", id, st)
			}
			out = append(out, sum)
		}
		return out
	}
	before := read(base)

	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"rebuild", "--config", "memory.yaml"}, &stdout, &stderr); err != nil {
		t.Fatalf("rebuild: %v\n%s", err, stderr.String())
	}
	want := "readers moved from cqrs_summaries_" + s + "_v1 to cqrs_summaries_" + s + "_v2"
	if !strings.Contains(stdout.String(), want) {
		t.Fatalf("rebuild said %q, want %q", stdout.String(), want)
	}
	// The server had v1 in hand; v1 is gone, and it finds v2.
	if after := read(base); !reflect.DeepEqual(after, before) {
		t.Errorf("after the rebuild:\n%+v\nwant\n%+v", after, before)
	}

	// Another server on the same database starts from the checkpoint.
	base2, _ := startApp(t, "memory.yaml")
	if again := read(base2); !reflect.DeepEqual(again, before) {
		t.Errorf("a second server reads\n%+v\nwant\n%+v", again, before)
	}
}
