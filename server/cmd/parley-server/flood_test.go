package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// startServer runs the whole parley-server (caps, relay, store, /healthz)
// on a loopback port with the given flags, until the test ends.
func startServer(t *testing.T, flags ...string) string {
	t.Helper()
	cfg, err := parseConfig(append([]string{"-data", t.TempDir()}, flags...), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, ln, "", slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

// stalled opens a connection from src that sends a request's headers
// announcing a body of length bytes, then one byte of it, and stalls.
func stalled(t *testing.T, src, addr, path string, length int) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "PUT %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\nx", path, addr, length)
	return c
}

// answer reads c's response within wait: its status, or 0 if the server
// closed c without answering, or -1 if c was still open when wait ran out.
func answer(c net.Conn, wait time.Duration) int {
	c.SetReadDeadline(time.Now().Add(wait))
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err == nil {
		res.Body.Close()
		return res.StatusCode
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return -1
	}
	return 0
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func healthz(t *testing.T, addr string) {
	t.Helper()
	cl := http.Client{Timeout: 5 * time.Second}
	res, err := cl.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("/healthz during the flood: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("/healthz during the flood: %d", res.StatusCode)
	}
}

// TestStalledFloodLeavesHealthzAnswering is the attack of item 1 of issue
// 14, bounded: ten loopback addresses each open 30 link PUTs that send the
// headers and one byte of a 64 KiB body and stall (20,000 of them once
// took every descriptor and /healthz with them). Each address keeps at
// most -max-connections-per-ip of them, the rest are closed at once;
// /healthz answers during the flood; and every stalled request ends by
// itself once its body is late (-body-timeout, -body-min-rate).
func TestStalledFloodLeavesHealthzAnswering(t *testing.T) {
	const addrs, each, perIP = 10, 30, 20
	// The body deadline must outlast opening the whole flood: a request
	// that ended early would free its address's slot for a later one and
	// count as a 21st let in (seen at a load average of 20 with 1 s).
	const bodyTimeout = 8 * time.Second
	addr := startServer(t, "-max-connections-per-ip", fmt.Sprint(perIP), "-body-timeout", bodyTimeout.String(), "-body-min-rate", "1024")
	start := time.Now()
	healthz(t, addr)
	conns := make([][]net.Conn, addrs)
	for a := range conns {
		for i := 0; i < each; i++ {
			conns[a] = append(conns[a], stalled(t, fmt.Sprintf("127.0.0.%d", a+2), addr, "/v1/link/"+randomHex(16)+"/0", 64<<10))
		}
	}
	if opened := time.Since(start); opened >= bodyTimeout {
		t.Fatalf("opening the flood took %v, past the %v body deadline the count relies on", opened, bodyTimeout)
	}
	healthz(t, addr)
	var wg sync.WaitGroup
	got := make([][]int, addrs)
	for a := range conns {
		got[a] = make([]int, each)
		for i, c := range conns[a] {
			wg.Add(1)
			go func() { defer wg.Done(); got[a][i] = answer(c, 30*time.Second) }()
		}
	}
	wg.Wait()
	for a := range got {
		answered := 0
		for i, status := range got[a] {
			switch status {
			case -1:
				t.Fatalf("address %d, request %d: still open 30 s after its body stalled", a, i)
			case 0:
			default:
				answered++
			}
		}
		if answered > perIP {
			t.Errorf("address %d: %d stalled requests were let in, want at most %d", a, answered, perIP)
		}
	}
	healthz(t, addr)
}

// TestUnauthorizedBlobBodyNeverRead is the attack of 100 PUTs of 8 MiB − 1
// bytes to random blob ids, sent slowly, that took the relay from 52 MB to
// 1.13 GB: a PUT to an id nobody reserved is refused (404 not_found) on
// its headers, before one byte of its body is read, however long the body
// would take.
func TestUnauthorizedBlobBodyNeverRead(t *testing.T) {
	addr := startServer(t, "-body-timeout", "30s")
	for i := 0; i < 20; i++ {
		c := stalled(t, "127.0.0.1", addr, "/v1/blobs/"+randomHex(16), 8<<20-1)
		if status := answer(c, 10*time.Second); status != http.StatusNotFound {
			t.Fatalf("stalled 8 MiB PUT to an unreserved blob id: %d (0 closed, -1 no answer in 10 s), want 404 before the body", status)
		}
	}
}

// TestEarlyRefusalDoesNotWaitForBody is the attack of a client that sends a
// request the server refuses on its headers alone (a bad link id, a method
// /healthz does not take, a path nobody serves, a spent rate budget) with a
// small body it never finishes: Go's server reads up to 256 KiB of an
// unread body before it sends any answer, with no deadline, so each such
// request held its connection for ever. A refusal sent before the body
// was read now closes the connection instead of waiting for the body.
func TestEarlyRefusalDoesNotWaitForBody(t *testing.T) {
	addr := startServer(t, "-body-timeout", "60s")
	for _, path := range []string{"/v1/link/not-hex/0", "/healthz", "/web/no-such-file", "/v1/no/such/endpoint"} {
		c := stalled(t, "127.0.0.1", addr, path, 1000)
		if status := answer(c, 5*time.Second); status <= 0 {
			t.Fatalf("PUT %s with a stalled 1,000-byte body: %d (0 closed, -1 no answer in 5 s), want a refusal at once", path, status)
		}
	}
}
