package kafka_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-go/switchyard/adapters/kafka"
	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/pkg/broker"
)

// freePort returns a loopback port nobody listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// The SCRAM-SHA-512 handshake against a real broker with a SASL listener
// (a private one: the shared broker is plaintext only): the right
// credentials publish and consume, a wrong password fails New clearly.
func TestSASLSCRAMHandshake(t *testing.T) {
	sasl := freePort(t)
	s := brokertest.StartKafka(t, brokertest.WithScriptEnv("SWITCHYARD_KAFKA_EXTRA_PROPERTIES="+strings.Join([]string{
		"listeners=PLAINTEXT://@HOST@:@PORT@,CONTROLLER://@HOST@:@CONTROLLER_PORT@,SASL_PLAINTEXT://@HOST@:" + strconv.Itoa(sasl),
		"advertised.listeners=PLAINTEXT://@HOST@:@PORT@,SASL_PLAINTEXT://@HOST@:" + strconv.Itoa(sasl),
		"listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
		"sasl.enabled.mechanisms=SCRAM-SHA-512",
		"listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;",
	}, "\n")))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// The user, made through the plaintext listener.
	admCl, err := kgo.NewClient(kgo.SeedBrokers(s.KafkaBrokers()))
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()
	resp, err := kadm.NewClient(admCl).AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{
		User: "svc", Mechanism: kadm.ScramSha512, Iterations: 4096, Password: "s3cret",
	}})
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("create SCRAM user: %v", err)
	}

	saslAddr := "127.0.0.1:" + strconv.Itoa(sasl)
	open := func(password string) (*kafka.Broker, error) {
		cfg := testConfig(t)
		cfg.Brokers = []string{saslAddr}
		cfg.SASL = kafka.SASLConfig{Mechanism: kafka.SASLScramSHA512, Username: "svc", Password: password}
		octx, ocancel := context.WithTimeout(ctx, 15*time.Second)
		defer ocancel()
		return kafka.New(octx, cfg, testLogger(t))
	}

	// The credentials may take a moment to reach the listener.
	var b *kafka.Broker
	for deadline := time.Now().Add(30 * time.Second); ; {
		if b, err = open("s3cret"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("New with the right SCRAM credentials: %v", err)
		}
		select { // not a tight loop while the user propagates
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			t.Fatalf("New with the right SCRAM credentials: %v", err)
		}
	}
	t.Cleanup(func() { _ = b.Close() })
	topic, group := uniqueName(t, "t"), uniqueName(t, "g")
	_, ch := subscribe(t, b, group, topic, broker.SubscriberOptions{})
	msg := newMsg("k", "over scram")
	if err := b.Publisher().Publish(topic, msg); err != nil {
		t.Fatalf("Publish over SASL: %v", err)
	}
	if m := receive(t, ch, waitMsg); m.UUID != msg.UUID {
		t.Fatalf("got %q", m.Payload)
	} else {
		m.Ack()
	}

	bad, err := open("wrong")
	if err == nil {
		bad.Close()
		t.Fatal("New with a wrong SCRAM password succeeded")
	}
	if !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Errorf("New with a wrong password: %v, want SASL_AUTHENTICATION_FAILED", err)
	}
}
