package postgres_test

import (
	"context"
	"testing"

	"github.com/switchyard-go/switchyard/adapters/postgres"
	"github.com/switchyard-go/switchyard/pkg/saga"
	"github.com/switchyard-go/switchyard/pkg/saga/sagatest"
	"github.com/switchyard-go/switchyard/pkg/schedule"
	"github.com/switchyard-go/switchyard/pkg/schedule/scheduletest"
)

func TestSagaStore(t *testing.T) {
	pool := newPool(t)
	table := unique("saga")
	sagatest.Run(t, table, func(t *testing.T) saga.Store {
		s, err := postgres.NewSagaStore(pool, table)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestScheduleStore(t *testing.T) {
	pool := newPool(t)
	scheduletest.Run(t, func(t *testing.T) schedule.Store {
		s, err := postgres.NewSchedule(pool, unique("sched"))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestStoreTableNamesValidated(t *testing.T) {
	if _, err := postgres.NewSagaStore(nil, "bad name;"); err == nil {
		t.Error("NewSagaStore accepted a table name with a space and a semicolon")
	}
	if _, err := postgres.NewSchedule(nil, "x-y"); err == nil {
		t.Error("NewSchedule accepted a table name with a dash")
	}
}
