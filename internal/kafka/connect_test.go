package kafka

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// silentBroker accepts connections and never answers, as a server that is
// not a Kafka broker, or a TLS listener read in plaintext, does.
func silentBroker(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed at the test's end
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// Against a broker that does not answer, sarama's attempts take a read
// timeout (30 s) each: minutes, during which Ctrl-C did nothing. A
// connection gives up as soon as its context ends, with the broker's
// address in the error.
func TestNewClientGivesUpWhenItsContextEnds(t *testing.T) {
	addr := silentBroker(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		cl, err := NewClient(ctx, []string{addr}, NewConfig("test"))
		if cl != nil {
			cl.Close()
		}
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "context canceled") {
			t.Fatalf("NewClient after its context was cancelled: %v, want an error naming %s and the cancellation", err, addr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("NewClient still connecting 10 s after its context was cancelled")
	}
}
