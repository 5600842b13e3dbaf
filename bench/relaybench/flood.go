package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-im/parley/relay"
	"github.com/parley-im/parley/relay/relayclient"
)

// The flood's pieces, each one of issue 14's items 1–4, each bound to one
// of the loopback addresses 127.0.0.2 and up (Linux routes all of
// 127.0.0.0/8 to lo), so the relay's per-address budgets see 100 clients
// and not one. Every piece loops until its context ends and then closes
// what it holds: the flood stops by itself.

// floodAddr is the i-th flooding address (127.0.0.2 for i = 0).
func floodAddr(i int) net.IP { return net.IPv4(127, 0, byte((i+2)>>8), byte((i+2)&0xff)) }

// reopenPause is how long a flood slot waits after the relay closed or
// refused it before it opens again: the flood keeps its pressure without
// spinning on 429s.
const reopenPause = time.Second

// floodCounts are what the relay did with the flood.
type floodCounts struct {
	opened, refused, cut atomic.Int64 // opened; answered with an HTTP error; closed by the relay without an answer
}

func (c *floodCounts) String() string {
	return fmt.Sprintf("%d opened, %d answered with an error, %d closed by the relay", c.opened.Load(), c.refused.Load(), c.cut.Load())
}

// bigBody is the body a stalled blob PUT sends: one buffer shared by every
// connection (Write only reads it), so the flood's memory is the relay's
// problem and not the bench's.
var bigBody = make([]byte, 8<<20-2)

// reopening dials addr from local until ctx ends, gives each connection
// to hold (which returns when the relay ended it or ctx did), and waits
// reopenPause before the next. The connection is closed when ctx ends.
func reopening(ctx context.Context, addr string, local net.IP, n *floodCounts, hold func(c net.Conn)) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: local}, Timeout: 5 * time.Second}
	for ctx.Err() == nil {
		if c, err := d.DialContext(ctx, "tcp", addr); err == nil {
			n.opened.Add(1)
			stop := context.AfterFunc(ctx, func() { c.Close() })
			hold(c)
			stop()
			c.Close()
		}
		sleepCtx(ctx, reopenPause)
	}
}

// stalledBody (item 1) holds one stalled request from local open: a link
// PUT of one byte out of 64 KiB, or (big) an unreserved 8 MiB − 1 blob PUT
// that stops one byte short. It reopens whenever the relay ends it.
func stalledBody(ctx context.Context, addr string, local net.IP, big bool, n *floodCounts) {
	reopening(ctx, addr, local, n, func(c net.Conn) {
		id := make([]byte, 16)
		rand.Read(id)
		if big {
			fmt.Fprintf(c, "PUT /v1/blobs/%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", hex.EncodeToString(id), 8<<20-1)
			go c.Write(bigBody)
		} else {
			fmt.Fprintf(c, "PUT /v1/link/%s/0 HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\nx", hex.EncodeToString(id), 64<<10)
		}
		if res, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
			res.Body.Close()
			n.refused.Add(1)
		} else if ctx.Err() == nil {
			n.cut.Add(1)
		}
	})
}

// preAuthFrame (item 4) opens a relay socket from local and, before any
// login, starts a 1 MiB binary message and sends 64 KiB of it, then
// stalls: the relay's pre-login read limit is a few hundred bytes.
func preAuthFrame(ctx context.Context, addr string, local net.IP, n *floodCounts) {
	reopening(ctx, addr, local, n, func(c net.Conn) {
		key := make([]byte, 16)
		rand.Read(key)
		fmt.Fprintf(c, "GET /v1/ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Protocol: %s\r\n\r\n",
			addr, base64.StdEncoding.EncodeToString(key), relay.Subprotocol)
		br := bufio.NewReader(c)
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			return
		}
		if res.StatusCode != http.StatusSwitchingProtocols {
			n.refused.Add(1)
			return
		}
		// FIN + binary, masked, 64-bit length 1 MiB, mask, 64 KiB of it.
		hdr := []byte{0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}
		binary.BigEndian.PutUint64(hdr[2:10], relay.MaxFrame)
		c.Write(append(hdr, make([]byte, 64<<10)...))
		for ctx.Err() == nil { // the challenge, then whatever ends it
			if _, err := br.ReadByte(); err != nil {
				break
			}
		}
		if ctx.Err() == nil {
			n.cut.Add(1)
		}
	})
}

