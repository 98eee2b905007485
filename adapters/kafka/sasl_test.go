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
	s := brokertest.StartKafka(t, brokertest.WithScriptEnv("SWITCHYARD_KAFKA_EXTRA_PROPERTIES="+strings.Join(scramListener(sasl), "\n")))
	// The user, made through the plaintext listener.
	admCl, err := kgo.NewClient(kgo.SeedBrokers(s.KafkaBrokers()))
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()
	createSCRAMUser(t, kadm.NewClient(admCl), "svc", "s3cret")

	saslAddr := "127.0.0.1:" + strconv.Itoa(sasl)
	b := newSCRAMBroker(t, saslAddr, "svc", "s3cret")
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

	cfg := testConfig(t)
	cfg.Brokers = []string{saslAddr}
	cfg.SASL = kafka.SASLConfig{Mechanism: kafka.SASLScramSHA512, Username: "svc", Password: "wrong"}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	bad, err := kafka.New(ctx, cfg, testLogger(t))
	if err == nil {
		bad.Close()
		t.Fatal("New with a wrong SCRAM password succeeded")
	}
	if !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Errorf("New with a wrong password: %v, want SASL_AUTHENTICATION_FAILED", err)
	}
}

// scramListener are the server properties of a broker with a
// SASL_PLAINTEXT listener for SCRAM-SHA-512 on port, beside the plaintext
// one the scripts' readiness check uses.
func scramListener(port int) []string {
	return []string{
		"listeners=PLAINTEXT://@HOST@:@PORT@,CONTROLLER://@HOST@:@CONTROLLER_PORT@,SASL_PLAINTEXT://@HOST@:" + strconv.Itoa(port),
		"advertised.listeners=PLAINTEXT://@HOST@:@PORT@,SASL_PLAINTEXT://@HOST@:" + strconv.Itoa(port),
		"listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
		"sasl.enabled.mechanisms=SCRAM-SHA-512",
		"listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;",
	}
}

// createSCRAMUser creates a SCRAM-SHA-512 user through adm.
func createSCRAMUser(t *testing.T, adm *kadm.Client, user, password string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{
		User: user, Mechanism: kadm.ScramSha512, Iterations: 4096, Password: password,
	}})
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("create SCRAM user %s: %v", user, err)
	}
}

// newSCRAMBroker opens a Broker on the SASL listener addr as user, closed
// when the test ends. A user just created may take a moment to reach the
// listener, so New is retried for up to 30s.
func newSCRAMBroker(t *testing.T, addr, user, password string) *kafka.Broker {
	t.Helper()
	cfg := testConfig(t)
	cfg.Brokers = []string{addr}
	cfg.SASL = kafka.SASLConfig{Mechanism: kafka.SASLScramSHA512, Username: user, Password: password}
	for deadline := time.Now().Add(30 * time.Second); ; {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		b, err := kafka.New(ctx, cfg, testLogger(t))
		cancel()
		if err == nil {
			t.Cleanup(func() { _ = b.Close() })
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("New as SCRAM user %s: %v", user, err)
		}
		time.Sleep(200 * time.Millisecond) // not a tight loop while the user propagates; bounded by deadline
	}
}
