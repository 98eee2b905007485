package config

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// tagsNoBrokers builds a program without the RabbitMQ and Kafka adapters.
const tagsNoBrokers = "switchyard_no_kafka,switchyard_no_amqp"

// A memory-only program built with the tags depends on neither client
// library, and a configuration asking it for a broker left out is refused
// with the tag's name. (Without the tags, config.Open reaches every
// broker: the rest of this package's tests.)
func TestBuildTagsLeaveBrokersOut(t *testing.T) {
	if testing.Short() && os.Getenv("CI") != "true" {
		t.Skip("builds a program (-short; never skipped under CI=true)")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	goCmd := func(env []string, args ...string) (string, error) {
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	deps, err := goCmd(nil, "list", "-deps", "-tags", tagsNoBrokers, "./examples/payments")
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, deps)
	}
	for _, lib := range []string{"github.com/twmb/franz-go", "github.com/rabbitmq/amqp091-go", "/adapters/kafka", "/adapters/amqp"} {
		if strings.Contains(deps, lib) {
			t.Errorf("examples/payments built with -tags %s depends on %s", tagsNoBrokers, lib)
		}
	}
	bin := filepath.Join(t.TempDir(), "payments")
	if out, err := goCmd(nil, "build", "-tags", tagsNoBrokers, "-o", bin, "./examples/payments"); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "SWITCHYARD_BROKER_TYPE=kafka", "SWITCHYARD_BROKER_KAFKA_BROKERS=k:9092")
	out, err := cmd.CombinedOutput()
	for _, want := range []string{
		`broker.type: "kafka": this program was built with -tags switchyard_no_kafka`,
		"SWITCHYARD_BROKER_KAFKA_BROKERS: no such setting",
	} {
		if err == nil || !strings.Contains(string(out), want) {
			t.Errorf("payments with broker.type kafka: %v, want an error with %q:\n%s", err, want, out)
		}
	}
}
