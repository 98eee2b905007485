package kafka

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

func TestConfigDefaults(t *testing.T) {
	var c Config
	c.setDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	if c.Partitions != 3 || c.RetryPartitions != 1 || c.ReplicationFactor != -1 || c.Acks != AcksAll || c.InitialOffset != OffsetEarliest ||
		c.Prefetch != 256 || c.NackBackoff != 100*time.Millisecond || c.MaxNackBackoff != 5*time.Second ||
		len(c.Brokers) != 1 || c.Brokers[0] != "127.0.0.1:9092" || len(c.DelayTiers) != 5 || c.Compression != CompressionNone {
		t.Fatalf("unexpected defaults: %+v", c)
	}
}

func TestConfigValidateNamesEveryField(t *testing.T) {
	c := Config{
		Brokers:           []string{"nohost"},
		Partitions:        -1,
		RetryPartitions:   -3,
		ReplicationFactor: -2,
		InitialOffset:     "middle",
		Acks:              "some",
		Compression:       "brotli",
		Provision:         "sometimes",
		InstanceID:        "pod 1",
		Prefetch:          -5,
		NackBackoff:       time.Second,
		MaxNackBackoff:    time.Millisecond,
		DelayTiers:        []time.Duration{5 * time.Second, time.Second},
		TLS:               TLSConfig{CertFile: "c.pem"},
		SASL:              SASLConfig{Mechanism: "gssapi", Username: "u", Password: "hunter2"},
	}
	c.setDefaults()
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate accepted an invalid config")
	}
	msg := err.Error()
	for _, want := range []string{
		`broker.kafka.brokers[0]: "nohost"`,
		"broker.kafka.partitions: -1",
		"broker.kafka.retry_partitions: -3, want >= 1",
		"broker.kafka.replication_factor: -2",
		`broker.kafka.initial_offset: "middle"`,
		`broker.kafka.acks: "some"`,
		`broker.kafka.provision: "sometimes", want "create", "verify" or "none"`,
		`broker.kafka.instance_id: "pod 1"`,
		`broker.kafka.compression: "brotli", want one of none, gzip, snappy, lz4, zstd`,
		"broker.kafka.prefetch: -5",
		"broker.kafka.max_nack_backoff: 1ms",
		"broker.kafka.delay_tiers[1]: 1s",
		"broker.kafka.tls.enabled",
		"broker.kafka.tls.cert_file",
		`broker.kafka.sasl.mechanism: "gssapi"`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("Validate error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "hunter2") {
		t.Errorf("Validate error prints the password:\n%s", msg)
	}
}

func TestConfigCompressionValues(t *testing.T) {
	for _, v := range Compressions {
		c := Config{Compression: v}
		c.setDefaults()
		if err := c.Validate(); err != nil {
			t.Errorf("compression %q rejected: %v", v, err)
		}
	}
	for _, v := range []string{"None", "GZIP", "snapy", "lz4 "} {
		c := Config{Compression: v}
		c.setDefaults()
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "broker.kafka.compression") {
			t.Errorf("compression %q: got %v, want a broker.kafka.compression error", v, err)
		}
	}
}

func TestConfigSASLNeedsCredentials(t *testing.T) {
	c := Config{SASL: SASLConfig{Mechanism: SASLScramSHA512}}
	c.setDefaults()
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "broker.kafka.sasl.username") || !strings.Contains(err.Error(), "broker.kafka.sasl.password") {
		t.Fatalf("got %v, want username and password required", err)
	}
}

func TestConfigNeverPrintsPassword(t *testing.T) {
	c := Config{SASL: SASLConfig{Mechanism: SASLPlain, Username: "u", Password: "hunter2"}}
	for _, s := range []string{fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprint(c.SASL)} {
		if strings.Contains(s, "hunter2") {
			t.Errorf("password printed: %s", s)
		}
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	_, err := New(context.Background(), Config{Acks: "none"}, nil)
	if err == nil || !strings.Contains(err.Error(), "broker.kafka.acks") {
		t.Fatalf("New: got %v, want broker.kafka.acks error", err)
	}
}

func TestDelayTier(t *testing.T) {
	b := &Broker{cfg: Config{}}
	b.cfg.setDefaults()
	for _, c := range []struct{ in, want time.Duration }{
		{0, time.Second}, {time.Second, time.Second}, {1001 * time.Millisecond, 5 * time.Second},
		{31 * time.Second, 2 * time.Minute}, {time.Hour, 10 * time.Minute},
	} {
		if got := b.tier(c.in); got != c.want {
			t.Errorf("tier(%s) = %s, want %s", c.in, got, c.want)
		}
	}
	if got := retryTopic("orders", "billing", 5*time.Second); got != "orders.retry.billing.5s" {
		t.Errorf("retryTopic = %q", got)
	}
	if got := retryTopic("orders", "team/billing", time.Second); got != "orders.retry.team_billing.1s" {
		t.Errorf("retryTopic with an illegal character = %q", got)
	}
}

// The retry consumer reads every tier topic of its group, including tiers
// no longer configured, and nothing of other groups or other topics.
func TestRetryTopicPattern(t *testing.T) {
	re := regexp.MustCompile(retryTopicPattern("orders", "billing"))
	for _, c := range []struct {
		topic string
		want  bool
	}{
		{"orders.retry.billing.1s", true},
		{"orders.retry.billing.1m30s", true},
		{"orders.retry.billing.1.5s", true},
		{"orders.retry.billing.10m0s", true},
		{"orders.retry.billing.5s.1s", false}, // group "billing.5s"
		{"orders.retry.billingx.1s", false},
		{"orders.retry.1s", false}, // the old shared retry topics
		{"ordersX.retry.billing.1s", false},
		{"orders", false},
	} {
		if got := re.MatchString(c.topic); got != c.want {
			t.Errorf("%q matched %v, want %v", c.topic, got, c.want)
		}
	}
	// A group that repeats a long topic name still gives legal names,
	// distinct per group, that the pattern matches.
	long := strings.Repeat("t", 200)
	a, b := retryTopic(long, long+".a", 10*time.Minute), retryTopic(long, long+".b", 10*time.Minute)
	if len(a) > 249 || !legalTopicName(a) || a == b {
		t.Errorf("long retry topic names %q (%d), %q", a, len(a), b)
	}
	if !regexp.MustCompile(retryTopicPattern(long, long+".a")).MatchString(a) ||
		regexp.MustCompile(retryTopicPattern(long, long+".a")).MatchString(b) {
		t.Errorf("pattern for a long name does not match its own topics only")
	}
}

func TestFatalErrors(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("join: %w", kerr.GroupAuthorizationFailed), true},
		{kerr.TopicAuthorizationFailed, true},
		{kerr.SaslAuthenticationFailed, true},
		{kerr.FencedInstanceID, true},
		{kerr.NotLeaderForPartition, false},
		{kerr.RebalanceInProgress, false},
		{errors.New("dial tcp: connection refused"), false},
	} {
		if got := fatal(c.err); got != c.want {
			t.Errorf("fatal(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
