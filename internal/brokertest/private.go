package brokertest

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Server is a broker started for one test alone by the project's scripts
// (scripts/<name>.sh) on free loopback ports with a state folder of its own.
// Tests that stop, restart or reconfigure a broker use one, so the shared
// servers other tests run against are never touched. It is stopped and its
// folder removed when the test ends.
type Server struct {
	// Name is the script's service name: rabbitmq, kafka or postgres.
	Name string
	tb   testing.TB
	work string
	vars []string // the SWITCHYARD_* settings that select this server

	mu  sync.Mutex // serialises the scripts; guards env
	env map[string]string
}

// ServerOption adjusts a private server before it starts.
type ServerOption func(*serverOptions)

type serverOptions struct{ extra []string }

// WithScriptEnv passes extra NAME=VALUE settings to the scripts that start,
// stop and restart the server (for example a listener the test needs).
func WithScriptEnv(kv ...string) ServerOption {
	return func(o *serverOptions) { o.extra = append(o.extra, kv...) }
}

// StartRabbitMQ starts a private RabbitMQ node. It is skipped (failed under
// CI) when the shared RabbitMQ is not configured: the scripts that installed
// that one are what this relies on.
func StartRabbitMQ(tb testing.TB, opts ...ServerOption) *Server {
	tb.Helper()
	AMQPURL(tb)
	return start(tb, "rabbitmq", opts)
}

// StartKafka starts a private single-node Kafka in KRaft mode.
func StartKafka(tb testing.TB, opts ...ServerOption) *Server {
	tb.Helper()
	KafkaBrokers(tb)
	return start(tb, "kafka", opts)
}

// StartPostgres starts a private PostgreSQL cluster.
func StartPostgres(tb testing.TB, opts ...ServerOption) *Server {
	tb.Helper()
	PostgresURL(tb)
	return start(tb, "postgres", opts)
}

// AMQPURL, KafkaBrokers and PostgresURL return the server's address.
func (s *Server) AMQPURL() string      { return s.Getenv(EnvAMQPURL) }
func (s *Server) KafkaBrokers() string { return s.Getenv(EnvKafkaBrokers) }
func (s *Server) PostgresURL() string  { return s.Getenv(EnvPostgresURL) }

// Rabbitmqctl returns the rabbitmqctl command that reaches this node.
func (s *Server) Rabbitmqctl() string { return s.Getenv(EnvRabbitmqctl) }

// Getenv returns one of the SWITCHYARD_TEST_* variables the scripts wrote
// for this server. A stopped server keeps the addresses it had.
func (s *Server) Getenv(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.env[name]
}

// Work is the server's state folder.
func (s *Server) Work() string { return s.work }

// Stop stops the server; Start starts it again on the same ports and data.
func (s *Server) Stop()  { s.tb.Helper(); s.run("stop") }
func (s *Server) Start() { s.tb.Helper(); s.run("start") }

// Kill ends the server with SIGKILL, as a crash would: its connections are
// cut with requests in flight and unanswered, which a graceful Stop (which
// may still answer them) only does by chance. Start brings it back. Only
// Kafka and RabbitMQ, whose scripts keep a pid file, can be killed.
func (s *Server) Kill() {
	s.tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	file := filepath.Join(s.work, s.Name, s.Name+".pid")
	b, err := os.ReadFile(file)
	if err != nil {
		s.tb.Fatalf("kill %s: %v", s.Name, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil {
		s.tb.Fatalf("kill %s: pid file %s: %v", s.Name, file, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		s.tb.Fatalf("kill %s (pid %d): %v", s.Name, pid, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			s.tb.Fatalf("kill %s: pid %d still alive after 30s", s.Name, pid)
		}
		time.Sleep(50 * time.Millisecond) // polling the process table, bounded by deadline
	}
}

// alive reports whether pid runs: a zombie (killed, not yet reaped by a
// parent that may never reap it) does not.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command, which may hold spaces.
	rest := stat[strings.LastIndexByte(string(stat), ')')+1:]
	return !strings.HasPrefix(strings.TrimSpace(string(rest)), "Z")
}

// Restart stops and starts the server, returning when it answers again.
func (s *Server) Restart() { s.tb.Helper(); s.run("restart") }

func start(tb testing.TB, name string, opts []ServerOption) *Server {
	tb.Helper()
	var o serverOptions
	for _, opt := range opts {
		opt(&o)
	}
	work, err := os.MkdirTemp("", "switchyard-"+name+"-")
	if err != nil {
		tb.Fatal(err)
	}
	s := &Server{Name: name, tb: tb, work: work}
	s.vars = append([]string{"SWITCHYARD_WORK=" + work, "SWITCHYARD_CACHE=" + CacheDir()}, portVars(tb, name)...)
	s.vars = append(s.vars, o.extra...)
	tb.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if out, err := s.script("down.sh", name); err != nil {
			tb.Errorf("stopping private %s: %v\n%s", name, err, out)
			return // keep the folder: its logs say why
		}
		os.RemoveAll(work)
	})
	s.run("start")
	return s
}

func (s *Server) run(action string) {
	s.tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if out, err := s.script(s.Name+".sh", action); err != nil {
		s.tb.Fatalf("scripts/%s.sh %s: %v\n%s", s.Name, action, err, out)
	}
	env, err := readEnv(filepath.Join(s.work, "env"))
	if err != nil {
		s.tb.Fatal(err)
	}
	// The scripts list only servers that answer: keep what a stopped
	// server had.
	if s.env == nil {
		s.env = map[string]string{}
	}
	for k, v := range env {
		s.env[k] = v
	}
}

func (s *Server) script(file string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(RepoRoot(), "scripts", file), args...)
	cmd.Env = append(os.Environ(), s.vars...)
	return cmd.CombinedOutput()
}

// portVars picks free loopback ports for the server: RabbitMQ's Erlang
// distribution port is its AMQP port + 20000 and Kafka's controller listens
// on its port + 1, so those must be free too.
func portVars(tb testing.TB, name string) []string {
	tb.Helper()
	for range 200 {
		p := 20000 + rand.IntN(25000)
		switch name {
		case "rabbitmq":
			if free(p) && free(p+20000) {
				return []string{"SWITCHYARD_AMQP_PORT=" + strconv.Itoa(p)}
			}
		case "kafka":
			if free(p) && free(p+1) {
				return []string{"SWITCHYARD_KAFKA_PORT=" + strconv.Itoa(p)}
			}
		case "postgres":
			if free(p) {
				return []string{"SWITCHYARD_POSTGRES_PORT=" + strconv.Itoa(p)}
			}
		default:
			tb.Fatalf("unknown server %q", name)
		}
	}
	tb.Fatal("no free loopback port found for a private " + name)
	return nil
}

func free(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// readEnv parses the export lines scripts/up.sh writes.
func readEnv(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "export ")
		if !ok {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s: bad line %q", path, sc.Text())
		}
		env[k] = strings.Trim(v, "'")
	}
	return env, sc.Err()
}

// RepoRoot is the checkout this package is in: its scripts/ are the ones
// the private servers (and the scripts' own tests) run.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// CacheDir is where the scripts keep downloads (Kafka's jars): the
// caller's SWITCHYARD_CACHE, else the checkout's, so a private server does
// not download again.
func CacheDir() string {
	if v := os.Getenv("SWITCHYARD_CACHE"); v != "" {
		return v
	}
	return filepath.Join(RepoRoot(), ".cache")
}
