package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pkg/service"
)

// TestStoredEventsArePublishedThroughTheOutbox: with outbox.store:
// postgres, every event the commands store reaches the broker too, with
// the stored id, for services that react to orders.
func TestStoredEventsArePublishedThroughTheOutbox(t *testing.T) {
	usePostgres(t)
	s := isolate(t)
	t.Setenv("SWITCHYARD_OUTBOX_STORE", "postgres")
	t.Setenv("SWITCHYARD_OUTBOX_TABLE", "cqrs_outbox_"+s)
	t.Setenv("SWITCHYARD_OUTBOX_POLL_INTERVAL", "20ms")
	t.Cleanup(func() { dropTable(t, "cqrs_outbox_"+s) }) // after the app stopped
	got := make(chan string, 10)
	base, _ := startApp(t, "", func(a *app) {
		for _, err := range []error{
			service.Handle(a.svc, "test.placed", func(_ context.Context, e OrderPlaced) error { got <- "placed " + e.OrderID; return nil }, service.Group("test-"+s)),
			service.Handle(a.svc, "test.paid", func(_ context.Context, e OrderPaid) error { got <- "paid " + e.OrderID; return nil }, service.Group("test-"+s)),
		} {
			if err != nil {
				t.Fatal(err)
			}
		}
	})
	id := "order-" + s
	if st := request(t, "POST", base+"/orders", strings.Replace(aliceOrder, "%s", id, 1), nil, nil); st != http.StatusCreated {
		t.Fatalf("place: %d", st)
	}
	if st := request(t, "POST", base+"/orders/"+id+"/pay", "", nil, nil); st != http.StatusOK {
		t.Fatalf("pay: %d", st)
	}
	for _, want := range []string{"placed " + id, "paid " + id} {
		select {
		case e := <-got:
			if e != want {
				t.Errorf("received %q, want %q", e, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%q not published within 30s", want)
		}
	}
}
