package amqp

import (
	"errors"
	"fmt"
	"github.com/switchyard-go/switchyard/internal/tlsconf"
	"net/url"
	"slices"
	"strings"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// Queue types accepted by [Config.QueueType].
const (
	QueueTypeClassic = "classic"
	QueueTypeQuorum  = "quorum"
)

// Defaults applied by [New] to zero fields of [Config].
const (
	DefaultURL                 = "amqp://guest:guest@127.0.0.1:5672/"
	DefaultQueueType           = QueueTypeClassic
	DefaultPrefetch            = 100
	DefaultOrderedPrefetch     = 1
	DefaultPublishChannels     = 4
	DefaultConfirmTimeout      = 30 * time.Second
	DefaultReconnectBackoff    = 100 * time.Millisecond
	DefaultMaxReconnectBackoff = 5 * time.Second
	DefaultNackDelay           = 100 * time.Millisecond
	DefaultMaxNackDelay        = 5 * time.Second
	DefaultConnectionName      = "switchyard"
	DefaultHeartbeat           = 10 * time.Second
	DefaultDelayQueueType      = QueueTypeQuorum
	DefaultDeliveryLimit       = 100
	DefaultAuthMechanism       = AuthPlain
)

// SASL mechanisms accepted by [Config.AuthMechanism].
const (
	AuthPlain    = "plain"
	AuthExternal = "external"
)

// NoDeliveryLimit as [Config.DeliveryLimit] turns the quorum queues'
// delivery limit off.
const NoDeliveryLimit = -1

// DefaultDelayTiers are the delayed-redelivery tiers used when
// [Config.DelayTiers] is empty.
var DefaultDelayTiers = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute}

