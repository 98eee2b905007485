// Package tlsconf is the TLS section every broker adapter's configuration
// shares: the same yaml keys, the same checks, the same *tls.Config.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// Config configures TLS to a broker. Files are PEM. Disabled by default.
type Config struct {
	// Enabled turns TLS on.
	Enabled bool `yaml:"enabled"`
	// CAFile verifies the broker's certificate; empty means the system roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are the client certificate, for mutual TLS.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the host name checked in the broker's certificate.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify disables certificate verification. Tests only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// Validate reports every inconsistency at once; prefix is the section's
// path, e.g. "broker.kafka.tls".
func (c Config) Validate(prefix string) error {
	var err error
	if (c.CertFile == "") != (c.KeyFile == "") {
		err = errors.Join(err, fmt.Errorf("%s.cert_file: %q with %s.key_file: %q, want both set or neither", prefix, c.CertFile, prefix, c.KeyFile))
	}
	if !c.Enabled && (c.CAFile != "" || c.CertFile != "" || c.KeyFile != "" || c.ServerName != "" || c.InsecureSkipVerify) {
		err = errors.Join(err, fmt.Errorf("%s.enabled: false but other tls fields are set; set enabled: true", prefix))
	}
	return err
}

// Client returns the client *tls.Config, or nil when TLS is disabled.
// prefix names the section in errors.
func (c Config) Client(prefix string) (*tls.Config, error) {
	if !c.Enabled {
		return nil, nil
	}
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         c.ServerName,
		InsecureSkipVerify: c.InsecureSkipVerify, //nolint:gosec // an explicit opt-in, documented as tests only
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%s.ca_file: %w", prefix, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s.ca_file: %q holds no PEM certificate", prefix, c.CAFile)
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%s.cert_file/key_file: %w", prefix, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
