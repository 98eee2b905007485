package main

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/internal/brokertest"
)

// TestCommandsAcrossInstances: two instances of the example in one
// command group on the real RabbitMQ and Kafka, sharing the PostgreSQL
// event store. Every command goes through A's API; the ones B handles are
// still answered by A with what B decided: the version, or the rejection
// with its status (which needs the rejection's reason to travel), never
// 202 "pending".
func TestCommandsAcrossInstances(t *testing.T) {
	for _, tc := range []struct {
		name, file, envKey string
		addr               func(testing.TB) string
	}{
		{"rabbitmq", "rabbitmq.yaml", "SWITCHYARD_BROKER_AMQP_URL", brokertest.AMQPURL},
		{"kafka", "kafka.yaml", "SWITCHYARD_BROKER_KAFKA_BROKERS", brokertest.KafkaBrokers},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(tc.envKey, tc.addr(t))
			usePostgres(t)
			s := isolate(t)
			baseA, a := startApp(t, tc.file)
			_, b := startApp(t, tc.file)
			handled := func(x *app) int64 { return x.svc.Stats().Handled }

			type step struct {
				name, method, path, body string
				status                   int
				version                  int    // of a success
				why                      string // of a refusal
			}
			steps := func(id string) []step {
				return []step{
					{"place", "POST", "/orders", strings.Replace(aliceOrder, "%s", id, 1), http.StatusCreated, 1, ""},
					{"pay", "POST", "/orders/" + id + "/pay", "", http.StatusOK, 2, ""},
					{"pay twice", "POST", "/orders/" + id + "/pay", "", http.StatusConflict, 0, "can't pay twice"},
					{"ship an unknown order", "POST", "/orders/unknown-" + id + "/ship", "", http.StatusNotFound, 0, "no such order"},
					{"place an invalid order", "POST", "/orders", `{"order_id": "invalid-` + id + `", "customer_id": "bob", "items": []}`, http.StatusUnprocessableEntity, 0, "at least one item"},
				}
			}
			onB := map[string]bool{}
			took := map[string][]time.Duration{} // by the instance that handled
			var sent int64
			// Which instance takes a command is the broker's choice (round
			// robin on RabbitMQ, the key's partition on Kafka): send orders
			// until every kind of answer came from B.
			for i := 0; len(onB) < len(steps("")) && i < 40; i++ {
				for _, st := range steps(fmt.Sprintf("order-%s-%d", s, i)) {
					before := handled(b)
					var reply struct {
						commandReply
						Error string `json:"error"`
					}
					begun := time.Now()
					got := request(t, st.method, baseA+st.path, st.body, nil, &reply)
					answered := time.Since(begun)
					sent++
					// Counted once acked, just after the answer was sent.
					deadline := time.Now().Add(30 * time.Second)
					for handled(a)+handled(b) < sent {
						if time.Now().After(deadline) {
							t.Fatalf("%d commands handled by A and B, want %d", handled(a)+handled(b), sent)
						}
						time.Sleep(5 * time.Millisecond)
					}
					where := "A"
					if handled(b) > before {
						where = "B"
						onB[st.name] = true
					}
					took[where] = append(took[where], answered)
					if got != st.status || reply.Version != st.version || !strings.Contains(reply.Error, st.why) {
						t.Fatalf("%s (handled on %s, %s): %d %+v, want %d, version %d, saying %q", st.name, where, answered, got, reply, st.status, st.version, st.why)
					}
				}
			}
			if len(onB) < len(steps("")) {
				t.Fatalf("B handled only %v of the commands sent through A", onB)
			}
			t.Logf("answer through A's API, median: handled on A %s (%d), on B %s (%d)",
				median(took["A"]), len(took["A"]), median(took["B"]), len(took["B"]))
		})
	}
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return ds[len(ds)/2]
}
