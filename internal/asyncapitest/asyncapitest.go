// Package asyncapitest validates AsyncAPI documents in tests with the
// official parser, @asyncapi/parser from npm, so that "a valid AsyncAPI 3.0
// document" is judged by the tool other teams load it with, not by our own
// reading of the spec.
//
// The parser is pinned by testdata/node/package-lock.json and installed by
// internal/nodetest (npm ci, cached per lock file): without Node.js or the
// npm registry a test skips, under CI=true it fails.
package asyncapitest

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/internal/nodetest"
)

// Diagnostic is one finding of the parser.
type Diagnostic struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Path    string `json:"path"`
}

// Result is what the parser found in one document.
type Result struct {
	File     string       `json:"file"`
	Errors   []Diagnostic `json:"errors"`
	Warnings []Diagnostic `json:"warnings"`
}

// parseTimeout bounds one run of the parser over the documents.
const parseTimeout = 2 * time.Minute

// Validate parses every document (by name) with @asyncapi/parser and
// returns its findings by name.
func Validate(t *testing.T, docs map[string][]byte) map[string]Result {
	t.Helper()
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("asyncapitest: cannot locate the node scripts")
	}
	node := nodetest.Install(t, filepath.Join(filepath.Dir(self), "testdata", "node"))
	dir := t.TempDir()
	var files []string
	byFile := map[string]string{}
	for name, doc := range docs {
		f := filepath.Join(dir, strconv.Itoa(len(files))+".json")
		if err := os.WriteFile(f, doc, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
		byFile[f] = name
	}
	p := node.Start(t, "validate.mjs", map[string]any{"files": files})
	out := map[string]Result{}
	for range files {
		var r Result
		p.Next(&r, parseTimeout)
		out[byFile[r.File]] = r
	}
	p.Wait(parseTimeout)
	return out
}
