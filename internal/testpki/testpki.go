// Package testpki writes a throwaway public-key infrastructure for tests of
// TLS listeners on loopback: a CA, a server certificate for localhost and
// 127.0.0.1 and a client certificate, all signed by that CA, as PEM files.
// Brokers read the files from disk, so the tests that start private
// RabbitMQ or Kafka nodes with a TLS listener share this one generator.
package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI names the PEM files New wrote. Keys are unencrypted PKCS#8.
type PKI struct {
	// CA is the certificate of the CA that signed the others.
	CA string
	// ServerCert and ServerKey are for the hosts localhost and 127.0.0.1.
	ServerCert, ServerKey string
	// ServerKeystore holds the server's key followed by its certificate and
	// the CA's: the one-file form a PEM keystore takes (Kafka's
	// ssl.keystore.type=PEM).
	ServerKeystore string
	// ClientCert and ClientKey have the client's name as subject CN, for
	// mutual TLS.
	ClientCert, ClientKey string
}

// New writes a fresh CA and the certificates it signs into dir; clientCN is
// the common name of the client certificate. The certificates are valid
// from an hour ago for a day.
func New(tb testing.TB, dir, clientCN string) PKI {
	tb.Helper()
	caKey := newKey(tb)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "switchyard test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		tb.Fatal(err)
	}
	p := PKI{CA: filepath.Join(dir, "ca.pem")}
	writePEM(tb, p.CA, pemBlock("CERTIFICATE", caDER))
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage, hosts bool) (certFile, keyFile string, cert, key []byte) {
		k := newKey(tb)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		}
		if hosts {
			tmpl.DNSNames = []string{"localhost"}
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			tb.Fatal(err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			tb.Fatal(err)
		}
		cert, key = pemBlock("CERTIFICATE", der), pemBlock("PRIVATE KEY", keyDER)
		certFile, keyFile = filepath.Join(dir, cn+".pem"), filepath.Join(dir, cn+".key")
		writePEM(tb, certFile, cert)
		writePEM(tb, keyFile, key)
		return certFile, keyFile, cert, key
	}
	var cert, key []byte
	p.ServerCert, p.ServerKey, cert, key = issue(2, "localhost", x509.ExtKeyUsageServerAuth, true)
	p.ServerKeystore = filepath.Join(dir, "localhost.keystore.pem")
	writePEM(tb, p.ServerKeystore, append(append(key, cert...), pemBlock("CERTIFICATE", caDER)...))
	p.ClientCert, p.ClientKey, _, _ = issue(3, clientCN, x509.ExtKeyUsageClientAuth, false)
	return p
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func writePEM(tb testing.TB, path string, data []byte) {
	tb.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		tb.Fatal(err)
	}
}
