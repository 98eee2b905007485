package kafka_test

import (
	"context"
	"crypto/x509"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/adapters/kafka"
	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/internal/testpki"
	"github.com/switchyard-go/switchyard/pkg/broker"
)

// TLS to a real broker with an SSL listener that requires client
// certificates (a private one: the shared broker is plaintext only). The
// listener reads the PEM files testpki writes: its keystore holds the
// unencrypted PKCS#8 key and the certificate chain, so no
// ssl.key.password is set. A client with the CA and a certificate
// publishes and consumes; one without a certificate, or trusting another
// CA, fails New with an error about the certificate, before its deadline.
func TestTLSListener(t *testing.T) {
	dir := t.TempDir()
	pki := testpki.New(t, dir, "switchyard-client")
	ssl := freePort(t)
	brokertest.StartKafka(t, brokertest.WithScriptEnv("SWITCHYARD_KAFKA_EXTRA_PROPERTIES="+strings.Join([]string{
		"listeners=PLAINTEXT://@HOST@:@PORT@,CONTROLLER://@HOST@:@CONTROLLER_PORT@,SSL://@HOST@:" + strconv.Itoa(ssl),
		"advertised.listeners=PLAINTEXT://@HOST@:@PORT@,SSL://@HOST@:" + strconv.Itoa(ssl),
		"listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL",
		"listener.name.ssl.ssl.keystore.type=PEM",
		"listener.name.ssl.ssl.keystore.location=" + pki.ServerKeystore,
		"listener.name.ssl.ssl.truststore.type=PEM",
		"listener.name.ssl.ssl.truststore.location=" + pki.CA,
		"listener.name.ssl.ssl.client.auth=required",
	}, "\n")))
	sslAddr := "127.0.0.1:" + strconv.Itoa(ssl)
	const newTimeout = 15 * time.Second
	open := func(tc kafka.TLSConfig) (*kafka.Broker, time.Duration, error) {
		cfg := testConfig(t)
		cfg.Brokers = []string{sslAddr}
		cfg.TLS = tc
		ctx, cancel := context.WithTimeout(context.Background(), newTimeout)
		defer cancel()
		start := time.Now()
		b, err := kafka.New(ctx, cfg, testLogger(t))
		return b, time.Since(start), err
	}
	mutual := kafka.TLSConfig{Enabled: true, CAFile: pki.CA, CertFile: pki.ClientCert, KeyFile: pki.ClientKey}

	t.Run("mutual TLS publishes and consumes", func(t *testing.T) {
		b, _, err := open(mutual)
		if err != nil {
			t.Fatalf("New over TLS with the CA and a client certificate: %v", err)
		}
		t.Cleanup(func() { _ = b.Close() })
		topic, group := uniqueName(t, "t"), uniqueName(t, "g")
		_, ch := subscribe(t, b, group, topic, broker.SubscriberOptions{})
		msg := newMsg("k", "over tls")
		if err := b.Publisher().Publish(topic, msg); err != nil {
			t.Fatalf("Publish over TLS: %v", err)
		}
		if m := receive(t, ch, waitMsg); m.UUID != msg.UUID {
			t.Fatalf("got %q", m.Payload)
		} else {
			m.Ack()
		}
	})

	// refused checks that New failed on its own, not at its deadline, with
	// an error that tells the operator the certificate is the problem.
	refused := func(t *testing.T, b *kafka.Broker, took time.Duration, err error) {
		t.Helper()
		if err == nil {
			b.Close()
			t.Fatal("New succeeded")
		}
		if errors.Is(err, context.DeadlineExceeded) || took >= newTimeout {
			t.Errorf("New failed only at its deadline (%s): %v", took, err)
		}
		if !strings.Contains(err.Error(), "certificate") {
			t.Errorf("New: %v, want an error about the certificate", err)
		}
		t.Logf("refused in %s: %v", took.Round(time.Millisecond), err)
	}

	t.Run("client without a certificate refused", func(t *testing.T) {
		b, took, err := open(kafka.TLSConfig{Enabled: true, CAFile: pki.CA})
		refused(t, b, took, err)
	})

	t.Run("server certificate from an unknown CA refused", func(t *testing.T) {
		other := testpki.New(t, t.TempDir(), "switchyard-client")
		tc := mutual
		tc.CAFile = other.CA
		b, took, err := open(tc)
		refused(t, b, took, err)
		var uerr x509.UnknownAuthorityError
		if !errors.As(err, &uerr) {
			t.Errorf("New: %v, want x509.UnknownAuthorityError", err)
		}
	})
}
