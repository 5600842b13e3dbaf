package netlimit

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// capped serves on a capped loopback listener a handler that holds every
// request until release is closed, and counts the requests it holds.
func capped(t *testing.T, total, perAddr int) (addr string, held *atomic.Int64, release chan struct{}, l *Listener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l = Listen(ln, total, perAddr)
	held, release = new(atomic.Int64), make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		held.Add(1)
		<-release
		w.WriteHeader(http.StatusNoContent)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), held, release, l
}

// openFrom opens n connections from the loopback address src, each sending
// one request, and returns them.
func openFrom(t *testing.T, src, addr string, n int) []net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	var conns []net.Conn
	for i := 0; i < n; i++ {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial from %s: %v", src, err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "GET /held HTTP/1.1\r\nHost: x\r\n\r\n")
		conns = append(conns, c)
	}
	return conns
}

// settle waits until the server holds want requests, or reports how many
// it held after a bounded wait (the caps may leave it below want).
func settle(held *atomic.Int64, want int64) int64 {
	for i := 0; i < 100 && held.Load() < want; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // any connection over the cap would be in by now
	return held.Load()
}

// TestOneAddressCannotHoldEveryConnection is the attack of one address that
// opens connections and never lets them finish (1,500 stalled requests in
// 32 s from one address were seen): past perAddr its new connections are
// closed at once, while another address still gets in.
func TestOneAddressCannotHoldEveryConnection(t *testing.T) {
	addr, held, release, l := capped(t, 100, 8)
	defer close(release)
	openFrom(t, "127.0.0.2", addr, 20)
	if n := settle(held, 20); n != 8 {
		t.Fatalf("one address holds %d requests, want its cap of 8", n)
	}
	openFrom(t, "127.0.0.3", addr, 3)
	if n := settle(held, 11); n != 11 {
		t.Fatalf("another address got %d requests in, want 3", n-8)
	}
	if n := l.Open(); n != 11 {
		t.Fatalf("Open() = %d, want 11", n)
	}
}

// TestConnectionCapCountsEveryConnection is the attack of many addresses
// that together open more connections than the process has descriptors
// (`accept4: too many open files`, and /healthz stopped answering): past
// total, new connections of any kind are closed at once, and a closed
// connection frees its place.
func TestConnectionCapCountsEveryConnection(t *testing.T) {
	addr, held, release, l := capped(t, 10, 4)
	var conns []net.Conn
	for i := 2; i < 7; i++ {
		conns = append(conns, openFrom(t, fmt.Sprintf("127.0.0.%d", i), addr, 4)...)
	}
	if n := settle(held, 20); n != 10 {
		t.Fatalf("%d requests held past a cap of 10 connections", n)
	}
	close(release)
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if res, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
				res.Body.Close()
			}
			c.Close()
		}()
	}
	wg.Wait()
	for i := 0; i < 100 && l.Open() != 0; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if n := l.Open(); n != 0 {
		t.Fatalf("%d connections still counted after every one closed", n)
	}
	// Places freed: a new address gets in again.
	res, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("a request after the flood ended: %v", err)
	}
	res.Body.Close()
}
