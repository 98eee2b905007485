package config

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/adapters/memory"
	"github.com/switchyard-go/switchyard/pkg/service"
)

type paymentsApp struct {
	Payments struct {
		Provider     string        `yaml:"provider"`
		CaptureLimit int           `yaml:"capture_limit"`
		Timeout      time.Duration `yaml:"timeout"`
		Currencies   []string      `yaml:"currencies"`
	} `yaml:"payments"`
	ReadModel struct {
		DSN string `yaml:"dsn"`
	} `yaml:"read_model"`
}

func (a paymentsApp) Validate() error {
	if a.Payments.CaptureLimit < 0 {
		return errors.New("app.payments.capture_limit: must be >= 0")
	}
	return nil
}

func TestLoadAppDecodesTheAppSection(t *testing.T) {
	file := filepath.Join(t.TempDir(), "payments.yaml")
	if err := os.WriteFile(file, []byte(`service: {name: payments}
app:
  payments:
    provider: acme
    currencies: [EUR, USD]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SWITCHYARD_APP_PAYMENTS_CAPTURE_LIMIT", "500")
	var app paymentsApp
	app.Payments.Timeout = 3 * time.Second // a default the file does not change
	c, err := LoadApp(file, &app)
	if err != nil {
		t.Fatal(err)
	}
	if c.Service.Name != "payments" || app.Payments.Provider != "acme" || app.Payments.CaptureLimit != 500 ||
		app.Payments.Timeout != 3*time.Second || strings.Join(app.Payments.Currencies, ",") != "EUR,USD" {
		t.Fatalf("config %+v, app %+v", c.Service, app)
	}
	// Load, with no app struct, keeps the section without refusing it.
	if c, err := Load(file); err != nil || c.App.IsZero() {
		t.Fatalf("Load: %v, app section %v", err, c.App)
	}
}

func TestAppSectionIsAsStrictAsTheRest(t *testing.T) {
	file := `app:
  payments:
    provider: acme
    captrue_limit: 5
    timeout: soon
  read_model: {dsn: x}
defaults: {concurrency: -2}
`
	var app paymentsApp
	_, err := ParseEnviron([]byte(file), []string{"SWITCHYARD_APP_PAYMENTS_PROVIDR=x", "SWITCHYARD_APP_PAYMENTS_CAPTURE_LIMIT=-1"}, &app)
	wantAll(t, err,
		`line 4: app.payments.captrue_limit: unknown key "captrue_limit", allowed here: provider, capture_limit, timeout, currencies`,
		`line 5: app.payments.timeout: "soon" is not a duration`,
		"SWITCHYARD_APP_PAYMENTS_PROVIDR: no such setting; did you mean SWITCHYARD_APP_PAYMENTS_PROVIDER?",
		"app.payments.capture_limit: must be >= 0", // the app's own Validate
		"defaults.concurrency: -2") // and the framework's problems beside them

	if _, err := ParseEnviron(nil, nil, paymentsApp{}); err == nil || !strings.Contains(err.Error(), "want a non-nil pointer to a struct") {
		t.Errorf("app by value: %v", err)
	}
}

func TestServiceOptionsApplyTheLogger(t *testing.T) {
	c, err := Parse([]byte("log: {format: json, level: debug}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	b, svc := memoryService(t, c, c.serviceOptions(&logs)...)
	defer b.Close()
	runBriefly(t, svc)
	for _, want := range []string{`"msg":"service running"`, `"msg":"handler"`, `"level":"INFO"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, logs.String())
		}
	}
}

func TestEffectiveFillsDefaults(t *testing.T) {
	c, err := Parse([]byte(`broker: {type: kafka, kafka: {brokers: [k1:9092]}}
http: {addr: ":9090"}
defaults: {retry: {max_attempts: 3}}
handlers:
  audit: {ordered: true}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	e := c.Effective()
	if e.Broker.Memory.BufferSize != 0 || e.Broker.AMQP.URL != "" {
		t.Errorf("other brokers' sections kept: %+v %+v", e.Broker.Memory, e.Broker.AMQP)
	}
	if e.Broker.Kafka.ClientID == "" || e.Broker.Kafka.Brokers[0] != "k1:9092" {
		t.Errorf("kafka defaults: %+v", e.Broker.Kafka)
	}
	d := e.Defaults
	if d.Concurrency != service.DefaultConcurrency || d.Timeout != service.DefaultTimeout || d.Retry.MaxAttempts != 3 ||
		d.Retry.InitialInterval == 0 || e.Service.FailurePathTimeout != service.DefaultFailurePathTimeout || e.HTTP.ShutdownTimeout == 0 {
		t.Errorf("defaults: %+v", e)
	}
	a := e.Handlers["audit"]
	if a.Group != "audit" || a.DeadLetterTopic != "audit.dead_letter" || a.OrderOnRetry != service.OrderKeep || a.Retry.MaxAttempts != 3 {
		t.Errorf("handlers.audit: %+v", a)
	}
}

func TestHTTPSectionValidated(t *testing.T) {
	_, err := Parse([]byte("http: {addr: nowhere, shutdown_timeout: -1s}\n"), nil)
	wantAll(t, err, `http.addr: "nowhere", want host:port`, "http.shutdown_timeout: -1s")
	_, err = Parse([]byte("http: {pprof: true}\n"), nil)
	wantAll(t, err, "http.pprof: true, but http.addr is empty")
	_, err = Parse([]byte("http: {addr: ':9090', readiness: {broker_timeout: -2s, max_backlog: -5}}\n"), nil)
	wantAll(t, err, "http.readiness.broker_timeout: -2s, want > 0", "http.readiness.max_backlog: -5, want >= 0")
	_, err = Parse([]byte("http: {addr: ':9090', readiness: {max_backlgo: 5}}\n"), nil)
	wantAll(t, err, "max_backlgo")
	env := map[string]string{"SWITCHYARD_HTTP_READINESS_MAX_BACKLOG": "1000", "SWITCHYARD_HTTP_READINESS_BROKER_TIMEOUT": "500ms"}
	c, err := Parse([]byte("http: {addr: ':9090'}\n"), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil || c.HTTP.Readiness.MaxBacklog != 1000 || c.HTTP.Readiness.BrokerTimeout != 500*time.Millisecond {
		t.Errorf("readiness from the environment: %+v, %v", c.HTTP.Readiness, err)
	}
}

// runBriefly runs svc until it is ready, then stops it.
func runBriefly(t *testing.T, svc *service.Service) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	select {
	case <-svc.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not ready")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// memoryService is a service on c's memory broker with one handler, h.
func memoryService(t *testing.T, c Config, opts ...service.Option) (*memory.Broker, *service.Service) {
	t.Helper()
	b, err := memory.New(c.Broker.Memory, nil)
	if err != nil {
		t.Fatal(err)
	}
	svc := service.New(b, opts...)
	if err := service.Handle(svc, "h", func(context.Context, placed) error { return nil }); err != nil {
		t.Fatal(err)
	}
	return b, svc
}
