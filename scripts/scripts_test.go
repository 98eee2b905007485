// Package scripts_test tests the shell scripts that install and run the
// test brokers (scripts/*.sh, scripts/lib): that they never stop, restart
// or take over a server they did not start, and that they refuse Kafka jars
// that differ from the checksums pinned in scripts/kafka/jars.sha256.
//
// Every run gets its own SWITCHYARD_WORK and all the port variables, on
// ports the test holds itself, so the shared brokers of `make up` are never
// reached. No broker is started: the cases stop before that, on purpose.
// A machine without what a script would otherwise apt-get install skips
// (fails under CI=true, where `make up` has installed it).
package scripts_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/internal/brokertest"
)

// scriptTimeout bounds one script run. The slowest case here waits 10s for
// Kafka metadata after building scripts/kafkaready; a loaded 2-core
// machine gets ample room.
const scriptTimeout = 3 * time.Minute

// scripts runs the checkout's scripts with one state folder, cache and set
// of ports.
type scripts struct {
	t    *testing.T
	work string
	vars []string
}

// newScripts selects WORK, CACHE and every port the scripts read: port for
// all three servers (the scripts only act on the one they are asked about;
// the others are merely probed by write_env, on port too), so no default
// port of the shared servers is ever reached.
func newScripts(t *testing.T, cache string, port int, extra ...string) *scripts {
	t.Helper()
	p := strconv.Itoa(port)
	s := &scripts{t: t, work: t.TempDir()}
	s.vars = append([]string{
		"SWITCHYARD_WORK=" + s.work,
		"SWITCHYARD_CACHE=" + cache,
		"SWITCHYARD_AMQP_PORT=" + p,
		"SWITCHYARD_KAFKA_PORT=" + p,
		"SWITCHYARD_KAFKA_CONTROLLER_PORT=" + strconv.Itoa(port+1),
		"SWITCHYARD_POSTGRES_PORT=" + p,
	}, extra...)
	// Before any run: the scripts must see these settings, or a renamed
	// variable would send every test to the shared servers' default ports.
	var want []string
	for _, name := range []string{"AMQP_PORT", "KAFKA_PORT", "KAFKA_CONTROLLER_PORT", "POSTGRES_PORT", "WORK"} {
		want = append(want, s.setting("SWITCHYARD_"+name))
	}
	out, code := s.shell("", `echo "$AMQP_PORT $KAFKA_PORT $KAFKA_CONTROLLER_PORT $PG_PORT $WORK"`)
	if code != 0 || strings.TrimSpace(out) != strings.Join(want, " ") {
		t.Fatalf("scripts/lib/common.sh sees ports and state folder %q (exit %d), want %q", out, code, strings.Join(want, " "))
	}
	return s
}

// setting is the value this run gives the variable name (the last one set wins, as in exec.Cmd.Env).
func (s *scripts) setting(name string) string {
	v := ""
	for _, kv := range s.vars {
		if k, val, _ := strings.Cut(kv, "="); k == name {
			v = val
		}
	}
	return v
}

// env is the caller's environment without any SWITCHYARD_* setting (a
// caller's SWITCHYARD_KAFKA_EXTRA_PROPERTIES, say, must not leak in), plus
// this run's.
func (s *scripts) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SWITCHYARD_") {
			env = append(env, kv)
		}
	}
	return append(env, s.vars...)
}

// run runs scripts/<file> with args and returns its combined output and
// exit code. The script gets a process group of its own, killed as a whole
// on timeout, so a helper it started cannot outlive the test.
func (s *scripts) run(file string, args ...string) (string, int) {
	s.t.Helper()
	return s.command(exec.Command(filepath.Join(brokertest.RepoRoot(), "scripts", file), args...))
}

// shell runs a bash snippet with scripts/lib/common.sh sourced, and
// scripts/lib/<lib>.sh too unless lib is empty.
func (s *scripts) shell(lib, snippet string) (string, int) {
	s.t.Helper()
	dir := filepath.Join(brokertest.RepoRoot(), "scripts", "lib")
	src := ". " + strconv.Quote(filepath.Join(dir, "common.sh")) + " && "
	if lib != "" {
		src += ". " + strconv.Quote(filepath.Join(dir, lib+".sh")) + " && "
	}
	return s.command(exec.Command("bash", "-c", src+snippet))
}