// Config configures the RabbitMQ adapter. The zero value of every field means
// its documented default. It is written under "broker.amqp" in configuration
// files; [Config.Validate] names fields by that path.
type Config struct {
	// URL is the AMQP 0-9-1 URL, amqp:// or amqps://.
	// Default "amqp://guest:guest@127.0.0.1:5672/". Use [Config.RedactedURL]
	// to print it: the password is never logged.
	URL string `yaml:"url"`
	// URLs are the nodes of one RabbitMQ cluster, instead of URL (set one
	// or the other). The adapter connects to the first that accepts a
	// connection; when a connection is lost it tries the node it had
	// first, then the next ones in turn, so a service keeps running while
	// a node is down. Every node serves every exchange and queue of the
	// cluster (a queue's leader may be elsewhere: RabbitMQ forwards), and
	// only quorum queues (QueueType "quorum") keep their messages when the
	// node holding them dies. Username, Password and TLS apply to each.
	URLs []string `yaml:"urls"`
	// Username and Password, when set, override the user information of URL.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// TLS configures TLS for amqps:// URLs.
	TLS TLSConfig `yaml:"tls"`
	// AuthMechanism is the SASL mechanism: "plain" (default: the user name
	// and password of URL, Username and Password) or "external" (the
	// client certificate of tls.cert_file authenticates; RabbitMQ needs
	// the rabbitmq_auth_mechanism_ssl plugin, and the user is named after
	// the certificate's subject). "external" needs tls.enabled and a
	// client certificate, and no password.
	AuthMechanism string `yaml:"auth_mechanism"`
	// ConnectionName is advertised to the broker (shown by rabbitmqctl and the
	// management UI), followed by " (publish)" or " (consume)": the adapter
	// opens one connection for each. Default "switchyard".
	ConnectionName string `yaml:"connection_name"`
	// Heartbeat is the AMQP heartbeat interval; a dead TCP connection is
	// detected within about twice this. Default 10s.
	Heartbeat time.Duration `yaml:"heartbeat"`

	// QueueType is the type of consumer-group queues: "classic" or "quorum".
	// Default "classic". An existing queue keeps its type: changing this
	// setting needs the queues deleted (RabbitMQ refuses a redeclaration with
	// other arguments).
	QueueType string `yaml:"queue_type"`
	// DeliveryLimit is the x-delivery-limit of quorum group queues: after
	// that many failed deliveries (a nack with requeue, a channel or
	// connection closed with the message unacked) RabbitMQ dead-letters
	// the message to the group's dead-letter topic (DeadLetterTopic)
	// instead of redelivering it; the consumer-group runtime dead-letters
	// far sooner on its own, so this catches messages that crash the
	// process. Default 100; -1 ([NoDeliveryLimit]) means none (RabbitMQ 3.x
	// then redelivers for ever; on 4.x the adapter sends -1, which turns
	// 4.x's default limit of 20 off). The dead-letter group's own queues
	// never get a limit, so browsing them burns nothing. Classic queues
	// have no delivery limit.
	DeliveryLimit int `yaml:"delivery_limit"`
	// DeadLetterTopic is the topic whose dead-letter group
	// ("switchyard-dlq") queue receives what quorum group queues
	// dead-letter at DeliveryLimit. Default "<group>.dead_letter", the
	// runtime's default dead-letter topic of the group, so `switchyard dlq
	// list` shows them (with an x-death header whose reason is
	// delivery_limit). The adapter declares that topic's exchange and queue.
	DeadLetterTopic string `yaml:"dead_letter_topic"`
	// QueueExpires deletes a group's queue after it has had no consumer
	// (and no declaration) for this long (x-expires), with the messages in
	// it, so that an abandoned group cannot fill the disk. Default 0: never.
	// Whole milliseconds, at least 1s. The dead-letter group's queues never
	// expire. Setting it on an existing queue needs the queue deleted first
	// (or a RabbitMQ policy).
	QueueExpires time.Duration `yaml:"queue_expires"`
	// Prefetch is how many unacknowledged messages a subscription may hold
	// (basic.qos); SubscriberOptions.Prefetch overrides it. Default 100.
	Prefetch int `yaml:"prefetch"`
	// OrderedPrefetch is the prefetch of Ordered subscriptions (single
	// active consumer) that set no Prefetch option. Default 1: with one
	// unacknowledged message at a time, a message handed back (a nack, the
	// runtime fencing a key behind a failed message, a shutdown) is
	// redelivered before any later message of its queue, which is what
	// "retried before later messages" needs. A larger window is faster and
	// keeps per-key order only while nothing is handed back.
	OrderedPrefetch int `yaml:"ordered_prefetch"`
	// PublishChannels is the size of the publisher's pool of confirm-mode
	// channels. Default 4.
	PublishChannels int `yaml:"publish_channels"`
	// ConfirmTimeout bounds how long Publish waits for the broker's confirms.
	// Default 30s.
	ConfirmTimeout time.Duration `yaml:"confirm_timeout"`
	// ReconnectBackoff is the first wait before reconnecting after the
	// connection is lost; it doubles up to MaxReconnectBackoff. Defaults 100ms
	// and 5s.
	ReconnectBackoff    time.Duration `yaml:"reconnect_backoff"`
	MaxReconnectBackoff time.Duration `yaml:"max_reconnect_backoff"`
	// NackDelay is how long a nacked message waits before it is handed back to
	// the broker for redelivery; it doubles with every redelivery of the same
	// message up to MaxNackDelay. Defaults 100ms and 5s.
	NackDelay    time.Duration `yaml:"nack_delay"`
	MaxNackDelay time.Duration `yaml:"max_nack_delay"`
	// DelayTiers are the delays [Broker.Delay] can give; a requested delay is
	// rounded up to the next tier (capped at the largest). Default
	// [1s 5s 30s 2m 10m]. Each tier is one queue in RabbitMQ.
	DelayTiers []time.Duration `yaml:"delay_tiers"`
	// DelayQueueType is the type of the delay tier queues: "quorum"
	// (default: replicated, and dead-lettered at least once, so a delayed
	// message is never dropped on its way back) or "classic" (the old
	// at-most-once tiers). Quorum tiers are named
	// "switchyard.delay.quorum.<tier>", classic ones
	// "switchyard.delay.<tier>".
	DelayQueueType string `yaml:"delay_queue_type"`
	// ExchangePrefix and QueuePrefix are prepended to every exchange and queue
	// name the adapter declares. Default empty.
	ExchangePrefix string `yaml:"exchange_prefix"`
	QueuePrefix    string `yaml:"queue_prefix"`
	// AllowUnroutable makes Publish succeed for a topic that has no consumer
	// group yet (the message is dropped by RabbitMQ). Default false: such a
	// publish fails with [ErrUnroutable], because the message would be lost.
	AllowUnroutable bool `yaml:"allow_unroutable"`
	// CloudEventsPrefix is the prefix of the CloudEvents attribute headers
	// the adapter writes: "ce_" (default; the names of the header contract,
	// as on Kafka) or "cloudEvents_", the CloudEvents AMQP binding's prefix
	// for AMQP 0-9-1 and JMS, which readers that follow the binding expect
	// ("cloudEvents:" is the binding's AMQP 1.0 spelling, also accepted).
	// Only names starting with "ce_" are rewritten: "ce_type" is written as
	// "cloudEvents_type"; content-type stays the ContentType property and a
	// header. On read every spelling is accepted, whatever this says.
	CloudEventsPrefix string `yaml:"cloudevents_prefix"`
}

