package admin_test

import (
	"strings"
	"testing"

	"github.com/switchyard-go/switchyard/pkg/admin"
	"github.com/switchyard-go/switchyard/pkg/ops"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  ops.Config
		want []string // substrings of the error; none: valid
	}{
		{"off", ops.Config{}, nil},
		{"on", ops.Config{Addr: ":9090", Admin: admin.Config{Enabled: true, Token: token, Write: true}}, nil},
		{"no token", ops.Config{Addr: ":9090", Admin: admin.Config{Enabled: true}}, []string{"http.admin.token: required"}},
		{"short token", ops.Config{Addr: ":9090", Admin: admin.Config{Enabled: true, Token: "secret"}}, []string{"http.admin.token: 6 characters, want at least 16"}},
		{"no server", ops.Config{Admin: admin.Config{Enabled: true, Token: token}}, []string{"http.admin.enabled: true, but http.addr is empty"}},
		{"write while off", ops.Config{Addr: ":9090", Admin: admin.Config{Write: true}}, []string{"http.admin.write: true, but http.admin.enabled is false"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate("http")
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("valid config refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("invalid config accepted, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q misses %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error prints the token: %q", err)
			}
		})
	}
}
