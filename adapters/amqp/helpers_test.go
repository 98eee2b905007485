package amqp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/pkg/broker"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Watermill's universal suite leaves its publisher goroutines
		// (TestReconnect) and log helpers running after the test returns.
		goleak.IgnoreAnyFunction("github.com/ThreeDotsLabs/watermill/pubsub/tests.TestReconnect.func1"),
		goleak.IgnoreAnyFunction("github.com/ThreeDotsLabs/watermill/pubsub/tests.TestReconnect.func2"),
		goleak.IgnoreAnyFunction("github.com/ThreeDotsLabs/watermill/pubsub/tests.TestReconnect.func3"),
	)
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// env is one test's RabbitMQ environment: unique names, a connection name
// to kill it by, and cleanup of everything it declared.
type env struct {
	t      *testing.T
	url    string
	prefix string // unique exchange and queue prefix
	name   string // connection name

	mu        sync.Mutex
	exchanges []string
	queues    []string
}

// newEnv must be called before brokers are created, so that its cleanup
// (deleting exchanges and queues) runs after theirs.
func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, url: brokertest.AMQPURL(t), prefix: "sytest-" + randomSuffix() + "."}
	e.name = "switchyard-test-" + e.prefix
	t.Cleanup(e.cleanup)
	return e
}

func (e *env) config() Config {
	return Config{
		URL:            e.url,
		ExchangePrefix: e.prefix,
		QueuePrefix:    e.prefix,
		ConnectionName: e.name,
	}
}

// broker opens a Broker closed at the end of the test.
func (e *env) broker(mut func(*Config)) *Broker {
	e.t.Helper()
	cfg := e.config()
	if mut != nil {
		mut(&cfg)
	}
	b, err := New(context.Background(), cfg, nil)
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	e.t.Cleanup(func() {
		if err := b.Close(); err != nil {
			e.t.Errorf("Close: %v", err)
		}
	})
	return b
}

// topic returns a topic name and records its exchange and the given
// groups' queues for deletion.
func (e *env) topic(groups ...string) string {
	topic := "topic-" + randomSuffix()
	e.mu.Lock()
	e.exchanges = append(e.exchanges, e.prefix+topic)
	for _, g := range groups {
		e.queues = append(e.queues, e.prefix+topic+"."+g)
	}
	e.mu.Unlock()
	return topic
}

// trackDeadLetter records for deletion the dead-letter topic a quorum queue
// of group declares (Config.DeadLetterTopic's default).
func (e *env) trackDeadLetter(group string) {
	dl := e.prefix + group + DeadLetterTopicSuffix
	e.track([]string{dl + "." + broker.DeadLetterGroup}, []string{dl})
}

// trackTiers records the delay tiers' exchanges and queues for deletion
// (quorum tiers, the default).
func (e *env) trackTiers(tiers ...time.Duration) {
	for _, tier := range tiers {
		x, q := e.config().WithDefaults().delayTierNames(tier)
		e.track([]string{q}, []string{x})
	}
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", timeout, what)
		}
		<-tick.C
	}
}

func (e *env) track(queues, exchanges []string) {
	e.mu.Lock()
	e.queues = append(e.queues, queues...)
	e.exchanges = append(e.exchanges, exchanges...)
	e.mu.Unlock()
}

func (e *env) cleanup() {
	conn, err := amqp091.Dial(e.url)
	if err != nil {
		e.t.Logf("cleanup: %v", err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		e.t.Logf("cleanup: %v", err)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, q := range e.queues {
		if _, err := ch.QueueDelete(q, false, false, false); err != nil {
			e.t.Logf("cleanup: delete queue %s: %v", q, err)
			if ch, err = conn.Channel(); err != nil {
				return
			}
		}
	}
	for _, x := range e.exchanges {
		if err := ch.ExchangeDelete(x, false, false); err != nil {
			e.t.Logf("cleanup: delete exchange %s: %v", x, err)
			if ch, err = conn.Channel(); err != nil {
				return
			}
		}
	}
}

// raw opens a plain amqp091 channel for the test.
func (e *env) raw() *amqp091.Channel {
	e.t.Helper()
	conn, err := amqp091.Dial(e.url)
	if err != nil {
		e.t.Fatalf("dial: %v", err)
	}
	e.t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		e.t.Fatalf("channel: %v", err)
	}
	return ch
}

// depth returns the number of ready messages in queue.
func (e *env) depth(queue string) int {
	e.t.Helper()
	ch := e.raw()
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		e.t.Fatalf("inspect queue %s: %v", queue, err)
	}
	return q.Messages
}

