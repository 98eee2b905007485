package eventstore_test

import (
	"testing"

	"github.com/switchyard-go/switchyard/pkg/eventstore"
	"github.com/switchyard-go/switchyard/pkg/eventstore/eventstoretest"
)

func TestMemoryConformance(t *testing.T) {
	eventstoretest.Run(t, func(*testing.T) eventstore.Store { return eventstore.NewMemory(eventstore.Encoder{Source: "test"}) })
}