// throttledConn reads at most rate bytes a second: a device socket whose
// reader is slow (item 2), with a small kernel buffer so the relay sees it.
type throttledConn struct {
	net.Conn
	rate int
}

func (t *throttledConn) Read(p []byte) (int, error) {
	chunk := t.rate / 10
	if len(p) > chunk {
		p = p[:chunk]
	}
	n, err := t.Conn.Read(p)
	time.Sleep(time.Duration(n) * time.Second / time.Duration(t.rate))
	return n, err
}

// clientFrom is an HTTP client whose connections come from local; with
// rate > 0 they read at most rate bytes a second. Each has its own
// transport, so its connections are its own.
func clientFrom(local net.IP, rate int) *http.Client {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: local}, Timeout: 5 * time.Second}
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil || rate == 0 {
			return c, err
		}
		c.(*net.TCPConn).SetReadBuffer(16 << 10)
		return &throttledConn{Conn: c, rate: rate}, nil
	}}}
}

// queueFor (item 2's set-up) queues n envelopes of relay.MaxPayload bytes
// to d's mailbox, sent by loader over a normal socket from local.
func queueFor(ctx context.Context, origin string, local net.IP, loader, d *device, n int) error {
	c, err := relayclient.DialVia(ctx, clientFrom(local, 0), origin, loader.handle, loader.dev)
	if err != nil {
		return err
	}
	defer c.Close()
	to := []relay.Sealed{{To: relay.Addr{Handle: d.handle, Device: d.dev.ID}, Payload: make([]byte, relay.MaxPayload)}}
	for i := 0; i < n; i++ {
		var id [16]byte
		rand.Read(id[:])
		if _, err := c.Send(ctx, id, to); err != nil {
			return fmt.Errorf("queueing for the slow reader: %w", err)
		}
	}
	return nil
}

// slowReader (item 2) keeps a socket of d open from local that reads at
// rate bytes a second and never acks, reopening it when the relay closes
// it (cut counts those closes).
func slowReader(ctx context.Context, origin string, local net.IP, d *device, rate int, n *floodCounts) {
	for ctx.Err() == nil {
		c, err := relayclient.DialVia(ctx, clientFrom(local, rate), origin, d.handle, d.dev)
		if err != nil {
			if ctx.Err() == nil {
				n.refused.Add(1)
			}
			sleepCtx(ctx, reopenPause)
			continue
		}
		n.opened.Add(1)
		go func() {
			for range c.Envelopes() {
			}
		}()
		select {
		case <-c.Done():
			n.cut.Add(1)
		case <-ctx.Done():
		}
		c.Close()
		sleepCtx(ctx, reopenPause)
	}
}

// ttlFlood (item 3) sends n envelopes with ttl_s = 1 from d to the victim,
// eight in flight, and counts what the relay accepted and refused.
func ttlFlood(ctx context.Context, origin string, local net.IP, d *device, victim relay.Addr, n int, accepted, refused *atomic.Int64) error {
	c, err := relayclient.DialVia(ctx, clientFrom(local, 0), origin, d.handle, d.dev)
	if err != nil {
		return err
	}
	defer c.Close()
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) && ctx.Err() == nil {
				var id [16]byte
				rand.Read(id[:])
				if _, err := c.SendTTL(ctx, id, 1, []relay.Sealed{{To: victim, Payload: make([]byte, 64)}}); err != nil {
					if !strings.Contains(err.Error(), "mailbox_full") {
						return
					}
					refused.Add(1)
					continue
				}
				accepted.Add(1)
			}
		}()
	}
	wg.Wait()
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
