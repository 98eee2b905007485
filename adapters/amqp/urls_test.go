package amqp

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/pkg/broker"
)

func TestURLsValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // "" means valid
	}{
		{"several nodes", Config{URLs: []string{"amqp://a:5672/", "amqp://b:5672/"}}, ""},
		{"url and the same single urls", Config{URL: "amqp://a/", URLs: []string{"amqp://a/"}}, ""},
		{"both", Config{URL: "amqp://a/", URLs: []string{"amqp://b/"}}, "broker.amqp.urls: set together with url"},
		{"empty entry", Config{URLs: []string{"amqp://a/", ""}}, "broker.amqp.urls[1]: empty"},
		{"not a url", Config{URLs: []string{"amqp://a/", "http://b/"}}, `broker.amqp.urls[1]: "http://b/" is not an amqp://`},
		{"repeated", Config{URLs: []string{"amqp://a/", "amqp://a/"}}, "broker.amqp.urls[1]: \"amqp://a/\" repeats urls[0]"},
		{"tls needs amqps", Config{URLs: []string{"amqps://a/", "amqp://b/"}, TLS: TLSConfig{Enabled: true}}, "broker.amqp.urls[1]: \"amqp://b/\" uses amqp://"},
		{"password hidden", Config{URLs: []string{"amqp://u:secret@a/", "bad://u:secret@b/"}}, "xxxxx"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate: %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate: %v, want an error containing %q", err, tc.want)
			case err != nil && strings.Contains(err.Error(), "secret"):
				t.Fatalf("Validate prints a password: %v", err)
			}
		})
	}
	c := Config{URLs: []string{"amqp://u:pw@a/", "amqp://b/"}}
	c.setDefaults()
	if c.URL != "" {
		t.Errorf("setDefaults with urls set url to %q, want it left empty", c.URL)
	}
	if got, want := c.RedactedURL(), "amqp://u:xxxxx@a/,amqp://b/"; got != want {
		t.Errorf("RedactedURL = %q, want %q", got, want)
	}
}

// TestURLsSkipANodeThatIsDown: with the first of two URLs refusing
// connections (a node that is down), New connects through the second and
// the broker works; the link keeps to the node that answered.
func TestURLsSkipANodeThatIsDown(t *testing.T) {
	e := newEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "amqp://guest:guest@" + ln.Addr().String() + "/"
	_ = ln.Close() // nothing listens there now: connections are refused
	b := e.broker(func(c *Config) { c.URL, c.URLs = "", []string{dead, e.url} })
	if b.pubLink.node != 1 || b.subLink.node != 1 {
		t.Fatalf("links on nodes %d and %d, want 1 (the live one)", b.pubLink.node, b.subLink.node)
	}
	topic := e.topic("g")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Provision(ctx, topic, "g"); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	_, ch := subscribe(t, b, "g", topic, broker.SubscriberOptions{})
	if err := b.Publisher().Publish(topic, newMessages(1, "via the second node")...); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	receive(t, ch, 1, 20*time.Second)[0].Ack()
}
