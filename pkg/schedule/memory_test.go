package schedule_test

import (
	"testing"

	"github.com/switchyard-go/switchyard/pkg/schedule"
	"github.com/switchyard-go/switchyard/pkg/schedule/scheduletest"
)

func TestMemoryStore(t *testing.T) {
	scheduletest.Run(t, func(*testing.T) schedule.Store { return schedule.NewMemory() })
}
