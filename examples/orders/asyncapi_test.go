package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/switchyard-go/switchyard/config"
	"github.com/switchyard-go/switchyard/internal/asyncapitest"
	"github.com/switchyard-go/switchyard/pkg/asyncapi"
	"github.com/switchyard-go/switchyard/pkg/graph"
)

var update = flag.Bool("update", false, "rewrite testdata/asyncapi.*.json from the example")

// brokerConfigs are the example's configuration files, each giving one
// golden AsyncAPI document testdata/asyncapi.<name>.json.
var brokerConfigs = []string{"memory", "kafka", "rabbitmq"}

func goldenPath(name string) string { return filepath.Join("testdata", "asyncapi."+name+".json") }

// TestAsyncAPIGolden writes the example's AsyncAPI document the way an
// operator does (orders --write-topology, then switchyard graph --format
// asyncapi with the example's configuration) and compares it with the
// committed one. Rewrite them with
//
//	go test ./examples/orders -run TestAsyncAPIGolden -update
func TestAsyncAPIGolden(t *testing.T) {
	var topology bytes.Buffer
	if err := run(context.Background(), []string{"--write-topology", "-"}, &topology, io.Discard); err != nil {
		t.Fatal(err)
	}
	g, err := graph.ReadJSON(&topology)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range brokerConfigs {
		t.Run(name, func(t *testing.T) {
			cfg, err := config.Load(name + ".yaml")
			if err != nil {
				t.Fatal(err)
			}
			doc, err := asyncapi.Generate(g, cfg.AsyncAPI(""))
			if err != nil {
				t.Fatal(err)
			}
			if *update {
				if err := os.WriteFile(goldenPath(name), doc, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(goldenPath(name))
			if err != nil {
				t.Fatalf("%v (write it with -update)", err)
			}
			if !bytes.Equal(doc, want) {
				t.Fatalf("the AsyncAPI document of the example changed; if that is intended, rewrite %s with -update\ngot:\n%s", goldenPath(name), doc)
			}
		})
	}
}

// TestAsyncAPIGoldenIsValid has the official AsyncAPI parser read the
// committed documents: zero errors.
func TestAsyncAPIGoldenIsValid(t *testing.T) {
	docs := map[string][]byte{}
	for _, name := range brokerConfigs {
		doc, err := os.ReadFile(goldenPath(name))
		if err != nil {
			t.Fatal(err)
		}
		docs[name] = doc
	}
	for name, r := range asyncapitest.Validate(t, docs) {
		for _, d := range r.Errors {
			t.Errorf("%s: parser error %s at %s: %s", goldenPath(name), d.Code, d.Path, d.Message)
		}
		for _, d := range r.Warnings {
			t.Logf("%s: parser warning %s at %s: %s", goldenPath(name), d.Code, d.Path, d.Message)
		}
	}
}
