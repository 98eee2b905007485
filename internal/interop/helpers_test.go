package interop_test

import (
	"testing"

	"github.com/switchyard-go/switchyard/internal/nodetest"
)

// The shared events, brokers and service runner are in internal/interoptest.

// node installs the Node.js clients (or skips) once per test binary.
func node(t *testing.T) *nodetest.Node {
	t.Helper()
	return nodetest.Install(t, "testdata/node")
}
