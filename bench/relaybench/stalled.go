package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// stalledKinds are issue 14's stalled requests: a link PUT that sends one
// byte of a 64 KiB body, and a PUT of 8 MiB − 1 bytes to a blob id nobody
// reserved that stops one byte short.
var stalledKinds = []struct{ name, path string }{
	{"1-byte link body", "/v1/link/%s/0"},
	{"8 MiB blob body, unreserved", "/v1/blobs/%s"},
}

// runStalled measures, against the parley-server binary bin (its default
// limits), what n stalled requests of each kind from one loopback address
// cost: RSS per request 3 s after they were sent, how long until the last
// one was answered or closed (at most 60 s; those still open then are
// "held"), and /healthz's answer time from another address meanwhile.
func runStalled(bin string, n int) error {
	for _, k := range stalledKinds {
		if err := stalledOnce(bin, n, k.name, k.path); err != nil {
			return err
		}
	}
	return nil
}

func stalledOnce(bin string, n int, name, path string) error {
	dir, err := os.MkdirTemp("", "relaybench-stalled")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cmd, addr, err := startServer(bin, dir)
	if err != nil {
		return err
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	time.Sleep(500 * time.Millisecond)
	base := procRSS(cmd.Process.Pid)
	blob := strings.HasPrefix(path, "/v1/blobs/")
	// The flood comes from 127.0.0.2, /healthz from 127.0.0.1: one
	// address's flood must not stop another address's requests.
	flooder := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 5 * time.Second}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		c, err := flooder.Dial("tcp", addr)
		if err != nil {
			break // the listen backlog is full: as many as got in
		}
		conns = append(conns, c)
		id := make([]byte, 16)
		rand.Read(id)
		target := fmt.Sprintf(path, hex.EncodeToString(id))
		if blob {
			fmt.Fprintf(c, "PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", target, 8<<20-1)
			go c.Write(make([]byte, 8<<20-2))
		} else {
			fmt.Fprintf(c, "PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\nx", target, 64<<10)
		}
	}
	// Each request's end (an answer, or the server closing it) is timed
	// from when they were all sent; those still open after 60 s are held.
	start := time.Now()
	var mu sync.Mutex
	var held int
	var last time.Duration
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetReadDeadline(start.Add(60 * time.Second))
			_, err := http.ReadResponse(bufio.NewReader(c), nil)
			ne, isNet := err.(net.Error)
			mu.Lock()
			defer mu.Unlock()
			if isNet && ne.Timeout() {
				held++
				return
			}
			last = max(last, time.Since(start))
		}()
	}
	time.Sleep(3 * time.Second)
	rss := procRSS(cmd.Process.Pid)
	hz, herr := healthzTime(addr, 5*time.Second)
	wg.Wait()
	hzs := hz.Round(time.Millisecond).String()
	if herr != nil {
		hzs = "no answer (" + herr.Error() + ")"
	}
	fmt.Printf("  stalled request (%s): %d opened, %.1f KiB RSS each after 3 s; %d still held after 60 s, the others ended within %.1f s; /healthz %s\n",
		name, len(conns), float64(rss-base)/float64(max(len(conns), 1))/1024, held, last.Seconds(), hzs)
	return nil
}

func healthzTime(addr string, within time.Duration) (time.Duration, error) {
	cl := http.Client{Timeout: time.Second}
	deadline := time.Now().Add(within)
	for {
		t0 := time.Now()
		res, err := cl.Get("http://" + addr + "/healthz")
		if err == nil {
			res.Body.Close()
			return time.Since(t0), nil
		}
		if time.Now().After(deadline) {
			return 0, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// procRSS is the resident set of process pid, in bytes.
func procRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}
