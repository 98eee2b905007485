package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/switchyard-go/switchyard/pkg/graph"
	"github.com/switchyard-go/switchyard/pkg/middleware"
)

func TestGraphAsyncAPI(t *testing.T) {
	t.Setenv(envConfig, "")
	g := graph.Build([]middleware.Info{
		{Name: "h1", Group: "g1", Topic: "A", EventType: "A", Publishes: []string{"B"}},
	}).WithEvents(graph.Event{Name: "A", Version: 1, Topic: "A", Keyed: true, Schema: []byte(`{"type":"object"}`)})
	var buf bytes.Buffer
	if err := graph.WriteJSON(&buf, g); err != nil {
		t.Fatal(err)
	}
	topology := writeFile(t, "topology.json", buf.String())

	tests := []struct {
		name, config string
		want, not    []string
	}{
		{"memory", "", []string{`"asyncapi": "3.0.0"`, `"version": "0.0.0"`}, []string{`"servers"`, `"bindings"`}},
		{"kafka", "service: {name: shop}\nbroker:\n  type: kafka\n  kafka: {brokers: [k1:9092, k2:9092], partitions: 6, replication_factor: 3}\n",
			[]string{`"title": "shop"`, `"host": "k2:9092"`, `"kafka-1"`, `"partitions": 6`, `"replicas": 3`, `"groupId"`}, nil},
		{"amqp", "broker:\n  type: amqp\n  amqp: {url: \"amqps://user:s3cret@rabbit:5671/prod\", exchange_prefix: ex., queue_prefix: qu.}\n",
			[]string{`"protocol": "amqps"`, `"host": "rabbit:5671"`, `"pathname": "/prod"`, `"name": "ex.A"`, `"name": "qu.A.g1"`, `"vhost": "prod"`},
			[]string{"s3cret", "user"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"graph", "--from", topology, "--format", "asyncapi"}
			if tt.config != "" {
				args = append(args, "--config", writeFile(t, "config.yaml", tt.config))
			}
			r := cli(t, "", args...)
			mustOK(t, r)
			var doc map[string]any
			if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, r.stdout)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("document lacks %s:\n%s", w, r.stdout)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(r.stdout, n) {
					t.Errorf("document has %s:\n%s", n, r.stdout)
				}
			}
		})
	}
	r := cli(t, "", "graph", "--from", topology, "--format", "asyncapi", "--api-version", "2.1.0")
	mustOK(t, r)
	if !strings.Contains(r.stdout, `"version": "2.1.0"`) {
		t.Errorf("--api-version not in info:\n%s", r.stdout)
	}
	r = cli(t, "", "--json", "graph", "--from", topology, "--format", "asyncapi")
	mustOK(t, r)
	var res struct {
		Format string
		Graph  struct{ AsyncAPI string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || res.Format != "asyncapi" || res.Graph.AsyncAPI != "3.0.0" {
		t.Errorf("--json: %v %+v\n%s", err, res, r.stdout)
	}
	if r := cli(t, "", "graph", "--from", topology, "--format", "asyncapi", "--config", writeFile(t, "bad.yaml", "broker: {type: nats}\n")); r.code != exitUsage {
		t.Errorf("invalid config: exit %d, want %d", r.code, exitUsage)
	}
}
