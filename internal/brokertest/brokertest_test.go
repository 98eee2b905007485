package brokertest_test

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/switchyard-go/switchyard/internal/brokertest"
)

// outcomeTB is a testing.TB that records what the code under test asked
// of it. Skip and Fatal end the calling goroutine with runtime.Goexit, as
// the real ones do, so code after them never runs. The embedded TB is nil:
// a method this type does not define panics, which fails the test loudly
// instead of reaching the real test from a foreign goroutine.
type outcomeTB struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (r *outcomeTB) Helper()                     {}
func (r *outcomeTB) Log(args ...any)             {}
func (r *outcomeTB) Logf(string, ...any)         {}
func (r *outcomeTB) Skip(args ...any)            { r.skip(fmt.Sprint(args...)) }
func (r *outcomeTB) Skipf(f string, args ...any) { r.skip(fmt.Sprintf(f, args...)) }
func (r *outcomeTB) SkipNow()                    { r.skip("") }
func (r *outcomeTB) Fatal(args ...any)           { r.fatal(fmt.Sprint(args...)) }
func (r *outcomeTB) Fatalf(f string, args ...any) {
	r.fatal(fmt.Sprintf(f, args...))
}
func (r *outcomeTB) FailNow()                     { r.fatal("") }
func (r *outcomeTB) Error(args ...any)            { r.failed, r.msg = true, fmt.Sprint(args...) }
func (r *outcomeTB) Errorf(f string, args ...any) { r.failed, r.msg = true, fmt.Sprintf(f, args...) }
func (r *outcomeTB) Fail()                        { r.failed = true }

func (r *outcomeTB) skip(msg string)  { r.skipped, r.msg = true, msg; runtime.Goexit() }
func (r *outcomeTB) fatal(msg string) { r.failed, r.msg = true, msg; runtime.Goexit() }

// outcome is what one call of a brokertest function did to its test.
type outcome struct {
	value           string
	returned        bool // false when Skip or Fatal stopped the call
	skipped, failed bool
	msg             string
}

// call runs get with a recording TB in a goroutine of its own, the way the
// testing package runs a test, and reports what happened.
func call(get func(testing.TB) string) outcome {
	tb := &outcomeTB{}
	var o outcome
	done := make(chan struct{})
	go func() {
		defer close(done)
		o.value = get(tb)
		o.returned = true
	}()
	<-done
	o.skipped, o.failed, o.msg = tb.skipped, tb.failed, tb.msg
	return o
}

// unsetenv removes name for the rest of the test and puts it back after.
func unsetenv(t *testing.T, name string) {
	t.Helper()
	t.Setenv(name, "") // registers the restore
	os.Unsetenv(name)
}

// A broker test on a developer's machine without `make up` is skipped with
// a hint that names the variable and how to get it; under CI the same test
// fails, so CI never passes by skipping; with the variable set, the test
// gets its value.
func TestBrokerAddressSkipsFailsUnderCIOrReturnsIt(t *testing.T) {
	brokers := []struct {
		what string
		env  string
		get  func(testing.TB) string
	}{
		{"RabbitMQ", brokertest.EnvAMQPURL, brokertest.AMQPURL},
		{"Kafka", brokertest.EnvKafkaBrokers, brokertest.KafkaBrokers},
		{"PostgreSQL", brokertest.EnvPostgresURL, brokertest.PostgresURL},
	}
	for _, b := range brokers {
		t.Run(b.what, func(t *testing.T) {
			t.Run("unset skips", func(t *testing.T) {
				unsetenv(t, b.env)
				unsetenv(t, "CI")
				o := call(b.get)
				if !o.skipped || o.failed || o.returned {
					t.Fatalf("without %s and CI: skipped=%v failed=%v returned=%v (%q), want a skip", b.env, o.skipped, o.failed, o.returned, o.msg)
				}
				for _, want := range []string{b.what, b.env, "`make up`"} {
					if !strings.Contains(o.msg, want) {
						t.Errorf("skip message %q does not name %q", o.msg, want)
					}
				}
			})
			t.Run("unset fails under CI", func(t *testing.T) {
				unsetenv(t, b.env)
				t.Setenv("CI", "true")
				o := call(b.get)
				if !o.failed || o.skipped || o.returned {
					t.Fatalf("without %s under CI=true: skipped=%v failed=%v returned=%v (%q), want a failure", b.env, o.skipped, o.failed, o.returned, o.msg)
				}
				if !strings.Contains(o.msg, b.env) || !strings.Contains(o.msg, "`make up`") {
					t.Errorf("failure message %q does not name %s and `make up`", o.msg, b.env)
				}
			})
			for _, ci := range []string{"", "true"} {
				t.Run("set returns it, CI="+ci, func(t *testing.T) {
					const addr = "127.0.0.1:1"
					t.Setenv(b.env, addr)
					t.Setenv("CI", ci)
					o := call(b.get)
					if !o.returned || o.skipped || o.failed || o.value != addr {
						t.Fatalf("with %s=%s: returned %v %q, skipped=%v failed=%v (%q)", b.env, addr, o.returned, o.value, o.skipped, o.failed, o.msg)
					}
				})
			}
		})
	}
}

// The clusters are not part of the default run: without SWITCHYARD_TEST_CLUSTER
// a cluster test skips even under CI; once asked for, a missing address
// fails under CI like any broker.
func TestClusterAddressSkipsUnlessAskedFor(t *testing.T) {
	t.Run("not asked for skips under CI", func(t *testing.T) {
		unsetenv(t, brokertest.EnvCluster)
		unsetenv(t, brokertest.EnvClusterKafkaBrokers)
		t.Setenv("CI", "true")
		o := call(brokertest.ClusterKafkaBrokers)
		if !o.skipped || o.failed || !strings.Contains(o.msg, brokertest.EnvCluster) {
			t.Fatalf("skipped=%v failed=%v (%q), want a skip naming %s", o.skipped, o.failed, o.msg, brokertest.EnvCluster)
		}
	})
	t.Run("asked for, unset fails under CI", func(t *testing.T) {
		t.Setenv(brokertest.EnvCluster, "3")
		unsetenv(t, brokertest.EnvClusterKafkaBrokers)
		t.Setenv("CI", "true")
		o := call(brokertest.ClusterKafkaBrokers)
		if !o.failed || o.skipped || !strings.Contains(o.msg, brokertest.EnvClusterKafkaBrokers) {
			t.Fatalf("skipped=%v failed=%v (%q), want a failure naming %s", o.skipped, o.failed, o.msg, brokertest.EnvClusterKafkaBrokers)
		}
	})
}
