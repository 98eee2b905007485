package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard-go/switchyard/internal/brokertest"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildOut  []byte
)

// binary builds the example once per test run, to run it as a process
// that can be killed.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "order-saga-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "order-saga")
		buildOut, buildErr = exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("go build: %v\n%s", buildErr, buildOut)
	}
	return binPath
}

// paymentTimeout outlasts the restart, so that the outcome is the one
// without a kill: a Kafka consumer group takes its session timeout to hand
// the dead member's partitions over.
var paymentTimeout = map[string]string{"rabbitmq": "5s", "kafka": "25s"}

// TestKill9MidSagaFinishesAfterRestart kills the service with SIGKILL
// while its sagas wait for payments (their timeouts scheduled in
// PostgreSQL, commands unacknowledged on the broker), then starts it
// again with --resume: every saga finishes as it would have, including
// the timeouts the dead process scheduled.
func TestKill9MidSagaFinishesAfterRestart(t *testing.T) {
	for _, tc := range brokerCases {
		t.Run(tc.name, func(t *testing.T) {
			pg := brokertest.PostgresURL(t)
			env := append(os.Environ(),
				tc.envKey+"="+tc.addr(t),
				"SWITCHYARD_POSTGRES_DSN="+pg,
				"SWITCHYARD_SERVICE_NAMESPACE="+unique("ordersaga-kill-")+".",
			)
			bin := binary(t)
			prefix, tables := unique("k"), unique("kill")
			args := []string{"--config", tc.file, "--orders", "8", "--prefix", prefix, "--pg-tables", tables,
				"--step-delay", "200ms", "--payment-timeout", paymentTimeout[tc.name], "--timeout", "150s"}

			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			first := exec.CommandContext(ctx, bin, args...)
			first.Env = env
			var stderr1 bytes.Buffer
			first.Stderr = &stderr1
			out, err := first.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := first.Start(); err != nil {
				t.Fatal(err)
			}
			placed := make(chan struct{})
			go func() {
				sc := bufio.NewScanner(out)
				for sc.Scan() {
					if strings.HasPrefix(sc.Text(), "placed ") {
						close(placed)
					}
				}
			}()
			exited := make(chan error, 1)
			go func() { exited <- first.Wait() }()
			select {
			case <-placed:
			case err := <-exited:
				t.Fatalf("first run exited before placing orders: %v\n%s", err, stderr1.String())
			case <-time.After(90 * time.Second):
				t.Fatalf("first run placed no orders after 90s\n%s", stderr1.String())
			}

			pool, err := pgxpool.New(ctx, pg)
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			// Mid-saga: some instance waits for its payment, so its
			// timeout is scheduled, and none has finished.
			var paying, completed, scheduled int
			deadline := time.Now().Add(90 * time.Second)
			for {
				err := pool.QueryRow(ctx, `SELECT
					count(*) FILTER (WHERE convert_from(state, 'UTF8')::jsonb->>'status' = 'paying'),
					count(*) FILTER (WHERE completed)
					FROM `+tables+`_saga WHERE id LIKE $1`, prefix+"-%").Scan(&paying, &completed)
				if err == nil && paying > 0 {
					err = pool.QueryRow(ctx, `SELECT count(*) FROM `+tables+`_schedule`).Scan(&scheduled)
				}
				if err == nil && scheduled > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no saga reached the payment after 90s (err %v)\n%s", err, stderr1.String())
				}
				time.Sleep(10 * time.Millisecond)
			}
			if err := first.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-exited
			t.Logf("killed with %d sagas paying, %d completed, %d timeouts scheduled", paying, completed, scheduled)
			if completed == 8 || scheduled == 0 {
				t.Fatalf("the kill was not mid-saga: %d of 8 completed, %d timeouts scheduled", completed, scheduled)
			}

			second := exec.CommandContext(ctx, bin, append(args, "--resume")...)
			second.Env = env
			var stdout2, stderr2 bytes.Buffer
			second.Stdout, second.Stderr = &stdout2, &stderr2
			if err := second.Run(); err != nil {
				t.Fatalf("resumed run: %v\nstdout:\n%s\nstderr:\n%s", err, stdout2.String(), stderr2.String())
			}
			checkOutcome(t, prefix, stdout2.String())
		})
	}
}
