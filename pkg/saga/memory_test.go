package saga_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/switchyard-go/switchyard/pkg/saga"
	"github.com/switchyard-go/switchyard/pkg/saga/sagatest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestMemoryStore(t *testing.T) {
	sagatest.Run(t, "memory", func(*testing.T) saga.Store { return saga.NewMemory() })
}
