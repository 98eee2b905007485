package saga_test

import (
	"testing"

	"github.com/switchyard-go/switchyard/pkg/saga"
	"github.com/switchyard-go/switchyard/pkg/saga/sagatest"
)

func TestMemoryStore(t *testing.T) {
	sagatest.Run(t, "memory", func(*testing.T) saga.Store { return saga.NewMemory() })
}
