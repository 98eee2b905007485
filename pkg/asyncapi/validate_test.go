package asyncapi_test

import (
	"strings"
	"testing"

	"github.com/switchyard-go/switchyard/internal/asyncapitest"
	"github.com/switchyard-go/switchyard/pkg/asyncapi"
)

// TestParserAcceptsDocuments has the official AsyncAPI parser judge what
// Generate writes for each broker layout, and a broken document to prove
// that the judge can say no.
func TestParserAcceptsDocuments(t *testing.T) {
	docs := map[string][]byte{}
	for name, c := range map[string]asyncapi.Config{"memory": {}, "kafka": kafkaConfig, "amqp": amqpConfig} {
		doc, err := asyncapi.Generate(flow(t), c)
		if err != nil {
			t.Fatal(err)
		}
		docs[name] = doc
	}
	// Broken the way a generator bug would break it: a send operation
	// pointing at a message its channel does not carry.
	broken := strings.Replace(string(docs["kafka"]),
		`"$ref": "#/channels/inventory/messages/orders.inventory_reserved"`,
		`"$ref": "#/channels/inventory/messages/audit.noted"`, 1)
	if broken == string(docs["kafka"]) {
		t.Fatal("the broken document is not broken: the reference to break is gone")
	}
	docs["broken"] = []byte(broken)
	// A message that exists, but on another channel than the operation's.
	wrongChannel := strings.Replace(string(docs["kafka"]),
		`"$ref": "#/channels/inventory/messages/orders.inventory_reserved"`,
		`"$ref": "#/channels/audit.noted/messages/audit.noted"`, 1)
	docs["wrong-channel"] = []byte(wrongChannel)

	results := asyncapitest.Validate(t, docs)
	for _, name := range []string{"memory", "kafka", "amqp"} {
		r := results[name]
		for _, d := range r.Errors {
			t.Errorf("%s: parser error %s at %s: %s", name, d.Code, d.Path, d.Message)
		}
		for _, d := range r.Warnings {
			t.Logf("%s: parser warning %s at %s: %s", name, d.Code, d.Path, d.Message)
		}
	}
	for _, name := range []string{"broken", "wrong-channel"} {
		for _, d := range results[name].Errors {
			t.Logf("%s: parser error %s at %s: %s", name, d.Code, d.Path, d.Message)
		}
		if len(results[name].Errors) == 0 {
			t.Errorf("the parser found no error in the %s document: the check cannot fail", name)
		}
	}
}
