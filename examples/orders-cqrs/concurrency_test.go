package main

import (
	"net/http"
	"strings"
	"sync"
	"testing"
)

// TestConcurrentPaymentsFromTwoInstances: two instances share the
// PostgreSQL event store (each on its own broker, so nothing serializes
// their commands); payments of one order race through both. Exactly one
// pays; every other one decided again on the paid order and was refused.
func TestConcurrentPaymentsFromTwoInstances(t *testing.T) {
	usePostgres(t)
	s := isolate(t)
	a, _ := startApp(t, "memory.yaml")
	b, _ := startApp(t, "memory.yaml")
	id := "order-" + s
	if st := request(t, "POST", a+"/orders", strings.Replace(aliceOrder, "%s", id, 1), nil, nil); st != http.StatusCreated {
		t.Fatalf("place: %d", st)
	}
	const payers = 12
	statuses := make(chan int, payers)
	var wg sync.WaitGroup
	for i := range payers {
		base := a
		if i%2 == 1 {
			base = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var e apiError
			st := request(t, "POST", base+"/orders/"+id+"/pay", "", nil, &e)
			if st == http.StatusConflict && !strings.Contains(e.Error, "can't pay twice") {
				t.Errorf("409 saying %q, want can't pay twice", e.Error)
			}
			statuses <- st
		}()
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for st := range statuses {
		count[st]++
	}
	if count[http.StatusOK] != 1 || count[http.StatusConflict] != payers-1 {
		t.Fatalf("statuses %v, want one 200 and %d 409", count, payers-1)
	}
	var evs []storedEvent
	request(t, "GET", b+"/orders/"+id+"/events", "", nil, &evs)
	if len(evs) != 2 || evs[1].Type != "orders.order_paid" {
		t.Errorf("stream %+v, want OrderPlaced then one OrderPaid", evs)
	}
}