// Allowed values of [Config.CloudEventsPrefix].
const (
	PrefixCE               = "ce_"
	PrefixCloudEvents      = "cloudEvents_"
	PrefixCloudEventsAMQP1 = "cloudEvents:"
)

// TLSConfig configures TLS for amqps:// URLs; see the shared fields in
// internal/tlsconf.
type TLSConfig = tlsconf.Config

func (c *Config) setDefaults() {
	if c.URL == "" && len(c.URLs) == 0 {
		c.URL = DefaultURL
	}
	if c.ConnectionName == "" {
		c.ConnectionName = DefaultConnectionName
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.QueueType == "" {
		c.QueueType = DefaultQueueType
	}
	if c.Prefetch == 0 {
		c.Prefetch = DefaultPrefetch
	}
	if c.OrderedPrefetch == 0 {
		c.OrderedPrefetch = DefaultOrderedPrefetch
	}
	if c.PublishChannels == 0 {
		c.PublishChannels = DefaultPublishChannels
	}
	if c.ConfirmTimeout == 0 {
		c.ConfirmTimeout = DefaultConfirmTimeout
	}
	if c.ReconnectBackoff == 0 {
		c.ReconnectBackoff = DefaultReconnectBackoff
	}
	if c.MaxReconnectBackoff == 0 {
		c.MaxReconnectBackoff = DefaultMaxReconnectBackoff
	}
	if c.NackDelay == 0 {
		c.NackDelay = DefaultNackDelay
	}
	if c.MaxNackDelay == 0 {
		c.MaxNackDelay = DefaultMaxNackDelay
	}
	if len(c.DelayTiers) == 0 {
		c.DelayTiers = slices.Clone(DefaultDelayTiers)
	}
	if c.CloudEventsPrefix == "" {
		c.CloudEventsPrefix = PrefixCE
	}
	if c.DelayQueueType == "" {
		c.DelayQueueType = DefaultDelayQueueType
	}
	if c.DeliveryLimit == 0 {
		c.DeliveryLimit = DefaultDeliveryLimit
	}
	if c.AuthMechanism == "" {
		c.AuthMechanism = DefaultAuthMechanism
	}
}

// Validate reports every problem in c at once, naming each field by its
// path under "broker.amqp". Zero values are valid: they mean the default.
func (c Config) Validate() error {
	var errs []error
	bad := func(field string, format string, args ...any) {
		errs = append(errs, fmt.Errorf("broker.amqp.%s: %s", field, fmt.Sprintf(format, args...)))
	}
	checkURL := func(field, raw string) {
		uri, err := amqp091.ParseURI(raw)
		if err != nil {
			// The parse error may quote the URL: print only the redacted form.
			bad(field, "%q is not an amqp:// or amqps:// URL", redact(raw))
		} else if c.TLS.Enabled && uri.Scheme != "amqps" {
			bad(field, "%q uses %s:// but tls.enabled is true; use amqps://", redact(raw), uri.Scheme)
		}
		if c.Password != "" && c.Username == "" {
			if u, err := url.Parse(raw); err == nil && u.User == nil {
				bad("password", "set without a username (neither broker.amqp.username nor %s names one)", field)
			}
		}
	}
	if c.URL != "" {
		checkURL("url", c.URL)
	}
	if len(c.URLs) > 0 && c.URL != "" && !(len(c.URLs) == 1 && c.URLs[0] == c.URL) {
		bad("urls", "set together with url %q; set url (one node) or urls (the nodes of a cluster), not both", redact(c.URL))
	}
	for i, u := range c.URLs {
		if u == "" {
			bad(fmt.Sprintf("urls[%d]", i), "empty, want an amqp:// or amqps:// URL")
			continue
		}
		checkURL(fmt.Sprintf("urls[%d]", i), u)
		if j := slices.Index(c.URLs, u); j < i {
			bad(fmt.Sprintf("urls[%d]", i), "%q repeats urls[%d]", redact(u), j)
		}
	}
	errs = append(errs, c.TLS.Validate("broker.amqp.tls"))
	switch c.QueueType {
	case "", QueueTypeClassic, QueueTypeQuorum:
	default:
		bad("queue_type", "%q, want %q or %q", c.QueueType, QueueTypeClassic, QueueTypeQuorum)
	}
	switch c.DelayQueueType {
	case "", QueueTypeClassic, QueueTypeQuorum:
	default:
		bad("delay_queue_type", "%q, want %q (default) or %q", c.DelayQueueType, QueueTypeQuorum, QueueTypeClassic)
	}
	if c.DeliveryLimit < NoDeliveryLimit {
		bad("delivery_limit", "%d, want 0 (default %d), a positive limit or -1 (none)", c.DeliveryLimit, DefaultDeliveryLimit)
	}
	if c.QueueExpires != 0 && (c.QueueExpires < time.Second || c.QueueExpires%time.Millisecond != 0) {
		bad("queue_expires", "%s, want 0 (never) or a whole number of milliseconds >= 1s", c.QueueExpires)
	}
	switch c.AuthMechanism {
	case "", AuthPlain:
	case AuthExternal:
		if !c.TLS.Enabled || c.TLS.CertFile == "" {
			bad("auth_mechanism", "%q needs tls.enabled and tls.cert_file/key_file (the client certificate authenticates)", c.AuthMechanism)
		}
		if c.Password != "" {
			bad("password", "set with auth_mechanism %q, which sends no password; remove it", AuthExternal)
		}
	default:
		bad("auth_mechanism", "%q, want %q (default) or %q", c.AuthMechanism, AuthPlain, AuthExternal)
	}
	if c.Prefetch < 0 || c.Prefetch > 65535 {
		bad("prefetch", "%d, want 0 (default %d) to 65535", c.Prefetch, DefaultPrefetch)
	}
	if c.OrderedPrefetch < 0 || c.OrderedPrefetch > 65535 {
		bad("ordered_prefetch", "%d, want 0 (default %d) to 65535", c.OrderedPrefetch, DefaultOrderedPrefetch)
	}
	if c.PublishChannels < 0 || c.PublishChannels > 1024 {
		bad("publish_channels", "%d, want 0 (default %d) to 1024", c.PublishChannels, DefaultPublishChannels)
	}
	nonNeg := func(field string, d time.Duration, def time.Duration) {
		if d < 0 {
			bad(field, "%s, want >= 0 (0 means the default %s)", d, def)
		}
	}
	nonNeg("heartbeat", c.Heartbeat, DefaultHeartbeat)
	nonNeg("confirm_timeout", c.ConfirmTimeout, DefaultConfirmTimeout)
	nonNeg("reconnect_backoff", c.ReconnectBackoff, DefaultReconnectBackoff)
	nonNeg("max_reconnect_backoff", c.MaxReconnectBackoff, DefaultMaxReconnectBackoff)
	nonNeg("nack_delay", c.NackDelay, DefaultNackDelay)
	nonNeg("max_nack_delay", c.MaxNackDelay, DefaultMaxNackDelay)
	if c.ReconnectBackoff > 0 && c.MaxReconnectBackoff > 0 && c.MaxReconnectBackoff < c.ReconnectBackoff {
		bad("max_reconnect_backoff", "%s is below reconnect_backoff %s", c.MaxReconnectBackoff, c.ReconnectBackoff)
	}
	if c.NackDelay > 0 && c.MaxNackDelay > 0 && c.MaxNackDelay < c.NackDelay {
		bad("max_nack_delay", "%s is below nack_delay %s", c.MaxNackDelay, c.NackDelay)
	}
	for i, d := range c.DelayTiers {
		switch {
		case d < time.Millisecond || d%time.Millisecond != 0:
			bad(fmt.Sprintf("delay_tiers[%d]", i), "%s, want a whole number of milliseconds >= 1ms", d)
		case d > 24*time.Hour:
			bad(fmt.Sprintf("delay_tiers[%d]", i), "%s, want <= 24h", d)
		case i > 0 && d <= c.DelayTiers[i-1]:
			bad(fmt.Sprintf("delay_tiers[%d]", i), "%s, want tiers in increasing order (previous is %s)", d, c.DelayTiers[i-1])
		}
	}
	switch c.CloudEventsPrefix {
	case "", PrefixCE, PrefixCloudEvents, PrefixCloudEventsAMQP1:
	default:
		bad("cloudevents_prefix", "%q, want %q (default), %q or %q", c.CloudEventsPrefix, PrefixCE, PrefixCloudEvents, PrefixCloudEventsAMQP1)
	}
	for field, p := range map[string]string{"exchange_prefix": c.ExchangePrefix, "queue_prefix": c.QueuePrefix} {
		if len(p) > 100 {
			bad(field, "%d bytes, want <= 100 (AMQP names are at most 255 bytes)", len(p))
		}
	}
	return errors.Join(errs...)
}

// RedactedURL returns URL (with URLs: the nodes, comma-separated) with
// passwords replaced by "xxxxx", for logs and error messages.
func (c Config) RedactedURL() string {
	eps := c.endpoints()
	out := make([]string, len(eps))
	for i, u := range eps {
		out[i] = redact(u)
	}
	return strings.Join(out, ",")
}

// endpoints are the URLs to connect to, in order of preference: URLs, or URL.
func (c Config) endpoints() []string {
	if len(c.URLs) > 0 {
		return c.URLs
	}
	return []string{c.URL}
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		// Cannot parse: hide everything between "://" and the last "@".
		if i, j := strings.Index(raw, "://"), strings.LastIndex(raw, "@"); i >= 0 && j > i {
			return raw[:i+3] + "xxxxx" + raw[j:]
		}
		return raw
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// dialConfig returns what amqp091.DialConfig needs to dial rawURL. It is
// built anew for every dial so that no state is shared between connections.
func (c Config) dialConfig(role, rawURL string) (amqp091.Config, error) {
	dc := amqp091.Config{
		Heartbeat:  c.Heartbeat,
		Locale:     "en_US",
		Properties: amqp091.NewConnectionProperties(),
		Dial:       dialCoalescing,
	}
	dc.Properties.SetClientConnectionName(c.ConnectionName + " (" + role + ")")
	if c.AuthMechanism == AuthExternal {
		// The URL's user information, if any, is not sent.
		dc.SASL = []amqp091.Authentication{&amqp091.ExternalAuth{}}
	} else if c.Username != "" || c.Password != "" {
		uri, err := amqp091.ParseURI(rawURL)
		if err != nil {
			return dc, fmt.Errorf("parse url %q: invalid", redact(rawURL))
		}
		user, pass := uri.Username, uri.Password
		if c.Username != "" {
			user = c.Username
		}
		if c.Password != "" {
			pass = c.Password
		}
		dc.SASL = []amqp091.Authentication{&amqp091.PlainAuth{Username: user, Password: pass}}
	}
	tc, err := c.TLS.Client("broker.amqp.tls")
	if err != nil {
		return dc, err
	}
	dc.TLSClientConfig = tc
	return dc, nil
}

// queueName is the work queue of group on topic.
func (c Config) queueName(topic, group string) string { return c.QueuePrefix + topic + "." + group }

// DeadLetterTopicSuffix makes the default [Config.DeadLetterTopic] of a
// group: "<group>.dead_letter", as the runtime names it.
const DeadLetterTopicSuffix = ".dead_letter"

// deadLetterTopic is where group's quorum queues dead-letter at the
// delivery limit.
func (c Config) deadLetterTopic(group string) string {
	if c.DeadLetterTopic != "" {
		return c.DeadLetterTopic
	}
	return group + DeadLetterTopicSuffix
}

// exchangeName is the fanout exchange of topic.
func (c Config) exchangeName(topic string) string { return c.ExchangePrefix + topic }