func (s *scripts) command(cmd *exec.Cmd) (string, int) {
	s.t.Helper()
	cmd.Env = s.env()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("%s: %v", cmd, err)
	}
	timer := time.AfterFunc(scriptTimeout, func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	err := cmd.Wait()
	if !timer.Stop() {
		s.t.Fatalf("%s: still running after %v, killed:\n%s", strings.Join(cmd.Args, " "), scriptTimeout, out.String())
	}
	var exit *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &exit):
		return out.String(), exit.ExitCode()
	default:
		s.t.Fatalf("%s: %v", cmd, err)
		return "", -1
	}
}

// requireInstalled skips the test unless check (a snippet run with the
// service's library sourced) succeeds: without what it checks, the script
// would apt-get install it. Under CI=true, where `make up` installs
// everything first, it fails instead, as brokertest does for a missing broker.
func (s *scripts) requireInstalled(lib, check, what string) {
	s.t.Helper()
	if out, code := s.shell(lib, check); code != 0 {
		brokertest.Unavailable(s.t, what+" is not installed here (scripts/"+lib+".sh would apt-get install it; `make up` does): "+strings.TrimSpace(out))
	}
}

// listen holds a loopback port from 20000 to 44999 (RabbitMQ's ports must
// stay below 45536: its Erlang distribution listens 20000 above) with a
// server the test owns, serving each connection with serve. The port is
// bound, not merely checked free, so nothing else can take it meanwhile.
func listen(t *testing.T, serve func(net.Conn)) int {
	t.Helper()
	for range 200 {
		port := 20000 + rand.IntN(25000)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		var wg sync.WaitGroup
		wg.Go(func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				wg.Go(func() { defer c.Close(); serve(c) })
			}
		})
		t.Cleanup(func() { l.Close(); wg.Wait() })
		return port
	}
	t.Fatal("no free loopback port from 20000 to 44999")
	return 0
}

// freePort returns a loopback port from 20000 to 44999 that nothing
// listens on: for a server that must not be there.
func freePort(t *testing.T) int {
	t.Helper()
	for range 200 {
		port := 20000 + rand.IntN(25000)
		if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err == nil {
			l.Close()
			return port
		}
	}
	t.Fatal("no free loopback port from 20000 to 44999")
	return 0
}

// hangUp is a server that speaks no protocol: it closes each connection.
func hangUp(net.Conn) {}

// answerAMQP greets like a RabbitMQ broker: to the AMQP 0-9-1 protocol
// header it replies with the start of a method frame (Connection.Start),
// what scripts/lib/rabbitmq.sh checks for.
func answerAMQP(c net.Conn) {
	c.SetDeadline(time.Now().Add(30 * time.Second))
	header := make([]byte, 8)
	if _, err := io.ReadFull(c, header); err != nil || string(header) != "AMQP\x00\x00\x09\x01" {
		return
	}
	c.Write([]byte{1, 0, 0, 0, 0, 0, 0})
}

// accepts fails the test unless a server accepts connections on port.
func accepts(t *testing.T, port int, after string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 10*time.Second)
	if err != nil {
		t.Fatalf("after %s: the test's own server on port %d no longer accepts connections: %v", after, port, err)
	}
	c.Close()
}

// bystander starts a process the test owns that no script has any claim
// on, and returns its pid and whether it still runs (a process reaped by
// Wait has exited; a zombie would still answer kill -0).
func bystander(t *testing.T) (int, func() bool) {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	return cmd.Process.Pid, func() bool {
		select {
		case <-exited:
			return false
		default:
			return true
		}
	}
}

// service describes what the tests need to know of one scripts/<name>.sh.
type service struct {
	name      string
	installed string // shell check, with the library sourced, that nothing needs installing
	what      string
	pidFile   string // the file the script trusts for "ours", under SWITCHYARD_WORK
	state     string // what a start of our own would create, under SWITCHYARD_WORK
	notThere  string // what start says when the port answers but not in the service's protocol
}