// killConnections closes this test's broker connections on the server side,
// leaving other users of the shared broker alone.
func killConnections(t testing.TB, connectionName string) {
	t.Helper()
	ctl := brokertest.Rabbitmqctl()
	out, err := exec.Command(ctl, "list_connections", "-q", "--no-table-headers", "pid", "client_properties").CombinedOutput()
	if err != nil {
		t.Fatalf("rabbitmqctl list_connections: %v: %s", err, out)
	}
	n := 0
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.Contains(line, `{"connection_name","`+connectionName+` (`) {
			continue
		}
		pid, _, _ := strings.Cut(line, "\t")
		if out, err := exec.Command(ctl, "close_connection", pid, "test").CombinedOutput(); err != nil {
			t.Fatalf("rabbitmqctl close_connection: %v: %s", err, out)
		}
		n++
	}
	if n == 0 {
		t.Fatalf("no connection named %q found", connectionName)
	}
}

// killConnectionsCommand is killConnections as a shell command, for
// Watermill's RestartServiceCommand.
func killConnectionsCommand(connectionName string) []string {
	ctl := "'" + brokertest.Rabbitmqctl() + "'"
	return []string{"sh", "-c", ctl + ` list_connections -q --no-table-headers pid client_properties | grep -F '{"connection_name","` +
		connectionName + ` (' | cut -f1 | xargs -r -I{} ` + ctl + ` close_connection {} test`}
}

func haveRabbitmqctl(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath(brokertest.Rabbitmqctl()); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("rabbitmqctl is required under CI to test reconnection")
		}
		t.Skip("rabbitmqctl not found: cannot force a disconnect (under CI=true this fails instead)")
	}
}

// receive reads n messages or fails after timeout.
func receive(t *testing.T, ch <-chan *message.Message, n int, timeout time.Duration) []*message.Message {
	t.Helper()
	var got []*message.Message
	deadline := time.After(timeout)
	for len(got) < n {
		select {
		case m, ok := <-ch:
			if !ok {
				t.Fatalf("channel closed after %d of %d messages", len(got), n)
			}
			got = append(got, m)
		case <-deadline:
			t.Fatalf("received %d of %d messages in %s", len(got), n, timeout)
		}
	}
	return got
}

// none asserts that nothing arrives on ch within wait.
func none(t *testing.T, ch <-chan *message.Message, wait time.Duration) {
	t.Helper()
	select {
	case m, ok := <-ch:
		if ok {
			t.Fatalf("unexpected message %s (payload %q)", m.UUID, m.Payload)
		}
	case <-time.After(wait):
	}
}

func newMessages(n int, payload string) []*message.Message {
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = message.NewMessage(randomSuffix()+randomSuffix(), []byte(payload))
	}
	return msgs
}

// unacked returns the number of messages of queue delivered and not
// acknowledged, from rabbitmqctl (0 when rabbitmqctl is unavailable: the
// ready count is then all a test can check).
func unacked(t testing.TB, queue string) int {
	t.Helper()
	out, err := exec.Command(brokertest.Rabbitmqctl(), "list_queues", "-q", "--no-table-headers", "name", "messages_unacknowledged").CombinedOutput()
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(out), "\n") {
		if name, n, ok := strings.Cut(strings.TrimSpace(line), "\t"); ok && name == queue {
			var v int
			fmt.Sscan(n, &v)
			return v
		}
	}
	return 0
}
