package kafka

import (
	"errors"
	"fmt"
	"github.com/switchyard-go/switchyard/internal/tlsconf"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Config configures the Kafka adapter. It is what users write under
// "broker.kafka" in a configuration file. The zero value of every field means
// "use the default" documented on it.
type Config struct {
	// Brokers are the seed brokers, host:port. Default ["127.0.0.1:9092"].
	Brokers []string `yaml:"brokers"`
	// ClientID is sent to Kafka with every request. Default "switchyard".
	ClientID string `yaml:"client_id"`

	// Partitions is the partition count of topics the adapter creates.
	// Default 3. Topics that already exist are left as they are.
	Partitions int32 `yaml:"partitions"`
	// RetryPartitions is the partition count of the retry topics the
	// adapter creates (5 tiers per consumer group and topic: most of a
	// small cluster's partitions if they had Partitions each). Default 1:
	// one member of the group reads each tier, which suits the failure
	// path; raise it when retries are a large share of the traffic. Order
	// per key holds with any count (a key's retries share a partition).
	RetryPartitions int32 `yaml:"retry_partitions"`
	// ReplicationFactor of topics the adapter creates. Default -1: the
	// cluster's default.replication.factor, so that acks "all" means what
	// the cluster's operators set (a factor of 1 would make it meaningless).
	ReplicationFactor int16 `yaml:"replication_factor"`

	// Provision says what the adapter does about the topics it uses (the
	// subscribed topic, its retry topics, published topics):
	//   - "create" (default): create missing ones (Partitions,
	//     ReplicationFactor) once per topic, at Subscribe, first Publish or
	//     Provision; existing topics are found through metadata first, so a
	//     principal without CREATE permission on an ACL cluster works with
	//     topics that exist;
	//   - "verify": never create; Subscribe, Publish and Provision fail
	//     naming a topic that does not exist;
	//   - "none": never look (no CreateTopics, no metadata check), for
	//     clusters where topics are managed elsewhere.
	Provision string `yaml:"provision"`

	// InstanceID turns on static group membership (KIP-345): a restarted
	// member that comes back within SessionTimeout gets its partitions back
	// without a rebalance. Each subscription derives its own id from it
	// ("<instance_id>.<group>.<topic>.<n>", n numbering from 0 the open
	// subscriptions of one group and topic in this Broker), so it must be
	// unique per process and stable across its restarts (a pod name); a
	// subscription reopened in the process takes its old number back. A
	// static member does not leave the group on Close: its partitions wait
	// for it up to SessionTimeout (raise it to cover a restart), and a
	// member started with the same id fences it (the old subscription then
	// ends with a failure, see [Subscriber.Failure]). Default "": dynamic
	// membership.
	InstanceID string `yaml:"instance_id"`

	// InitialOffset is where a consumer group with no committed offset starts
	// on a partition: "earliest" (default) or "latest".
	InitialOffset string `yaml:"initial_offset"`

	// Acks is how many replicas must store a record before Publish returns:
	// "all" (default; the idempotent producer is enabled) or "leader".
	Acks string `yaml:"acks"`
	// Linger is how long the producer waits to fill a batch. Default 10ms,
	// franz-go's own default: with acks=all a partition has one produce
	// request in flight at a time, and without lingering every message
	// that arrives meanwhile goes out in a small batch of its own, which
	// measured 0.3x raw franz-go's throughput (docs/benchmarks.md). A
	// negative value turns lingering off (a single Publish is then up to
	// 10ms quicker when the producer is idle).
	Linger time.Duration `yaml:"linger"`
	// PublishTimeout bounds how long a record may wait to be acknowledged
	// before Publish fails (or PublishAsync reports it failed), also when
	// the broker died with it in flight (it may then have been stored).
	// franz-go checks it before each attempt and after each response, so
	// a failure can come up to a retry backoff (at most ~6s) or a produce
	// request's 20s read timeout later. Default 30s.
	PublishTimeout time.Duration `yaml:"publish_timeout"`
	// Compression is the codec of the record batches the adapter produces:
	// "none" (default), "gzip", "snappy", "lz4" or "zstd". Consumers must
	// be able to decompress what is produced: every Kafka client (the Java
	// client, librdkafka and what is built on it, kafkajs, franz-go, Sarama)
	// reads "none" and "gzip" with no plugin, while kafkajs needs a codec
	// plugin for snappy, lz4 and zstd and its consumer fails on such batches
	// ("Snappy compression not implemented"). franz-go's own default,
	// snappy, is therefore not used. Choose "gzip" to save bandwidth and
	// disk at some CPU cost, the others only when every consumer of the
	// topics reads them.
	Compression string `yaml:"compression"`

	// Prefetch is how many records a subscription hands out before the first
	// of them is acked, across all its partitions. Default 256.
	// SubscriberOptions.Prefetch overrides it per subscriber.
	Prefetch int `yaml:"prefetch"`
	// NackBackoff is the wait before a nacked record is handed out again; it
	// doubles with every further nack of the same record up to
	// MaxNackBackoff. Default 100ms.
	NackBackoff time.Duration `yaml:"nack_backoff"`
	// MaxNackBackoff caps NackBackoff. Default 5s.
	MaxNackBackoff time.Duration `yaml:"max_nack_backoff"`
	// CommitInterval is how often acked offsets are committed. Offsets are
	// also committed when partitions are revoked and on Close. Default 1s.
	CommitInterval time.Duration `yaml:"commit_interval"`

	// SessionTimeout is the consumer group session timeout. Default 10s.
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// RebalanceTimeout is how long members have to rejoin in a rebalance.
	// Default 10s.
	RebalanceTimeout time.Duration `yaml:"rebalance_timeout"`
	// HeartbeatInterval is the consumer group heartbeat interval. Default 1s.
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`

	// DelayTiers are the delays of the retry topics used for delayed
	// redelivery ("<topic>.retry.<group>.<tier>"). A delay is rounded up to
	// the next tier; a delay longer than the last tier goes through the
	// last tier as often as needed (chained), never delivered early.
	// Subscriptions read every tier topic of their group, also tiers no
	// longer configured, so changing the tiers strands nothing.
	// Default [1s 5s 30s 2m 10m].
	DelayTiers []time.Duration `yaml:"delay_tiers"`

	TLS  TLSConfig  `yaml:"tls"`
	SASL SASLConfig `yaml:"sasl"`

	// testOpts are extra options of every client the Broker opens, set by
	// the adapter's own tests only (export_test.go), e.g. franz-go hooks
	// that count the requests sent. Not configurable by users.
	testOpts []kgo.Opt
}

// TLSConfig configures TLS to the brokers; see the shared fields in
// internal/tlsconf. Disabled by default.
type TLSConfig = tlsconf.Config

// SASLConfig configures SASL authentication. Mechanism "" (default) means
// none; otherwise "plain", "scram-sha-256" or "scram-sha-512".
type SASLConfig struct {
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	// Password is never logged nor printed; see [SASLConfig.String].
	Password string `yaml:"password"`
}

// String prints the SASL settings with the password redacted.
func (s SASLConfig) String() string {
	pw := ""
	if s.Password != "" {
		pw = "REDACTED"
	}
	return fmt.Sprintf("{Mechanism:%s Username:%s Password:%s}", s.Mechanism, s.Username, pw)
}

// GoString redacts the password under %#v as well.
func (s SASLConfig) GoString() string { return "kafka.SASLConfig" + s.String() }

// Default values.
const (
	DefaultBroker            = "127.0.0.1:9092"
	DefaultClientID          = "switchyard"
	DefaultPartitions        = 3
	DefaultRetryPartitions   = 1
	DefaultReplicationFactor = -1
	DefaultProvision         = ProvisionCreate
	DefaultPrefetch          = 256
	DefaultNackBackoff       = 100 * time.Millisecond
	DefaultMaxNackBackoff    = 5 * time.Second
	DefaultCommitInterval    = time.Second
	DefaultPublishTimeout    = 30 * time.Second
	DefaultLinger            = 10 * time.Millisecond
	DefaultCompression       = CompressionNone
	DefaultSessionTimeout    = 10 * time.Second
	DefaultRebalanceTimeout  = 10 * time.Second
	DefaultHeartbeatInterval = time.Second
)

// DefaultDelayTiers are the retry-topic delays used when Config.DelayTiers is empty.
var DefaultDelayTiers = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute}

// Allowed values.
const (
	OffsetEarliest = "earliest"
	OffsetLatest   = "latest"
	AcksAll        = "all"
	AcksLeader     = "leader"

	CompressionNone   = "none"
	CompressionGzip   = "gzip"
	CompressionSnappy = "snappy"
	CompressionLZ4    = "lz4"
	CompressionZstd   = "zstd"

	ProvisionCreate = "create"
	ProvisionVerify = "verify"
	ProvisionNone   = "none"

	SASLPlain       = "plain"
	SASLScramSHA256 = "scram-sha-256"
	SASLScramSHA512 = "scram-sha-512"
)

func (c *Config) setDefaults() {
	if len(c.Brokers) == 0 {
		c.Brokers = []string{DefaultBroker}
	}
	if c.ClientID == "" {
		c.ClientID = DefaultClientID
	}
	if c.Partitions == 0 {
		c.Partitions = DefaultPartitions
	}
	if c.RetryPartitions == 0 {
		c.RetryPartitions = DefaultRetryPartitions
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = DefaultReplicationFactor
	}
	if c.Provision == "" {
		c.Provision = DefaultProvision
	}
	if c.InitialOffset == "" {
		c.InitialOffset = OffsetEarliest
	}
	if c.Acks == "" {
		c.Acks = AcksAll
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.Linger == 0 {
		c.Linger = DefaultLinger
	}
	if c.Compression == "" {
		c.Compression = DefaultCompression
	}
	if c.Prefetch == 0 {
		c.Prefetch = DefaultPrefetch
	}
	if c.NackBackoff == 0 {
		c.NackBackoff = DefaultNackBackoff
	}
	if c.MaxNackBackoff == 0 {
		c.MaxNackBackoff = DefaultMaxNackBackoff
	}
	if c.CommitInterval == 0 {
		c.CommitInterval = DefaultCommitInterval
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = DefaultSessionTimeout
	}
	if c.RebalanceTimeout == 0 {
		c.RebalanceTimeout = DefaultRebalanceTimeout
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if len(c.DelayTiers) == 0 {
		c.DelayTiers = append([]time.Duration(nil), DefaultDelayTiers...)
	}
}

// Validate reports every problem in c at once, naming each field as
// "broker.kafka.<field>". It is meant for a Config with defaults applied;
// zero durations and counts are reported as invalid.
func (c Config) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("broker.kafka."+field+": "+format, args...))
	}
	if len(c.Brokers) == 0 {
		add("brokers", "empty, want at least one host:port")
	}
	for i, b := range c.Brokers {
		if host, port, ok := strings.Cut(b, ":"); !ok || host == "" || port == "" {
			add(fmt.Sprintf("brokers[%d]", i), "%q, want host:port", b)
		}
	}
	if c.Partitions < 1 {
		add("partitions", "%d, want >= 1", c.Partitions)
	}
	if c.RetryPartitions < 1 {
		add("retry_partitions", "%d, want >= 1", c.RetryPartitions)
	}
	if c.ReplicationFactor < 1 && c.ReplicationFactor != -1 {
		add("replication_factor", "%d, want -1 (the cluster's default) or >= 1", c.ReplicationFactor)
	}
	switch c.Provision {
	case ProvisionCreate, ProvisionVerify, ProvisionNone:
	default:
		add("provision", "%q, want %q, %q or %q", c.Provision, ProvisionCreate, ProvisionVerify, ProvisionNone)
	}
	if c.InstanceID != "" && !legalTopicName(c.InstanceID) {
		add("instance_id", "%q, want letters, digits, '.', '_' and '-' only", c.InstanceID)
	}
	if c.InitialOffset != OffsetEarliest && c.InitialOffset != OffsetLatest {
		add("initial_offset", "%q, want %q or %q", c.InitialOffset, OffsetEarliest, OffsetLatest)
	}
	if c.Acks != AcksAll && c.Acks != AcksLeader {
		add("acks", "%q, want %q or %q", c.Acks, AcksAll, AcksLeader)
	}
	if c.PublishTimeout <= 0 {
		add("publish_timeout", "%s, want > 0", c.PublishTimeout)
	}
	if _, ok := compressionCodecs[c.Compression]; !ok {
		add("compression", "%q, want one of %s (none and gzip are read by every Kafka client without plugins)",
			c.Compression, strings.Join(Compressions, ", "))
	}
	if c.Prefetch < 1 {
		add("prefetch", "%d, want >= 1", c.Prefetch)
	}
	if c.NackBackoff <= 0 {
		add("nack_backoff", "%s, want > 0", c.NackBackoff)
	}
	if c.MaxNackBackoff < c.NackBackoff {
		add("max_nack_backoff", "%s, want >= nack_backoff (%s)", c.MaxNackBackoff, c.NackBackoff)
	}
	if c.CommitInterval <= 0 {
		add("commit_interval", "%s, want > 0", c.CommitInterval)
	}
	if c.SessionTimeout <= 0 {
		add("session_timeout", "%s, want > 0", c.SessionTimeout)
	}
	if c.RebalanceTimeout <= 0 {
		add("rebalance_timeout", "%s, want > 0", c.RebalanceTimeout)
	}
	if c.HeartbeatInterval <= 0 || c.HeartbeatInterval >= c.SessionTimeout {
		add("heartbeat_interval", "%s, want > 0 and < session_timeout (%s)", c.HeartbeatInterval, c.SessionTimeout)
	}
	for i, d := range c.DelayTiers {
		if d <= 0 {
			add(fmt.Sprintf("delay_tiers[%d]", i), "%s, want > 0", d)
		} else if i > 0 && d <= c.DelayTiers[i-1] {
			add(fmt.Sprintf("delay_tiers[%d]", i), "%s, want ascending (> %s)", d, c.DelayTiers[i-1])
		}
	}
	errs = append(errs, c.TLS.Validate("broker.kafka.tls"))
	switch c.SASL.Mechanism {
	case "":
		if c.SASL.Username != "" || c.SASL.Password != "" {
			add("sasl.mechanism", "empty while credentials are set, want %q, %q or %q", SASLPlain, SASLScramSHA256, SASLScramSHA512)
		}
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if c.SASL.Username == "" {
			add("sasl.username", "required with mechanism %q", c.SASL.Mechanism)
		}
		if c.SASL.Password == "" {
			add("sasl.password", "required with mechanism %q", c.SASL.Mechanism)
		}
	default:
		add("sasl.mechanism", "%q, want \"\", %q, %q or %q", c.SASL.Mechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512)
	}
	return errors.Join(errs...)
}

// clientOpts are the kgo options every client of this adapter shares:
// brokers, client id, TLS and SASL.
func (c Config) clientOpts() ([]kgo.Opt, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID(c.ClientID),
	}
	tc, err := c.TLS.Client("broker.kafka.tls")
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	if tc != nil {
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	switch c.SASL.Mechanism {
	case SASLPlain:
		opts = append(opts, kgo.SASL(plain.Auth{User: c.SASL.Username, Pass: c.SASL.Password}.AsMechanism()))
	case SASLScramSHA256:
		opts = append(opts, kgo.SASL(scram.Auth{User: c.SASL.Username, Pass: c.SASL.Password}.AsSha256Mechanism()))
	case SASLScramSHA512:
		opts = append(opts, kgo.SASL(scram.Auth{User: c.SASL.Username, Pass: c.SASL.Password}.AsSha512Mechanism()))
	}
	return append(opts, c.testOpts...), nil
}

// producerOpts are the options of the shared producing client.
func (c Config) producerOpts() []kgo.Opt {
	opts := []kgo.Opt{
		kgo.ProducerLinger(max(c.Linger, 0)), // negative: off
		kgo.RecordDeliveryTimeout(c.PublishTimeout),
		// Always set: without it franz-go compresses with snappy.
		kgo.ProducerBatchCompression(compressionCodecs[c.Compression]),
	}
	if c.Acks == AcksAll {
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	} else {
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	}
	return opts
}

// Compressions lists the allowed values of [Config.Compression].
var Compressions = []string{CompressionNone, CompressionGzip, CompressionSnappy, CompressionLZ4, CompressionZstd}

var compressionCodecs = map[string]kgo.CompressionCodec{
	CompressionNone:   kgo.NoCompression(),
	CompressionGzip:   kgo.GzipCompression(),
	CompressionSnappy: kgo.SnappyCompression(),
	CompressionLZ4:    kgo.Lz4Compression(),
	CompressionZstd:   kgo.ZstdCompression(),
}

// resetOffset is where a group with no committed offset starts.
func (c Config) resetOffset() kgo.Offset {
	if c.InitialOffset == OffsetLatest {
		return kgo.NewOffset().AtEnd()
	}
	return kgo.NewOffset().AtStart()
}
