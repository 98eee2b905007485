package config

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// A file alone turns the operations server on: ServiceOptions starts it
// with the service.
func TestHTTPFromTheFile(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := Parse([]byte("http: {addr: \""+addr+"\"}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, svc := memoryService(t, c, c.serviceOptions(io.Discard)...)
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-svc.Ready()
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": `"ready": true`, "/metrics": "go_goroutines"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("%s: %d %s", path, resp.StatusCode, body)
		}
	}
}
