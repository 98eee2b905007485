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
		DelayQueueType:      "stream",
		DeliveryLimit:       -2,
		QueueExpires:        500 * time.Millisecond,
		OrderedPrefetch:     70000,
		AuthMechanism:       "kerberos",
	}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("Validate accepted a bad config")
	}
	for _, field := range []string{
		"broker.amqp.url", "broker.amqp.queue_type", "broker.amqp.prefetch", "broker.amqp.publish_channels",
		"broker.amqp.confirm_timeout", "broker.amqp.max_reconnect_backoff", "broker.amqp.nack_delay",
		"broker.amqp.delay_tiers[1]", "broker.amqp.tls", `broker.amqp.cloudevents_prefix: "ce-", want "ce_" (default), "cloudEvents_" or "cloudEvents:"`,
		`broker.amqp.delay_queue_type: "stream", want "quorum" (default) or "classic"`,
		"broker.amqp.delivery_limit: -2, want 0 (default 100), a positive limit or -1 (none)",
		"broker.amqp.queue_expires: 500ms, want 0 (never) or a whole number of milliseconds >= 1s",
		"broker.amqp.ordered_prefetch: 70000", `broker.amqp.auth_mechanism: "kerberos", want "plain" (default) or "external"`,
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
	dc, err := cfg.dialConfig("publish", cfg.URL)
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

func TestExternalAuthNeedsAClientCertificateAndNoPassword(t *testing.T) {
	err := Config{URL: "amqp://h/", AuthMechanism: AuthExternal, Password: "p", Username: "u"}.Validate()
	for _, want := range []string{`broker.amqp.auth_mechanism: "external" needs tls.enabled and tls.cert_file`, "broker.amqp.password: set with auth_mechanism"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want it to contain %q", err, want)
		}
	}
	ok := Config{URL: "amqps://h/", AuthMechanism: AuthExternal, TLS: TLSConfig{Enabled: true, CertFile: "c.pem", KeyFile: "k.pem"}}
	if err := ok.Validate(); err != nil {
		t.Errorf("external with a client certificate: %v", err)
	}
}

func TestSecurityWarnings(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{"loopback plaintext", Config{URL: "amqp://guest:guest@127.0.0.1:5672/"}, nil},
		{"localhost plaintext", Config{URL: "amqp://u:p@localhost/"}, nil},
		{"ipv6 loopback", Config{URL: "amqp://u:p@[::1]:5672/"}, nil},
		{"remote plaintext", Config{URL: "amqp://u:p@rabbit.prod:5672/"}, []string{"credentials are sent in plain text", "rabbit.prod"}},
		{"remote tls", Config{URL: "amqps://u:p@rabbit.prod/", TLS: TLSConfig{Enabled: true}}, nil},
		{"skip verify", Config{URL: "amqps://u:p@rabbit.prod/", TLS: TLSConfig{Enabled: true, InsecureSkipVerify: true}}, []string{"insecure_skip_verify"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg.WithDefaults()
			got := strings.Join(cfg.securityWarnings(), "\n")
			if len(tc.want) == 0 && got != "" {
				t.Fatalf("warnings %q, want none", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("warnings %q, want one containing %q", got, w)
				}
			}
		})
	}
}

func TestGroupQueueArgs(t *testing.T) {
	q := Config{QueueType: QueueTypeQuorum, QueueExpires: time.Hour}.WithDefaults()
	args := q.groupQueueArgs("billing", false, "billing.dead_letter", 3)
	if args[deliveryLimitArg] != int64(DefaultDeliveryLimit) || args["x-dead-letter-exchange"] != "billing.dead_letter" ||
		args["x-dead-letter-strategy"] != "at-least-once" || args["x-overflow"] != "reject-publish" || args["x-expires"] != int64(3600000) {
		t.Errorf("quorum group queue args %v", args)
	}
	// The dead-letter group's queues: no limit (absent on 3.x, -1 on 4.x), no expiry, no DLX.
	for major, want := range map[int32]any{3: nil, 4: int64(-1)} {
		args := q.groupQueueArgs("switchyard-dlq", false, "", major)
		if args[deliveryLimitArg] != want || args["x-expires"] != nil || args["x-dead-letter-exchange"] != nil {
			t.Errorf("dead-letter queue args on %d.x: %v, want delivery limit %v, no expiry, no DLX", major, args, want)
		}
	}
	c := Config{}.WithDefaults()
	if args := c.groupQueueArgs("g", true, "", 4); args[deliveryLimitArg] != nil || args["x-single-active-consumer"] != true {
		t.Errorf("classic ordered queue args %v", args)
	}
}
