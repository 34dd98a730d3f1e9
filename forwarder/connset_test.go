package forwarder

import (
	"errors"
	"net"
	"testing"
	"time"
)

// TestConnSetAbortAndReset dials real loopback connections through a
// connSet: abort closes those open and refuses new ones, reset lets dials
// through again.
func TestConnSetAbortAndReset(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c // held open by the far side until the test ends
		}
	}()
	defer func() {
		for len(accepted) > 0 {
			(<-accepted).Close()
		}
	}()
	s := newConnSet()
	dial := s.dial(time.Second)
	c, err := dial(ln.Addr().String(), time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	s.abort()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read on an aborted connection: %v, want net.ErrClosed", err)
	}
	if _, err := dial(ln.Addr().String(), time.Second); !errors.Is(err, errAborted) {
		t.Fatalf("dial after abort: %v, want errAborted", err)
	}
	s.reset()
	c2, err := dial(ln.Addr().String(), time.Second)
	if err != nil {
		t.Fatalf("dial after reset: %v", err)
	}
	s.mu.Lock()
	n := len(s.conns)
	s.mu.Unlock()
	if n != 1 {
		t.Fatalf("tracked connections %d, want 1 (the closed one forgotten)", n)
	}
	if err := c2.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := c2.Close(); err != nil {
		t.Fatalf("second close must be a no-op: %v", err)
	}
	s.mu.Lock()
	n = len(s.conns)
	s.mu.Unlock()
	if n != 0 {
		t.Fatalf("tracked connections %d after close, want 0", n)
	}
}
