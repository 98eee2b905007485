// Package nodetest runs Node.js programs from Go tests, so that interop
// claims are judged by the clients other teams really use (kafkajs,
// amqplib, the CloudEvents SDK) against the real brokers.
//
// [Install] installs a folder's npm dependencies exactly as its committed
// package-lock.json pins them (`npm ci`, once per lock file and Node
// version) and returns a [Node] that starts scripts there. Like
// internal/brokertest, a machine without Node.js 20+ and npm, or without
// access to the npm registry, skips the test, except under CI (CI=true),
// where it fails: CI must never pass by skipping.
//
// A script receives its settings as one JSON argument and answers with one
// JSON object per line on stdout; everything else (logs) goes to stderr,
// which is shown when a test fails.
package nodetest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// MinNodeMajor is the oldest Node.js major version the scripts support.
const MinNodeMajor = 20

// installTimeout bounds one `npm ci`.
const installTimeout = 5 * time.Minute

// stampFile, inside node_modules, records what the installation is of.
const stampFile = ".switchyard-installed"

// Node starts scripts of one installed folder.
type Node struct {
	dir  string
	node string
}

var (
	installMu sync.Mutex
	installed = map[string]*Node{}
)

// Install makes sure dir's node_modules is what its package-lock.json pins
// and returns a Node for its scripts. It skips the test when Node.js or npm
// is missing or the installation fails, or fails it under CI.
func Install(tb testing.TB, dir string) *Node {
	tb.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		tb.Fatal(err)
	}
	installMu.Lock()
	defer installMu.Unlock()
	if n := installed[abs]; n != nil {
		return n
	}
	node, err := exec.LookPath("node")
	if err != nil {
		unavailable(tb, "node is not on PATH")
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		unavailable(tb, "npm is not on PATH")
	}
	version, err := exec.Command(node, "--version").Output()
	if err != nil {
		unavailable(tb, fmt.Sprintf("node --version: %v", err))
	}
	v := strings.TrimSpace(string(version))
	if major, _, _ := strings.Cut(strings.TrimPrefix(v, "v"), "."); atoi(major) < MinNodeMajor {
		unavailable(tb, fmt.Sprintf("node %s is older than %d", v, MinNodeMajor))
	}
	lock, err := os.ReadFile(filepath.Join(abs, "package-lock.json"))
	if err != nil {
		tb.Fatalf("nodetest: %v (commit package.json and package-lock.json together)", err)
	}
	sum := sha256.Sum256(append(lock, v...))
	stamp := hex.EncodeToString(sum[:])
	if err := installLocked(abs, npm, stamp); err != nil {
		unavailable(tb, err.Error())
	}
	n := &Node{dir: abs, node: node}
	installed[abs] = n
	return n
}

// installLocked runs npm ci in dir unless the stamp says it is done,
// holding a file lock so that concurrent test processes install once.
func installLocked(dir, npm, stamp string) error {
	lf, err := os.OpenFile(filepath.Join(dir, ".nodetest.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("nodetest: lock: %w", err)
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("nodetest: lock: %w", err)
	}
	defer syscall.Flock(int(lf.Fd()), syscall.LOCK_UN)

	stampPath := filepath.Join(dir, "node_modules", stampFile)
	if got, err := os.ReadFile(stampPath); err == nil && string(got) == stamp {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
	defer cancel()
	// --ignore-scripts: nothing these tests use needs an install script,
	// and none should run on a developer's machine unasked.
	cmd := exec.CommandContext(ctx, npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("nodetest: npm ci in %s: %v\n%s", dir, err, out)
	}
	return os.WriteFile(stampPath, []byte(stamp), 0o644)
}

func unavailable(tb testing.TB, why string) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatalf("Node.js clients are required under CI: %s", why)
	}
	tb.Skipf("Node.js clients unavailable (under CI=true this fails instead): %s", why)
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0
	}
	return n
}

// Proc is one running script.
type Proc struct {
	tb     testing.TB
	name   string
	cmd    *exec.Cmd
	lines  chan []byte
	done   chan struct{}
	err    error // set before done is closed
	mu     sync.Mutex
	stderr bytes.Buffer
}

// Start runs `node script` in the folder with args, JSON-encoded, as its
// argument. The process is killed when the test ends if it is still
// running.
func (n *Node) Start(tb testing.TB, script string, args any) *Proc {
	tb.Helper()
	arg, err := json.Marshal(args)
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(n.node, script, string(arg))
	cmd.Dir = n.dir
	cmd.Env = append(os.Environ(), "KAFKAJS_NO_PARTITIONER_WARNING=1")
	p := &Proc{tb: tb, name: script, cmd: cmd, lines: make(chan []byte, 1024), done: make(chan struct{})}
	cmd.Stderr = &lockedWriter{p: p}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("nodetest: start %s: %v", script, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			p.lines <- append([]byte(nil), sc.Bytes()...)
		}
		close(p.lines)
		p.err = cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

type lockedWriter struct{ p *Proc }

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.stderr.Write(b)
}

// Stderr returns what the script wrote to stderr so far.
func (p *Proc) Stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// ErrExited is returned by [Proc.Next] when the script ended before
// writing another line.
var ErrExited = errors.New("nodetest: script exited")

// Next decodes the script's next stdout line into v, waiting up to
// timeout. It fails the test, showing the script's stderr, when the line
// does not come or does not decode.
func (p *Proc) Next(v any, timeout time.Duration) {
	p.tb.Helper()
	if err := p.next(v, timeout); err != nil {
		p.tb.Fatalf("%s: %v\nstderr:\n%s", p.name, err, p.Stderr())
	}
}

func (p *Proc) next(v any, timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case line, ok := <-p.lines:
		if !ok {
			<-p.done
			return fmt.Errorf("%w (%v) before the next line", ErrExited, p.err)
		}
		if err := json.Unmarshal(line, v); err != nil {
			return fmt.Errorf("line %q: %w", line, err)
		}
		return nil
	case <-timer.C:
		return fmt.Errorf("no line within %s", timeout)
	}
}

// Wait waits up to timeout for the script to exit and fails the test
// unless it exited with status 0 having written no further line.
func (p *Proc) Wait(timeout time.Duration) {
	p.tb.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case line, ok := <-p.lines:
		if ok {
			p.tb.Fatalf("%s: unexpected line %s\nstderr:\n%s", p.name, line, p.Stderr())
		}
	case <-timer.C:
		p.tb.Fatalf("%s: still running after %s\nstderr:\n%s", p.name, timeout, p.Stderr())
	}
	select {
	case <-p.done:
	case <-timer.C:
		p.tb.Fatalf("%s: still running after %s\nstderr:\n%s", p.name, timeout, p.Stderr())
	}
	if p.err != nil {
		p.tb.Fatalf("%s: %v\nstderr:\n%s", p.name, p.err, p.Stderr())
	}
}

// NextOrExit is [Proc.Next] for a script that may fail on purpose: it
// returns an error wrapping [ErrExited] when the script ended first, and
// fails the test only on a timeout or an undecodable line.
func (p *Proc) NextOrExit(v any, timeout time.Duration) error {
	p.tb.Helper()
	err := p.next(v, timeout)
	if err != nil && !errors.Is(err, ErrExited) {
		p.tb.Fatalf("%s: %v\nstderr:\n%s", p.name, err, p.Stderr())
	}
	return err
}
