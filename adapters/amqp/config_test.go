package amqp

import (
	"strings"
	"testing"
	"time"
)

func TestValidateNamesEveryBadField(t *testing.T) {
	cfg := Config{
		URL:                 "http://guest:s3cret@host/",
		QueueType:           "stream",
		Prefetch:            -1,
		PublishChannels:     5000,
		ConfirmTimeout:      -time.Second,
		ReconnectBackoff:    time.Second,
		MaxReconnectBackoff: time.Millisecond,
		NackDelay:           -1,
		DelayTiers:          []time.Duration{5 * time.Second, time.Second},
		TLS:                 TLSConfig{CertFile: "c.pem"},
		CloudEventsPrefix:   "ce-",
	}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("Validate accepted a bad config")
	}
	for _, field := range []string{
		"broker.amqp.url", "broker.amqp.queue_type", "broker.amqp.prefetch", "broker.amqp.publish_channels",
		"broker.amqp.confirm_timeout", "broker.amqp.max_reconnect_backoff", "broker.amqp.nack_delay",
		"broker.amqp.delay_tiers[1]", "broker.amqp.tls", `broker.amqp.cloudevents_prefix: "ce-", want "ce_" (default), "cloudEvents_" or "cloudEvents:"`,
	} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error does not name %s:\n%v", field, err)
		}
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error prints the password:\n%v", err)
	}
	if !strings.Contains(err.Error(), `"stream"`) {
		t.Errorf("error does not quote the bad value:\n%v", err)
	}
}

func TestZeroConfigIsValidAndDefaults(t *testing.T) {
	var cfg Config
	if err := cfg.Validate(); err != nil {
		t.Fatalf("zero config: %v", err)
	}
	cfg.setDefaults()
	if cfg.URL != DefaultURL || cfg.Prefetch != 100 || cfg.PublishChannels != 4 || cfg.QueueType != "classic" ||
		cfg.NackDelay != 100*time.Millisecond || cfg.MaxNackDelay != 5*time.Second || len(cfg.DelayTiers) != 5 ||
		cfg.CloudEventsPrefix != PrefixCE {
		t.Errorf("defaults: %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaulted config: %v", err)
	}
}

func TestTLSNeedsAMQPS(t *testing.T) {
	err := Config{URL: "amqp://127.0.0.1/", TLS: TLSConfig{Enabled: true}}.Validate()
	if err == nil || !strings.Contains(err.Error(), "broker.amqp.url") {
		t.Fatalf("TLS with amqp://: %v", err)
	}
	if err := (Config{URL: "amqps://127.0.0.1/", TLS: TLSConfig{Enabled: true, ServerName: "rabbit"}}).Validate(); err != nil {
		t.Fatalf("TLS with amqps://: %v", err)
	}
}

func TestRedactedURL(t *testing.T) {
	for in, want := range map[string]string{
		"amqp://guest:guest@127.0.0.1:5672/": "amqp://guest:xxxxx@127.0.0.1:5672/",
		"amqps://user:p%40ss@rabbit:5671/vh": "amqps://user:xxxxx@rabbit:5671/vh",
		"amqp://127.0.0.1/":                  "amqp://127.0.0.1/",
		"amqp://user@host/":                  "amqp://user@host/",
	} {
		if got := (Config{URL: in}).RedactedURL(); got != want {
			t.Errorf("RedactedURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestUsernamePasswordOverrideURL(t *testing.T) {
	cfg := Config{URL: "amqp://guest:guest@127.0.0.1/", Username: "svc", Password: "pw"}
	cfg.setDefaults()
	dc, err := cfg.dialConfig("publish")
	if err != nil {
		t.Fatal(err)
	}
	if len(dc.SASL) != 1 || !strings.Contains(dc.SASL[0].Response(), "svc") || !strings.Contains(dc.SASL[0].Response(), "pw") {
		t.Errorf("SASL does not use the configured credentials")
	}
}

func TestTierRoundsUp(t *testing.T) {
	b := &Broker{cfg: Config{DelayTiers: DefaultDelayTiers}}
	for in, want := range map[time.Duration]time.Duration{
		0: time.Second, 300 * time.Millisecond: time.Second, time.Second: time.Second,
		1001 * time.Millisecond: 5 * time.Second, time.Minute: 2 * time.Minute, time.Hour: 10 * time.Minute,
	} {
		if got := b.tier(in); got != want {
			t.Errorf("tier(%s) = %s, want %s", in, got, want)
		}
	}
	for d, want := range map[time.Duration]string{time.Second: "1s", 2 * time.Minute: "2m", time.Hour: "1h", 1500 * time.Millisecond: "1500ms"} {
		if got := tierName(d); got != want {
			t.Errorf("tierName(%s) = %q, want %q", d, got, want)
		}
	}
}
