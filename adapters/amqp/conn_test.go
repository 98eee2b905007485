package amqp

import (
	"bytes"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Writes from concurrent callers all arrive, each intact and in the order
// each caller wrote them, and Close delivers what is still buffered.
func TestCoalescingConnKeepsEveryWriteInOrder(t *testing.T) {
	client, server := net.Pipe()
	c := newCoalescingConn(client)
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(server)
		got <- b
	}()
	const writers, each = 8, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := c.Write([]byte("<" + strconv.Itoa(w) + ":" + strconv.Itoa(i) + ">")); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	b := <-got
	next := make([]int, writers)
	for len(b) > 0 {
		end := bytes.IndexByte(b, '>')
		if b[0] != '<' || end < 0 {
			t.Fatalf("torn write at %q", b[:min(len(b), 20)])
		}
		w, i, _ := bytes.Cut(b[1:end], []byte(":"))
		wi, _ := strconv.Atoi(string(w))
		ii, _ := strconv.Atoi(string(i))
		if ii != next[wi] {
			t.Fatalf("writer %d: got write %d, want %d", wi, ii, next[wi])
		}
		next[wi]++
		b = b[end+1:]
	}
	for w, n := range next {
		if n != each {
			t.Errorf("writer %d: %d writes arrived, want %d", w, n, each)
		}
	}
}

// A failed socket write is reported by a later Write and closes the
// connection, so that the reader side fails too.
func TestCoalescingConnReportsWriteErrors(t *testing.T) {
	client, server := net.Pipe()
	c := newCoalescingConn(client)
	_ = server.Close()
	var err error
	for deadline := time.Now().Add(10 * time.Second); err == nil && time.Now().Before(deadline); {
		if _, err = c.Write([]byte("x")); err == nil {
			time.Sleep(time.Millisecond)
		}
	}
	if err == nil {
		t.Fatal("Write kept succeeding on a closed connection")
	}
	if _, rerr := client.Read(make([]byte, 1)); rerr == nil {
		t.Error("connection still readable after a write error")
	}
	_ = c.Close() // the writer goroutine exits (goleak checks)
}
