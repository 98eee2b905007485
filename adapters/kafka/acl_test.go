package kafka_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/switchyard-go/switchyard/adapters/kafka"
	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/pkg/broker"
	"github.com/switchyard-go/switchyard/pkg/service"
)

// The application principal of the ACL tests, on the SASL listener.
const (
	aclUser     = "app"
	aclPassword = "app-s3cret"
	aclSubject  = "User:" + aclUser
)

// An ACL-secured cluster (StandardAuthorizer, no allow.everyone.if.no.acl.found)
// where the application's SCRAM user may use its topics and groups but not
// CREATE anything. Everything on the PLAINTEXT listener is User:ANONYMOUS,
// a super user: the controller listener, inter-broker traffic, the
// scripts' readiness check and this test's admin, who creates the topics.
//
// What an operator grants a subscription of group <group> on topic
// <topic> (with Provision "create", the default, or "verify"), the topics
// created beforehand (Broker.Provision as admin creates them all):
//
//   - topic <topic>: READ, DESCRIBE, and WRITE to publish to it;
//   - topics prefixed "<topic>.retry.<group>.": READ, WRITE, DESCRIBE
//     (the retry topics of delayed redelivery, one per delay tier);
//   - groups <group> and <group>.retry: READ.
//
// The runtime (pkg/service) also writes dead letters to
// "<group>.dead_letter" (and provisions its retry topics): a prefixed
// ACL on the service's namespace covers all of it.
func TestACLSecuredCluster(t *testing.T) {
	sasl := freePort(t)
	s := brokertest.StartKafka(t, brokertest.WithScriptEnv("SWITCHYARD_KAFKA_EXTRA_PROPERTIES="+strings.Join(append(scramListener(sasl),
		"authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
		"super.users=User:ANONYMOUS",
	), "\n")))
	admCl, err := kgo.NewClient(kgo.SeedBrokers(s.KafkaBrokers()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admCl.Close)
	adm := kadm.NewClient(admCl)
	createSCRAMUser(t, adm, aclUser, aclPassword)
	saslAddr := "127.0.0.1:" + strconv.Itoa(sasl)

	// admin is an adapter over PLAINTEXT, as a super user: what an
	// operator's provisioning job would run.
	admin := newBroker(t, func(c *kafka.Config) { c.Brokers = []string{s.KafkaBrokers()} })

	// A raw client of the application user, to see when a grant has
	// reached the broker's authorizer (ACLs are applied from the metadata
	// log, a moment after CreateACLs returns).
	appCl, err := kgo.NewClient(kgo.SeedBrokers(saslAddr),
		kgo.SASL(scram.Auth{User: aclUser, Pass: aclPassword}.AsSha512Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(appCl.Close)

	acl := func(pattern kadm.ACLPattern) *kadm.ACLBuilder {
		return kadm.NewACLs().Allow(aclSubject).AllowHosts().ResourcePatternType(pattern)
	}
	// grant creates ACLs for the application user; the topic grants go
	// last, and once the user can describe describable (a topic the grants
	// name), the earlier grants, applied before it, are in force too.
	grant := func(t *testing.T, describable string, bs ...*kadm.ACLBuilder) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, b := range bs {
			res, err := adm.CreateACLs(ctx, b)
			if err == nil {
				for _, r := range res {
					err = errors.Join(err, r.Err)
				}
			}
			if err != nil {
				t.Fatalf("create ACLs: %v", err)
			}
		}
		for {
			req := kmsg.NewPtrMetadataRequest()
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(describable)
			req.Topics = append(req.Topics, rt)
			resp, err := req.RequestWith(ctx, appCl)
			if err == nil && len(resp.Topics) == 1 && resp.Topics[0].ErrorCode == 0 {
				return
			}
			select { // polling the authorizer's state, bounded by ctx
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
				t.Fatalf("the grants on %s did not reach the broker within 30s (last: %v)", describable, err)
			}
		}
	}
	revoke := func(t *testing.T, b *kadm.ACLBuilder) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		res, err := adm.DeleteACLs(ctx, b)
		n := 0
		if err == nil {
			for _, r := range res {
				err = errors.Join(err, r.Err)
				n += len(r.Deleted)
			}
		}
		if err != nil || n == 0 {
			t.Fatalf("delete ACLs: %v (%d deleted)", err, n)
		}
	}
	// subscriberGrants are the grants listed above, for group on topic.
	subscriberGrants := func(topic, group string) []*kadm.ACLBuilder {
		return []*kadm.ACLBuilder{
			acl(kadm.ACLPatternLiteral).Groups(group, group+".retry").Operations(kadm.OpRead),
			acl(kadm.ACLPatternPrefixed).Topics(topic+".retry."+group+".").Operations(kadm.OpRead, kadm.OpWrite, kadm.OpDescribe),
			acl(kadm.ACLPatternLiteral).Topics(topic).Operations(kadm.OpRead, kadm.OpWrite, kadm.OpDescribe),
		}
	}
	provision := func(t *testing.T, topic, group string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := admin.Provision(ctx, topic, group); err != nil {
			t.Fatalf("Provision as admin: %v", err)
		}
	}

	// CreateTopics answers TOPIC_AUTHORIZATION_FAILED without CREATE even
	// for a topic that exists; with the default provision ("create") the
	// adapter must find the topics in the metadata and not ask. A delayed
	// redelivery goes through a retry topic the operator created.
	t.Run("existing topics work without CREATE", func(t *testing.T) {
		topic, group := uniqueName(t, "t"), uniqueName(t, "g")
		provision(t, topic, group)
		grant(t, topic, subscriberGrants(topic, group)...)
		app := newSCRAMBroker(t, saslAddr, aclUser, aclPassword)
		_, ch := subscribe(t, app, group, topic, broker.SubscriberOptions{})
		msg := newMsg("k", "no create needed")
		if err := app.Publisher().Publish(topic, msg); err != nil {
			t.Fatalf("Publish to an existing topic without CREATE: %v", err)
		}
		m := receive(t, ch, waitMsg)
		if m.UUID != msg.UUID {
			t.Fatalf("got %q", m.Payload)
		}
		if err := app.Delay(context.Background(), topic, group, m, time.Second); err != nil {
			t.Fatalf("Delay through a retry topic without CREATE: %v", err)
		}
		m.Ack()
		if again := receive(t, ch, waitMsg); again.UUID != msg.UUID {
			t.Fatalf("after the delay got %q", again.Payload)
		} else {
			again.Ack()
		}
	})

	// A topic that does not exist and may not be created fails Publish and
	// Subscribe at once, naming the topic and the missing permission,
	// instead of retrying until a timeout.
	t.Run("missing topic fails naming it", func(t *testing.T) {
		app := newSCRAMBroker(t, saslAddr, aclUser, aclPassword)
		check := func(t *testing.T, op, topic string, took time.Duration, err error) {
			t.Helper()
			t.Logf("%s failed in %s: %v", op, took.Round(time.Millisecond), err)
			if !errors.Is(err, kafka.ErrTopicMissing) || !errors.Is(err, kerr.TopicAuthorizationFailed) {
				t.Errorf("%s: %v, want ErrTopicMissing and TOPIC_AUTHORIZATION_FAILED", op, err)
			}
			if err != nil && !strings.Contains(err.Error(), topic) {
				t.Errorf("%s: %q does not name the topic %s", op, err, topic)
			}
			if took > 10*time.Second {
				t.Errorf("%s took %s to fail", op, took)
			}
		}
		topic := uniqueName(t, "missing")
		start := time.Now()
		err := app.Publisher().Publish(topic, newMsg("k", "nowhere"))
		check(t, "Publish", topic, time.Since(start), err)

		sub, err := app.Subscriber(uniqueName(t, "g"), broker.SubscriberOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		start = time.Now()
		_, err = sub.Subscribe(ctx, topic)
		check(t, "Subscribe", topic, time.Since(start), err)
	})

	// Losing READ on the group is not healed by retrying: the subscription
	// ends and its Failure names the authorization error.
	t.Run("revoked group READ ends the subscription", func(t *testing.T) {
		topic, group := uniqueName(t, "t"), uniqueName(t, "g")
		provision(t, topic, group)
		grant(t, topic, subscriberGrants(topic, group)...)
		app := newSCRAMBroker(t, saslAddr, aclUser, aclPassword)
		sub, ch := subscribe(t, app, group, topic, broker.SubscriberOptions{})
		msg := newMsg("k", "before the revoke")
		if err := app.Publisher().Publish(topic, msg); err != nil {
			t.Fatal(err)
		}
		receive(t, ch, waitMsg).Ack() // the subscription runs

		revoke(t, acl(kadm.ACLPatternLiteral).Groups(group).Operations(kadm.OpRead))
		start := time.Now()
		ackUntilClosed(t, ch, 60*time.Second, "the subscription after losing READ on its group")
		f := sub.(broker.Failer).Failure()
		t.Logf("ended %s after the revoke: %v", time.Since(start).Round(time.Millisecond), f)
		if !errors.Is(f, kerr.GroupAuthorizationFailed) {
			t.Fatalf("Failure = %v, want GROUP_AUTHORIZATION_FAILED", f)
		}
		if !strings.Contains(f.Error(), group) || !strings.Contains(f.Error(), topic) {
			t.Errorf("Failure %q does not name the group and topic", f)
		}
	})

	// The runtime reports it: Run returns the subscription's failure, so
	// the process exits saying "not authorized" instead of idling.
	t.Run("service Run returns the authorization failure", func(t *testing.T) {
		ns := uniqueName(t, "acl") + "."
		topic := ns + orderPlaced{}.EventType()
		handled := make(chan string, 1)
		handle := func(svc *service.Service) {
			t.Helper()
			if err := service.Handle(svc, "reserve", func(_ context.Context, e orderPlaced) error {
				select {
				case handled <- e.OrderID:
				default:
				}
				return nil
			}, service.Group("inventory")); err != nil {
				t.Fatal(err)
			}
		}
		run := func(svc *service.Service) (stop func(), errc <-chan error) {
			t.Helper()
			ctx, cancel := context.WithCancel(context.Background())
			c := make(chan error, 1)
			go func() { c <- svc.Run(ctx) }()
			t.Cleanup(cancel)
			select {
			case <-svc.Ready():
			case err := <-c:
				t.Fatalf("Run ended before ready: %v", err)
			case <-time.After(90 * time.Second):
				t.Fatal("service not ready within 90s")
			}
			return cancel, c
		}
		// The operator's run: as admin, it provisions the service's
		// topics (its event topic, retry topics, dead letters).
		adminSvc := service.New(admin, service.WithNamespace(ns))
		handle(adminSvc)
		stop, errc := run(adminSvc)
		stop()
		if err := <-errc; err != nil {
			t.Fatalf("admin Run: %v", err)
		}

		grant(t, topic,
			acl(kadm.ACLPatternPrefixed).Groups(ns).Operations(kadm.OpRead),
			acl(kadm.ACLPatternPrefixed).Topics(ns).Operations(kadm.OpRead, kadm.OpWrite, kadm.OpDescribe))
		app := newSCRAMBroker(t, saslAddr, aclUser, aclPassword)
		svc := service.New(app, service.WithNamespace(ns))
		handle(svc)
		_, errc = run(svc)
		if err := svc.Publish(context.Background(), orderPlaced{OrderID: "o-1"}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-handled:
		case <-time.After(waitMsg):
			t.Fatal("the handler never ran")
		}

		revoke(t, acl(kadm.ACLPatternPrefixed).Groups(ns).Operations(kadm.OpRead))
		start := time.Now()
		select {
		case err := <-errc:
			t.Logf("Run returned %s after the revoke: %v", time.Since(start).Round(time.Millisecond), err)
			if !errors.Is(err, kerr.GroupAuthorizationFailed) {
				t.Fatalf("Run = %v, want GROUP_AUTHORIZATION_FAILED", err)
			}
			if !strings.Contains(err.Error(), ns+"inventory") {
				t.Errorf("Run = %q, want it to name the group", err)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("Run kept going for 60s after the service lost READ on its group")
		}
	})
}
