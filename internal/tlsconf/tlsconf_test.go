package tlsconf

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Config
		want []string
	}{
		{"off", Config{}, nil},
		{"on, system roots", Config{Enabled: true}, nil},
		{"cert without key", Config{Enabled: true, CertFile: "c.pem"}, []string{`x.tls.cert_file: "c.pem" with x.tls.key_file: ""`}},
		{"files while off", Config{CAFile: "ca.pem"}, []string{"x.tls.enabled: false"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Validate("x.tls")
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("Validate = %v, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestClient(t *testing.T) {
	if tc, err := (Config{}).Client("x.tls"); tc != nil || err != nil {
		t.Errorf("disabled: %v, %v; want nil, nil", tc, err)
	}
	tc, err := Config{Enabled: true, ServerName: "rabbit.internal"}.Client("x.tls")
	if err != nil || tc == nil || tc.ServerName != "rabbit.internal" || tc.MinVersion == 0 {
		t.Errorf("enabled: %+v, %v", tc, err)
	}
	if _, err := (Config{Enabled: true, CAFile: "/nonexistent/ca.pem"}).Client("x.tls"); err == nil || !strings.Contains(err.Error(), "x.tls.ca_file") {
		t.Errorf("missing CA file: %v, want an error naming x.tls.ca_file", err)
	}
}
