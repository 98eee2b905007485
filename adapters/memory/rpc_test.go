package memory_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/internal/rpctest"
	"github.com/switchyard-go/switchyard/pkg/broker"
)

var rpcSeq atomic.Int64

// Request-reply and batch publishing on the in-memory broker: every
// "instance" shares one broker, as every service of one process would.
func TestRequestReplyAndBatch(t *testing.T) {
	rpctest.Run(t, rpctest.Harness{
		Open: func(t *testing.T) broker.Broker {
			return sharedBroker(t)
		},
		Namespace: func(*testing.T) string { return fmt.Sprintf("rpc%d.", rpcSeq.Add(1)) },
		Wait:      10 * time.Second,
	})
}

var shared sync.Map // *testing.T -> *memory.Broker

// sharedBroker is one broker per test, closed when it ends.
func sharedBroker(t *testing.T) *memory.Broker {
	if b, ok := shared.Load(t); ok {
		return b.(*memory.Broker)
	}
	b := newBroker(t, memory.Config{})
	shared.Store(t, b)
	t.Cleanup(func() { shared.Delete(t) })
	return b
}
