package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ErrTopicMissing is returned (wrapped) when Config.Provision is "verify"
// and a topic the adapter needs does not exist, or when "create" could not
// create it.
var ErrTopicMissing = errors.New("topic does not exist")

// legalTopicName reports whether s uses only the characters Kafka allows in
// topic names.
func legalTopicName(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return s != ""
}

// ensureTopics makes sure topics exist as Config.Provision says: with
// "none" it does nothing; otherwise the topics not known to exist yet are
// looked up in the cluster metadata, and missing ones are created
// ("create") or reported ("verify"). Looking first matters on ACL clusters:
// a principal without CREATE permission gets TOPIC_AUTHORIZATION_FAILED from
// CreateTopics even for a topic that exists. Known topics are cached, so
// this costs a request only the first time. Topics are created with
// Config.Partitions partitions; see ensureRetryTopics.
func (b *Broker) ensureTopics(ctx context.Context, topics ...string) error {
	return b.ensure(ctx, b.cfg.Partitions, topics)
}

// ensureRetryTopics is ensureTopics for retry topics, created with
// Config.RetryPartitions partitions.
func (b *Broker) ensureRetryTopics(ctx context.Context, topics ...string) error {
	return b.ensure(ctx, b.cfg.RetryPartitions, topics)
}

func (b *Broker) ensure(ctx context.Context, partitions int32, topics []string) error {
	if b.cfg.Provision == ProvisionNone {
		return nil
	}
	var unknown []string
	b.topicsMu.RLock()
	for _, t := range topics {
		if _, ok := b.topics[t]; !ok {
			unknown = append(unknown, t)
		}
	}
	b.topicsMu.RUnlock()
	if len(unknown) == 0 {
		return nil
	}
	exists, err := b.lookupTopics(ctx, unknown)
	if err != nil {
		return err
	}
	var missing []string
	for _, t := range unknown {
		if exists[t] {
			b.known(t)
			continue
		}
		missing = append(missing, t)
	}
	if len(missing) == 0 {
		return nil
	}
	if b.cfg.Provision == ProvisionVerify {
		return fmt.Errorf("kafka: topics %q: %w (broker.kafka.provision is %q: create them, or set it to %q)",
			missing, ErrTopicMissing, ProvisionVerify, ProvisionCreate)
	}
	// -1 partitions or replication factor ask for the cluster's default.
	created, err := b.adm.CreateTopics(ctx, partitions, b.cfg.ReplicationFactor, nil, missing...)
	if err != nil {
		return fmt.Errorf("kafka: create topics %q: %w", missing, err)
	}
	var (
		errs []error
		made []string
	)
	for _, r := range created.Sorted() {
		switch {
		case r.Err == nil || errors.Is(r.Err, kerr.TopicAlreadyExists):
			made = append(made, r.Topic)
		case errors.Is(r.Err, kerr.TopicAuthorizationFailed), errors.Is(r.Err, kerr.ClusterAuthorizationFailed):
			errs = append(errs, fmt.Errorf("kafka: create topic %q: %w and not allowed to create it: %w (create it, or grant CREATE)", r.Topic, ErrTopicMissing, r.Err))
		default:
			errs = append(errs, fmt.Errorf("kafka: create topic %q: %w", r.Topic, r.Err))
		}
	}
	// Wait until the metadata shows the new topics: this also replaces the
	// "unknown topic" answers the client cached from the lookup above,
	// which kadm's calls (offsets, Browse) would otherwise keep using.
	for len(made) > 0 {
		exists, err := b.lookupTopics(ctx, made)
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		made = slices.DeleteFunc(made, func(t string) bool {
			if exists[t] {
				b.known(t)
			}
			return exists[t]
		})
		if len(made) == 0 {
			break
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return errors.Join(append(errs, fmt.Errorf("kafka: topics %q created but not in the metadata yet: %w", made, ctx.Err()))...)
		}
	}
	return errors.Join(errs...)
}

// lookupTopics asks the cluster which of topics exist (with partitions).
func (b *Broker) lookupTopics(ctx context.Context, topics []string) (map[string]bool, error) {
	req := kmsg.NewPtrMetadataRequest()
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, b.admCl)
	if err != nil {
		return nil, fmt.Errorf("kafka: look up topics %q: %w", topics, err)
	}
	exists := map[string]bool{}
	for _, t := range resp.Topics {
		if t.Topic != nil && t.ErrorCode == 0 && len(t.Partitions) > 0 {
			exists[*t.Topic] = true
		}
	}
	return exists, nil
}

// topicKnown reports whether topic is known to exist (or provisioning is
// off), without allocating: the publish hot path asks it first.
func (b *Broker) topicKnown(topic string) bool {
	if b.cfg.Provision == ProvisionNone {
		return true
	}
	b.topicsMu.RLock()
	_, ok := b.topics[topic]
	b.topicsMu.RUnlock()
	return ok
}

func (b *Broker) known(topic string) {
	b.topicsMu.Lock()
	b.topics[topic] = struct{}{}
	b.topicsMu.Unlock()
}

// recreated handles a topic that was deleted and created again under the
// same name (UNKNOWN_TOPIC_ID): franz-go keeps the old topic id and stalls
// on purpose rather than guess (twmb/franz-go#908), and says to purge and
// re-add the topic. The topic is forgotten here, so the next use looks it
// up (and provisions it) again.
func (b *Broker) recreated(topic string) {
	b.topicsMu.Lock()
	delete(b.topics, topic)
	b.topicsMu.Unlock()
}
