package amqp

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/internal/testpki"
	"github.com/switchyard-go/switchyard/pkg/broker"
)

// clientCN is the subject of the client certificate the EXTERNAL test
// authenticates with; the private node has a user of that name.
const clientCN = "switchyard-client"

// TestPrivateNode runs what must not touch the shared broker on one
// private RabbitMQ node (one start for all subtests): a TLS listener that
// verifies client certificates and offers EXTERNAL, a dead-letter worker
// that retries unroutable dead letters every second instead of every 3
// minutes, a memory alarm, and a restart.
func TestPrivateNode(t *testing.T) {
	dir := t.TempDir()
	pki := testpki.New(t, dir, clientCN)
	tlsPort := freePort(t)
	conf := filepath.Join(dir, "extra.conf")
	writeFile(t, conf, fmt.Sprintf(`listeners.ssl.default = 127.0.0.1:%d
ssl_options.cacertfile = %s
ssl_options.certfile = %s
ssl_options.keyfile = %s
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = false
auth_mechanisms.1 = PLAIN
auth_mechanisms.2 = AMQPLAIN
auth_mechanisms.3 = EXTERNAL
ssl_cert_login_from = common_name
`, tlsPort, pki.CA, pki.ServerCert, pki.ServerKey))
	advanced := filepath.Join(dir, "advanced.config")
	writeFile(t, advanced, "[{rabbit, [{dead_letter_worker_publisher_confirm_timeout, 1000}]}].\n")
	s := brokertest.StartRabbitMQ(t, brokertest.WithScriptEnv(
		"SWITCHYARD_RABBITMQ_CONF_EXTRA="+conf,
		"SWITCHYARD_RABBITMQ_ADVANCED_CONFIG="+advanced,
		"SWITCHYARD_RABBITMQ_PLUGINS=rabbitmq_auth_mechanism_ssl",
	))
	ctl := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(s.Rabbitmqctl(), args...).CombinedOutput(); err != nil {
			t.Fatalf("rabbitmqctl %v: %v: %s", args, err, out)
		}
	}
	ctl("add_user", clientCN, randomSuffix())
	ctl("set_permissions", "-p", "/", clientCN, ".*", ".*", ".*")
	open := func(t *testing.T, mut func(*Config)) *Broker {
		t.Helper()
		cfg := Config{URL: s.AMQPURL(), ReconnectBackoff: 50 * time.Millisecond, MaxReconnectBackoff: 500 * time.Millisecond}
		if mut != nil {
			mut(&cfg)
		}
		b, err := New(context.Background(), cfg, nil)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	}

	t.Run("TLS", func(t *testing.T) {
		amqps := fmt.Sprintf("amqps://guest:guest@127.0.0.1:%d/", tlsPort)
		verified := TLSConfig{Enabled: true, CAFile: pki.CA, ServerName: "localhost"}
		t.Run("verified handshake, PLAIN", func(t *testing.T) {
			roundTrip(t, open(t, func(c *Config) { c.URL = amqps; c.TLS = verified }))
		})
		t.Run("EXTERNAL with a client certificate", func(t *testing.T) {
			tc := verified
			tc.CertFile, tc.KeyFile = pki.ClientCert, pki.ClientKey
			// No password anywhere: the certificate's CN is the user.
			name := "external-" + randomSuffix()
			roundTrip(t, open(t, func(c *Config) {
				c.URL = fmt.Sprintf("amqps://127.0.0.1:%d/", tlsPort)
				c.TLS, c.AuthMechanism, c.ConnectionName = tc, AuthExternal, name
			}))
			out, err := exec.Command(s.Rabbitmqctl(), "list_connections", "-q", "--no-table-headers", "user", "auth_mechanism", "client_properties").CombinedOutput()
			if err != nil {
				t.Fatalf("rabbitmqctl list_connections: %v: %s", err, out)
			}
			found := false
			for _, line := range strings.Split(string(out), "\n") {
				if strings.Contains(line, name) {
					found = true
					if !strings.HasPrefix(line, clientCN+"\tEXTERNAL\t") {
						t.Errorf("connection %s: %q, want user %s authenticated by EXTERNAL", name, line, clientCN)
					}
				}
			}
			if !found {
				t.Errorf("no connection named %s in:\n%s", name, out)
			}
		})
		t.Run("skipped verification is logged", func(t *testing.T) {
			var logs strings.Builder
			var mu sync.Mutex
			logger := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
			b, err := New(context.Background(), Config{URL: amqps, TLS: TLSConfig{Enabled: true, InsecureSkipVerify: true}}, logger)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			mu.Lock()
			defer mu.Unlock()
			if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "insecure_skip_verify") {
				t.Errorf("log %q: want a warning about insecure_skip_verify", logs.String())
			}
		})
		t.Run("unknown CA refused", func(t *testing.T) {
			other := testpki.New(t, t.TempDir(), clientCN)
			_, err := New(context.Background(), Config{URL: amqps, TLS: TLSConfig{Enabled: true, CAFile: other.CA, ServerName: "localhost"}}, nil)
			var uerr x509.UnknownAuthorityError
			if !errors.As(err, &uerr) {
				t.Fatalf("New with a CA that did not sign the server: %v, want x509.UnknownAuthorityError", err)
			}
		})
	})

	// Quorum tiers dead-letter at least once: a delayed message whose group
	// queue is deleted while it waits stays in the tier, and reaches the
	// queue once the group subscribes again. Break it: DelayQueueType
	// classic and the message is dropped.
	t.Run("delay to a deleted queue is kept", func(t *testing.T) {
		tiers := []time.Duration{time.Second}
		b := open(t, func(c *Config) { c.DelayTiers = tiers })
		topic := "kept-" + randomSuffix()
		_, control := subscribe(t, b, "control", topic, broker.SubscriberOptions{})
		sub, err := b.NewSubscriber("g", broker.SubscriberOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		if err := sub.SubscribeInitialize(topic); err != nil {
			t.Fatal(err)
		}
		msg := newMessages(1, "kept")[0]
		if err := b.Delay(context.Background(), topic, "g", msg, time.Second); err != nil {
			t.Fatalf("Delay: %v", err)
		}
		raw := rawChannel(t, s.AMQPURL())
		if _, err := raw.QueueDelete(topic+".g", false, false, false); err != nil {
			t.Fatal(err)
		}
		// A message delayed after it in the same tier expires after it:
		// once that one is back, the first has expired too, with no queue
		// to go to.
		if err := b.Delay(context.Background(), topic, "control", newMessages(1, "mark")[0], time.Second); err != nil {
			t.Fatalf("Delay: %v", err)
		}
		receive(t, control, 1, 15*time.Second)[0].Ack()
		if err := b.Delay(context.Background(), topic, "g", msg, time.Second); err == nil {
			t.Error("Delay to a deleted group queue succeeded; want an error (the check is not cached)")
		}
		b.topo.forgetQueue(topic, "g", false)
		msgs, err := sub.Subscribe(context.Background(), topic)
		if err != nil {
			t.Fatal(err)
		}
		if m := receive(t, msgs, 1, 30*time.Second)[0]; m.UUID != msg.UUID {
			t.Fatalf("got %s, want %s", m.UUID, msg.UUID)
		} else {
			m.Ack()
		}
	})

	// A real connection.blocked: a memory alarm (watermark 0) on this node.
	// RabbitMQ blocks a connection (and says so) when it next publishes:
	// that first publish waits for a confirm that cannot come and fails
	// at ConfirmTimeout, never succeeding silently; later ones fail fast.
	// Check (readiness) reports the alarm's reason until it clears.
	t.Run("publish fails fast while blocked", func(t *testing.T) {
		b := open(t, func(c *Config) { c.ConfirmTimeout = 2 * time.Second })
		topic := "blocked-" + randomSuffix()
		subscribe(t, b, "g", topic, broker.SubscriberOptions{})
		var health broker.HealthChecker = b // what /readyz asks
		if err := health.Check(context.Background()); err != nil {
			t.Fatalf("Check before the alarm = %v, want nil", err)
		}
		ctl("set_vm_memory_high_watermark", "0")
		restored := false
		restore := func() {
			if !restored {
				restored = true
				ctl("set_vm_memory_high_watermark", "0.4")
			}
		}
		defer restore()
		// A PublishAsync message the blocked broker never confirms is
		// reported once, at ConfirmTimeout; its confirm after the alarm
		// is ignored. Break it: make pubChan.expire do nothing and it is
		// never reported.
		async := newAsyncOutcomes(t, 1)
		b.Publisher().(broker.AsyncPublisher).PublishAsync(context.Background(), topic, async.done, newMessages(1, "async")...)
		for id, err := range async.wait(1, 15*time.Second) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrBlocked) {
				t.Fatalf("PublishAsync under a memory alarm: message %s: %v, want a confirm timeout or ErrBlocked", id, err)
			}
		}
		if err := b.Publisher().Publish(topic, newMessages(1, "x")...); err == nil {
			t.Fatal("first Publish under a memory alarm succeeded")
		} else if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrBlocked) {
			t.Fatalf("first Publish under a memory alarm: %v, want a confirm timeout or ErrBlocked", err)
		}
		waitFor(t, 15*time.Second, "connection.blocked", func() bool { return b.blocked.Load() != nil })
		start := time.Now()
		err := b.Publisher().Publish(topic, newMessages(1, "x")...)
		if !errors.Is(err, ErrBlocked) || !strings.Contains(err.Error(), "memory") {
			t.Fatalf("Publish while blocked: %v, want ErrBlocked naming the memory alarm", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("Publish while blocked took %s, want it to fail fast", d)
		}
		// Readiness says why: ErrBlocked with RabbitMQ's reason.
		if err := health.Check(context.Background()); !errors.Is(err, ErrBlocked) || !strings.Contains(err.Error(), "memory") {
			t.Errorf("Check while blocked = %v, want ErrBlocked naming the memory alarm", err)
		}
		restore()
		waitFor(t, 15*time.Second, "Check to report healthy after the alarm cleared", func() bool {
			return health.Check(context.Background()) == nil
		})
		waitFor(t, 15*time.Second, "publishing to resume", func() bool {
			return b.Publisher().Publish(topic, newMessages(1, "x")...) == nil
		})
	})

	// PublishAsync reports every message exactly once when the connection
	// dies with confirms pending: the unconfirmed ones with an error
	// wrapping broker.ErrDisconnected, never silence; every message
	// reported confirmed is in the queue. Break it: make failAll forget
	// async entries and the wait for all outcomes times out.
	t.Run("async publish reports every pending confirm when the connection dies", func(t *testing.T) {
		name := "async-" + randomSuffix()
		b := open(t, func(c *Config) { c.ConnectionName = name; c.ConfirmTimeout = 20 * time.Second })
		topic := "async-" + randomSuffix()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := b.Provision(ctx, topic, "g"); err != nil {
			t.Fatal(err)
		}
		// Publish until the connection is closed, so that confirms are
		// pending whenever rabbitmqctl gets to it (it takes a second or
		// two; a fixed batch was all confirmed by then on an idle machine).
		const perCall, limit = 500, 2_000_000
		var (
			mu       sync.Mutex
			outcome  = map[string]error{}
			reported atomic.Int64
			changed  = make(chan struct{}, 1)
		)
		done := func(m *message.Message, err error) {
			mu.Lock()
			if prev, dup := outcome[m.UUID]; dup {
				t.Errorf("message %s reported twice: %v, then %v", m.UUID, prev, err)
			}
			outcome[m.UUID] = err
			mu.Unlock()
			reported.Add(1)
			select {
			case changed <- struct{}{}:
			default:
			}
		}
		waitReported := func(n int64, what string) {
			t.Helper()
			for reported.Load() < n {
				select {
				case <-changed:
				case <-ctx.Done():
					t.Fatalf("%d of %d publishes reported: %s", reported.Load(), n, what)
				}
			}
		}
		stop, published := make(chan struct{}), make(chan struct{})
		var issued atomic.Int64
		go func() {
			defer close(published)
			for issued.Load() < limit {
				select {
				case <-stop:
					return
				default:
				}
				b.Publisher().(broker.AsyncPublisher).PublishAsync(ctx, topic, done, newMessages(perCall, "async")...)
				issued.Add(perCall)
			}
		}()
		waitReported(2000, "no confirms before the kill") // some confirmed, many pending
		out, err := exec.Command(s.Rabbitmqctl(), "list_connections", "-q", "--no-table-headers", "pid", "client_properties").CombinedOutput()
		if err != nil {
			t.Fatalf("rabbitmqctl list_connections: %v: %s", err, out)
		}
		killed := 0
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, `{"connection_name","`+name+` (`) {
				pid, _, _ := strings.Cut(line, "\t")
				ctl("close_connection", pid, "test: connection dies with confirms pending")
				killed++
			}
		}
		if killed == 0 {
			t.Fatalf("no connection named %s", name)
		}
		close(stop)
		<-published
		waitReported(issued.Load(), "the rest were never answered")
		confirmed, disconnected := 0, 0
		mu.Lock()
		for id, err := range outcome {
			switch {
			case err == nil:
				confirmed++
			case errors.Is(err, broker.ErrDisconnected):
				disconnected++
			default:
				t.Errorf("message %s: %v, want a confirm or broker.ErrDisconnected", id, err)
			}
		}
		mu.Unlock()
		if disconnected == 0 {
			t.Fatalf("%d confirmed, none failed: the connection died with no confirm pending, the test proved nothing", confirmed)
		}
		q, err := rawChannel(t, s.AMQPURL()).QueueDeclarePassive(b.cfg.queueName(topic, "g"), true, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if q.Messages < confirmed {
			t.Errorf("queue holds %d messages, %d were confirmed: confirmed messages lost", q.Messages, confirmed)
		}
		t.Logf("%d confirmed, %d failed with ErrDisconnected, %d in the queue", confirmed, disconnected, q.Messages)
	})

	// A subscription that RabbitMQ refuses to let back in (permissions
	// revoked while its consumer was lost) ends: its channel closes and
	// Failure says why, instead of retrying silently for ever. Break it:
	// make fatal return false and the channel stays open; drop the
	// topology's renew in resubscribe and about one run in six resumes on
	// the channel whose cached permission checks still say yes.
	t.Run("refused resubscribe ends the subscription", func(t *testing.T) {
		const user = "limited"
		pass := randomSuffix()
		ctl("add_user", user, pass)
		ctl("set_permissions", "-p", "/", user, ".*", ".*", ".*")
		u, err := url.Parse(s.AMQPURL())
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.UserPassword(user, pass)
		name := "refused-" + randomSuffix()
		b := open(t, func(c *Config) { c.URL = u.String(); c.ConnectionName = name })
		topic := "refused-" + randomSuffix()
		sub, msgs := subscribe(t, b, "g", topic, broker.SubscriberOptions{})
		if sub.Failure() != nil {
			t.Fatalf("Failure before anything went wrong: %v", sub.Failure())
		}
		ctl("set_permissions", "-p", "/", user, "^$", ".*", ".*") // no configure: no queue.declare
		out, err := exec.Command(s.Rabbitmqctl(), "list_connections", "-q", "--no-table-headers", "pid", "client_properties").CombinedOutput()
		if err != nil {
			t.Fatalf("rabbitmqctl list_connections: %v: %s", err, out)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, name+" (consume)") {
				pid, _, _ := strings.Cut(line, "\t")
				ctl("close_connection", pid, "test: consumer lost")
			}
		}
		select {
		case m, ok := <-msgs:
			if ok {
				t.Fatalf("unexpected message %s", m.UUID)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("subscription still open 30s after RabbitMQ refused to let it resubscribe")
		}
		if err := sub.Failure(); err == nil || !strings.Contains(err.Error(), "ACCESS_REFUSED") || !strings.Contains(err.Error(), topic) {
			t.Fatalf("Failure = %v, want ACCESS_REFUSED naming the topic", err)
		}
	})

	// Restarting the node under a publisher and a consumer loses nothing
	// that Publish confirmed; duplicates are allowed (at least once) and
	// counted.
	t.Run("restart loses nothing", func(t *testing.T) {
		b := open(t, nil)
		topic := "restart-" + randomSuffix()
		_, msgs := subscribe(t, b, "g", topic, broker.SubscriberOptions{})
		const total = 200
		var (
			mu        sync.Mutex
			confirmed = map[string]bool{}
			seen      = map[string]int{}
		)
		restartAt := make(chan struct{})
		pubDone := make(chan struct{})
		go func() {
			defer close(pubDone)
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for i := range total {
				if i == total/4 {
					close(restartAt)
				}
				m := message.NewMessage(fmt.Sprintf("m-%03d-%s", i, randomSuffix()), []byte(strconv.Itoa(i)))
				deadline := time.Now().Add(60 * time.Second)
				for b.Publisher().Publish(topic, m) != nil {
					// Not confirmed: maybe stored, maybe not; publish again.
					if time.Now().After(deadline) {
						t.Errorf("message %d not confirmed within 60s of retries", i)
						return
					}
					<-tick.C
				}
				mu.Lock()
				confirmed[m.UUID] = true
				mu.Unlock()
			}
		}()
		consumed := make(chan struct{})
		go func() {
			defer close(consumed)
			for m := range msgs {
				mu.Lock()
				seen[m.UUID]++
				mu.Unlock()
				m.Ack()
			}
		}()
		<-restartAt
		s.Restart()
		<-pubDone
		waitFor(t, 60*time.Second, "every confirmed message consumed", func() bool {
			mu.Lock()
			defer mu.Unlock()
			for id := range confirmed {
				if seen[id] == 0 {
					return false
				}
			}
			return len(confirmed) == total
		})
		mu.Lock()
		dups := 0
		for _, n := range seen {
			dups += n - 1
		}
		mu.Unlock()
		t.Logf("restart: %d confirmed, 0 lost, %d duplicates", total, dups)
	})
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// roundTrip publishes one message and consumes it.
func roundTrip(t *testing.T, b *Broker) {
	t.Helper()
	topic := "tls-" + randomSuffix()
	_, msgs := subscribe(t, b, "g", topic, broker.SubscriberOptions{})
	sent := newMessages(1, "over tls")[0]
	if err := b.Publisher().Publish(topic, sent); err != nil {
		t.Fatal(err)
	}
	if m := receive(t, msgs, 1, 10*time.Second)[0]; m.UUID != sent.UUID {
		t.Fatalf("got %s, want %s", m.UUID, sent.UUID)
	} else {
		m.Ack()
	}
}

func rawChannel(t *testing.T, amqpURL string) *amqp091.Channel {
	t.Helper()
	conn, err := amqp091.Dial(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