var (
	kafka = service{
		name: "kafka", installed: "kafka_find_java", what: "java 17 or newer",
		pidFile: "kafka/kafka.pid", state: "kafka/data",
		notThere: "is taken by a process that does not answer Kafka metadata and was not started by these scripts",
	}
	rabbitmq = service{
		name: "rabbitmq", installed: `[ -x "$RABBITMQ_BIN/rabbitmq-server" ]`, what: "rabbitmq-server",
		pidFile: "rabbitmq/rabbitmq.pid", state: "rabbitmq/mnesia",
		notThere: "is taken by a process that does not speak AMQP and was not started by these scripts",
	}
	postgres = service{
		name: "postgres", installed: `compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null`, what: "PostgreSQL",
		pidFile: "postgres/data/postmaster.pid", state: "postgres/data/PG_VERSION",
		notThere: "is taken by a process that does not answer as PostgreSQL and was not started by these scripts",
	}
)

// A server the scripts did not start is never stopped, restarted or taken
// for one of theirs: not when it holds their port, and not when their pid
// file names a live process of someone else (a stale pid file whose pid
// was reused). start either uses it as it is (it speaks the protocol) or
// refuses (it does not); restart refuses; stop and down.sh leave it running.
func TestScriptsNeverTakeOverAServerTheyDidNotStart(t *testing.T) {
	cases := []struct {
		svc   service
		serve func(net.Conn)
		// startUses: start succeeds and uses the server as it is; else it refuses.
		startUses bool
	}{
		{kafka, hangUp, false},
		{rabbitmq, hangUp, false},
		{rabbitmq, answerAMQP, true},
		{postgres, hangUp, false},
	}
	for _, c := range cases {
		name := c.svc.name + "/not speaking its protocol"
		if c.startUses {
			name = c.svc.name + "/speaking its protocol"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel() // most of each case is waiting on a probe's timeout
			port := listen(t, c.serve)
			cache := t.TempDir()
			if c.svc.name == "kafka" {
				cache = linkedKafkaCache(t, nil)
			}
			s := newScripts(t, cache, port)
			s.requireInstalled(c.svc.name, c.svc.installed, c.svc.what)
			pid, running := bystander(t)
			// plantPidFile makes the pid file name the bystander before each
			// step: stop removes a pid file that names no process of ours.
			plantPidFile := func() {
				file := filepath.Join(s.work, c.svc.pidFile)
				if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			untouched := func(step, out string) {
				t.Helper()
				if !running() {
					t.Fatalf("%s killed pid %d, which its pid file named but which it did not start:\n%s", step, pid, out)
				}
				accepts(t, port, step)
				if _, err := os.Stat(filepath.Join(s.work, c.svc.state)); err == nil {
					t.Fatalf("%s created %s: it set up a server of its own beside one it did not start:\n%s", step, c.svc.state, out)
				}
			}
			where := "127.0.0.1:" + strconv.Itoa(port)
			script := c.svc.name + ".sh"

			plantPidFile()
			out, code := s.run(script, "start")
			untouched("start", out)
			if c.startUses {
				if code != 0 || !strings.Contains(out, where+" is served by a server these scripts did not start") ||
					!strings.Contains(out, "never stopping or restarting it") {
					t.Fatalf("start: exit %d, want 0 and the log saying %s is used as it is:\n%s", code, where, out)
				}
				env, err := os.ReadFile(filepath.Join(s.work, "env"))
				if err != nil || !bytes.Contains(env, []byte(where)) {
					t.Fatalf("start: %s/env does not point the tests at %s (%v):\n%s", s.work, where, err, env)
				}
			} else if code == 0 || !strings.Contains(out, where+" "+c.svc.notThere) {
				t.Fatalf("start: exit %d, want non-zero and %q:\n%s", code, c.svc.notThere, out)
			}

			plantPidFile()
			out, code = s.run(script, "restart")
			untouched("restart", out)
			if code == 0 || !strings.Contains(out, "refusing to restart "+where+": that server was not started by these scripts") {
				t.Fatalf("restart: exit %d, want non-zero and a refusal naming %s:\n%s", code, where, out)
			}

			for _, step := range [][]string{{script, "stop"}, {"down.sh", c.svc.name}} {
				plantPidFile()
				out, code = s.run(step[0], step[1:]...)
				untouched(strings.Join(step, " "), out)
				if code != 0 || !strings.Contains(out, where+" is served by a") ||
					!strings.Contains(out, "these scripts did not start; leaving it running") {
					t.Fatalf("%s: exit %d, want 0 and the log saying it leaves %s running:\n%s", strings.Join(step, " "), code, where, out)
				}
			}
		})
	}
}

