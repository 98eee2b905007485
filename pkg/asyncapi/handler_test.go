package asyncapi_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/switchyard-go/switchyard/pkg/asyncapi"
)

func TestHandler(t *testing.T) {
	doc, err := asyncapi.Generate(flow(t), kafkaConfig)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(asyncapi.Handler(doc))
	defer srv.Close()

	res, err := http.Get(srv.URL + "/asyncapi.json")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/json" || string(body) != string(doc) {
		t.Fatalf("GET: %d %q, body equal: %v", res.StatusCode, res.Header.Get("Content-Type"), string(body) == string(doc))
	}
	res, err = http.Post(srv.URL+"/asyncapi.json", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, HEAD" {
		t.Fatalf("POST: %d, Allow %q", res.StatusCode, res.Header.Get("Allow"))
	}
}

func TestHandlerCopiesDocument(t *testing.T) {
	doc := []byte(`{"asyncapi":"3.0.0"}`)
	h := asyncapi.Handler(doc)
	doc[2] = 'X'
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/asyncapi.json", nil))
	if got := rec.Body.String(); got != `{"asyncapi":"3.0.0"}` {
		t.Fatalf("served %s: the caller's later change leaked in", got)
	}
}
