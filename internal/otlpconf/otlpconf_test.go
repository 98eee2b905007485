package otlpconf

import (
	"strings"
	"testing"
)

func TestWithDefaultsPerProtocol(t *testing.T) {
	if got := (Config{}).WithDefaults("/v1/x"); got != (Config{Protocol: ProtocolHTTP, Endpoint: DefaultHTTPEndpoint, URLPath: "/v1/x"}) {
		t.Errorf("http defaults: %+v", got)
	}
	if got := (Config{Protocol: ProtocolGRPC}).WithDefaults("/v1/x"); got != (Config{Protocol: ProtocolGRPC, Endpoint: DefaultGRPCEndpoint}) {
		t.Errorf("grpc defaults (no path): %+v", got)
	}
	if got := (Config{Endpoint: "c:1", URLPath: "/p"}).WithDefaults("/v1/x"); got.Endpoint != "c:1" || got.URLPath != "/p" {
		t.Errorf("set fields overridden: %+v", got)
	}
}

func TestValidateReportsEveryField(t *testing.T) {
	err := Config{Protocol: "udp", Endpoint: "nohost", URLPath: "v1"}.Validate("tracing.otlp")
	for _, want := range []string{`tracing.otlp.protocol: "udp"`, `tracing.otlp.endpoint: "nohost"`, `tracing.otlp.url_path: "v1", want a path starting with /`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want it to contain %s", err, want)
		}
	}
	if err := (Config{Protocol: ProtocolGRPC, URLPath: "/v1/traces"}).Validate("m.otlp"); err == nil || !strings.Contains(err.Error(), "grpc, which has no path") {
		t.Errorf("grpc with a path: %v", err)
	}
	if err := (Config{Protocol: ProtocolGRPC, Endpoint: "collector:4317", Insecure: true}).Validate("m.otlp"); err != nil {
		t.Errorf("valid: %v", err)
	}
}