// pinnedJars reads scripts/kafka/jars.sha256: jar name to SHA-256.
func pinnedJars(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(brokertest.RepoRoot(), "scripts", "kafka", "jars.sha256"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pins := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if ok && !strings.HasPrefix(sum, "#") {
			pins[name] = sum
		}
	}
	if err := sc.Err(); err != nil || len(pins) == 0 {
		t.Fatalf("scripts/kafka/jars.sha256: %d pins, %v", len(pins), err)
	}
	return pins
}

// realKafkaJar is the path of a pinned jar in the checkout's cache
// (brokertest.CacheDir, where `make up` put them); the test skips (fails
// under CI) when it is not there.
func realKafkaJar(t *testing.T, name string) string {
	t.Helper()
	path := filepath.Join(brokertest.CacheDir(), "kafka", "libs", name)
	if _, err := os.Stat(path); err != nil {
		brokertest.Unavailable(t, "the Kafka jars are not in "+filepath.Dir(path)+" (`make up` fetches them): "+err.Error())
	}
	return path
}

// jarDir fills dir with every pinned jar as a symbolic link to the
// checkout's cache, except those in replace, written as given. The real
// cache is only ever read.
func jarDir(t *testing.T, dir string, replace map[string][]byte) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name := range pinnedJars(t) {
		if _, ok := replace[name]; !ok {
			if err := os.Symlink(realKafkaJar(t, name), filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, b := range replace {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// linkedKafkaCache makes a SWITCHYARD_CACHE of the test's own whose
// kafka/libs is jarDir(replace): the scripts build scripts/kafkaready into
// it and may replace its jars, and neither touches the checkout's cache.
func linkedKafkaCache(t *testing.T, replace map[string][]byte) string {
	t.Helper()
	cache := t.TempDir()
	jarDir(t, filepath.Join(cache, "kafka", "libs"), replace)
	return cache
}

// tampered returns the pinned jar name with one byte changed.
func tampered(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(realKafkaJar(t, name))
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	return b
}

// fakeMaven writes an mvn that stands in for Maven Central: it records its
// arguments in args and "downloads" the jars of repo into the directory
// given as -Dlibs.dir, so the test decides what the fetch brings and never
// depends on the network.
func fakeMaven(t *testing.T, repo string) (bin, args string) {
	t.Helper()
	bin = t.TempDir()
	args = filepath.Join(bin, "mvn.args")
	script := `#!/bin/sh
# Written by scripts_test.go: Maven Central serving the jars of FAKE_MVN_REPO.
printf '%s\n' "$@" >"$FAKE_MVN_ARGS"
dir=
for a; do case $a in -Dlibs.dir=*) dir=${a#-Dlibs.dir=} ;; esac; done
[ -n "$dir" ] || { echo "fake mvn: no -Dlibs.dir= argument" >&2; exit 1; }
mkdir -p "$dir" && cp -P "$FAKE_MVN_REPO"/*.jar "$dir"/
`
	if err := os.WriteFile(filepath.Join(bin, "mvn"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, args
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Kafka runs only from the jars pinned in scripts/kafka/jars.sha256. A
// cached jar that differs is fetched again; a fetched set with a jar that
// differs, or one not pinned, is refused with the jar named, the start
// fails and no broker runs; a fetch of the genuine jars repairs the cache.
func TestKafkaInstallRefusesJarsThatDifferFromThePins(t *testing.T) {
	const broker = "kafka_2.13-4.1.1.jar"
	if _, ok := pinnedJars(t)[broker]; !ok {
		t.Fatalf("scripts/kafka/jars.sha256 no longer pins %s: update this test", broker)
	}
	cases := []struct {
		name        string
		cached      func(t *testing.T) map[string][]byte // jars replaced in the cache
		fetched     func(t *testing.T) map[string][]byte // jars replaced in what Maven serves
		wantRefusal []string                             // empty: the fetch is accepted
	}{
		{
			name:    "tampered jar, cached and fetched",
			cached:  func(t *testing.T) map[string][]byte { return map[string][]byte{broker: tampered(t, broker)} },
			fetched: func(t *testing.T) map[string][]byte { return map[string][]byte{broker: tampered(t, broker)} },
			wantRefusal: []string{
				"do not match scripts/kafka/jars.sha256", broker + ": FAILED",
				"refusing the fetched jars: they differ from the checksums pinned in scripts/kafka/jars.sha256",
			},
		},
		{
			name:    "jar nobody pinned",
			cached:  func(t *testing.T) map[string][]byte { return map[string][]byte{"evil-1.0.jar": []byte("PK")} },
			fetched: func(t *testing.T) map[string][]byte { return map[string][]byte{"evil-1.0.jar": []byte("PK")} },
			wantRefusal: []string{
				"not listed in scripts/kafka/jars.sha256: evil-1.0.jar",
				"refusing the fetched jars",
			},
		},
		{
			name:    "tampered cached jar, genuine fetch",
			cached:  func(t *testing.T) map[string][]byte { return map[string][]byte{broker: tampered(t, broker)} },
			fetched: func(t *testing.T) map[string][]byte { return nil },
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cache := linkedKafkaCache(t, c.cached(t))
			repo := t.TempDir()
			jarDir(t, repo, c.fetched(t))
			mvnBin, mvnArgs := fakeMaven(t, repo)
			// The broker's port is free; its controller port is held by the
			// test, so a start that gets past the install stops right there
			// (scripts/lib/kafka.sh checks it before starting anything).
			port, controller := freePort(t), listen(t, hangUp)
			s := newScripts(t, cache, port, "SWITCHYARD_KAFKA_CONTROLLER_PORT="+strconv.Itoa(controller),
				"PATH="+mvnBin+string(os.PathListSeparator)+os.Getenv("PATH"),
				"FAKE_MVN_REPO="+repo, "FAKE_MVN_ARGS="+mvnArgs)
			s.requireInstalled("kafka", kafka.installed, kafka.what)

			out, code := s.run("kafka.sh", "start")
			if code == 0 {
				t.Fatalf("kafka.sh start succeeded, want it to stop before the broker:\n%s", out)
			}
			if !strings.Contains(out, "kafka: fetching jars from Maven Central into "+filepath.Join(cache, "kafka", "libs")) {
				t.Fatalf("kafka.sh start kept a cache that differs from the pins, want a new fetch:\n%s", out)
			}
			args, err := os.ReadFile(mvnArgs)
			if err != nil || !bytes.Contains(args, []byte("\n-C\n")) {
				t.Errorf("mvn ran without -C (strict checksums against Maven Central's .sha1): %q %v", args, err)
			}
			for _, want := range c.wantRefusal {
				if !strings.Contains(out, want) {
					t.Errorf("kafka.sh start: output lacks %q:\n%s", want, out)
				}
			}
			if len(c.wantRefusal) == 0 {
				if !strings.Contains(out, "controller port 127.0.0.1:"+strconv.Itoa(controller)+" is taken") {
					t.Fatalf("kafka.sh start did not get past the install to the port checks:\n%s", out)
				}
				if got, want := sha256File(t, filepath.Join(cache, "kafka", "libs", broker)), pinnedJars(t)[broker]; got != want {
					t.Errorf("after a genuine fetch the cached %s has SHA-256 %s, pinned %s", broker, got, want)
				}
			} else {
				// Refused before anything runs: kafkaready is built only after the jars verify.
				if _, err := os.Stat(filepath.Join(cache, "bin", "kafkaready")); err == nil {
					t.Errorf("kafka.sh start went on to build kafkaready after refusing the jars:\n%s", out)
				}
				if leftovers, _ := filepath.Glob(filepath.Join(cache, "kafka", "libs.tmp.*")); len(leftovers) > 0 {
					t.Errorf("refused jars left behind in %v", leftovers)
				}
			}
			for _, p := range []string{kafka.pidFile, kafka.state} {
				if _, err := os.Stat(filepath.Join(s.work, p)); err == nil {
					t.Errorf("kafka.sh start created %s: a broker was set up:\n%s", p, out)
				}
			}
			if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 5*time.Second); err == nil {
				c.Close()
				t.Errorf("something accepts connections on the broker port %d after kafka.sh start failed", port)
			}
		})
	}
}
