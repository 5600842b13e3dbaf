package relayserver_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/parley-im/parley/internal/tstest"
	"github.com/parley-im/parley/relay/relayclient"
)

// The crash tests run the real parley-server binary, kill it with SIGKILL
// and restart it on the same data directory: every send the relay
// acknowledged must come out again, and nothing it did not accept.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func serverBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "parley-crash-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "parley-server")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/parley-im/parley/server/cmd/parley-server").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

type proc struct {
	cmd    *exec.Cmd
	origin string
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startServer(t *testing.T, addr, data string) *proc {
	t.Helper()
	cmd := exec.Command(serverBinary(t), "-addr", addr, "-data", data)
	cmd.Env = append(os.Environ(), "PARLEY_ORIGIN=http://"+addr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, origin: "http://" + addr}
	t.Cleanup(func() { p.kill() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(p.origin + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not come up: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *proc) kill() {
	if p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
}

// drain collects everything queued for c until the queue is empty.
func drain(t *testing.T, c *relayclient.Client) map[[16]byte]int {
	t.Helper()
	got := map[[16]byte]int{}
	want := int(c.Ready.Queued)
	for len(got) < want {
		e := recv(t, c)
		got[e.MessageID]++
		c.Ack(context.Background(), e.Seq)
	}
	tstest.NoEnvelope(t, c, 100*time.Millisecond)
	return got
}

func TestCrashAfterAckedSends(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	addr, data := freeAddr(t), t.TempDir()
	p := startServer(t, addr, data)
	tr := &testRelay{origin: p.origin}
	alice := tr.register(t, "alice", 1)
	bob := tr.register(t, "bob", 1)
	a, err := relayclient.Dial(ctx(t), p.origin, "alice", alice.Devs[0])
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	acked := map[[16]byte]bool{}
	for i := 0; i < n; i++ {
		id := msgID()
		if _, err := a.Send(ctx(t), id, sealed(bob.Addr(0))); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		acked[id] = true
	}
	p.kill()

	p = startServer(t, addr, data)
	b, err := relayclient.Dial(ctx(t), p.origin, "bob", bob.Devs[0])
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got := drain(t, b)
	for id := range acked {
		if got[id] != 1 {
			t.Fatalf("acked message delivered %d times after the crash", got[id])
		}
	}
	if len(got) != len(acked) {
		t.Fatalf("%d delivered, %d acked: invented messages", len(got), len(acked))
	}
}

func TestCrashDuringBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	addr, data := freeAddr(t), t.TempDir()
	p := startServer(t, addr, data)
	tr := &testRelay{origin: p.origin}
	bob := tr.register(t, "bob", 2)
	const senders = 8
	var mu sync.Mutex
	acked := map[[16]byte]bool{}
	attempted := map[[16]byte]bool{}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for s := 0; s < senders; s++ {
		u := tr.register(t, fmt.Sprintf("sender%d", s), 1)
		c, err := relayclient.Dial(ctx(t), p.origin, u.Handle, u.Devs[0])
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				id := msgID()
				mu.Lock()
				attempted[id] = true
				mu.Unlock()
				sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := c.Send(sctx, id, sealed(bob.Addr(0), bob.Addr(1)))
				cancel()
				if err != nil {
					return // the server died under us
				}
				mu.Lock()
				acked[id] = true
				mu.Unlock()
			}
		}()
	}
	// Kill it in the middle of the burst.
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= 300 })
	p.kill()
	close(stop)
	wg.Wait()

	p = startServer(t, addr, data)
	for i := 0; i < 2; i++ {
		b, err := relayclient.Dial(ctx(t), p.origin, "bob", bob.Devs[i])
		if err != nil {
			t.Fatal(err)
		}
		got := drain(t, b)
		b.Close()
		for id := range acked {
			if got[id] == 0 {
				t.Fatalf("bob/%d: an acked message was lost", i)
			}
		}
		for id, k := range got {
			if !attempted[id] {
				t.Fatalf("bob/%d: a message nobody sent was delivered", i)
			}
			if k != 1 {
				t.Fatalf("bob/%d: delivered %d times", i, k)
			}
		}
		t.Logf("bob/%d: %d acked before the kill, %d delivered after restart (%d attempted)", i, len(acked), len(got), len(attempted))
	}
}

// TestGracefulShutdown: SIGTERM to the real binary closes device sockets
// with going-away, and acked deletes are flushed before it exits.
func TestGracefulShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	addr, data := freeAddr(t), t.TempDir()
	p := startServer(t, addr, data)
	tr := &testRelay{origin: p.origin}
	alice := tr.register(t, "alice", 1)
	bob := tr.register(t, "bob", 1)
	a, err := relayclient.Dial(ctx(t), p.origin, "alice", alice.Devs[0])
	if err != nil {
		t.Fatal(err)
	}
	b, err := relayclient.Dial(ctx(t), p.origin, "bob", bob.Devs[0])
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if _, err := a.Send(ctx(t), msgID(), sealed(bob.Addr(0))); err != nil {
			t.Fatal(err)
		}
		b.Ack(ctx(t), recv(t, b).Seq)
	}
	// A link long-poll in flight must not hold the sockets' going-away
	// back until http.Server.Shutdown gives up on it.
	polled := make(chan error, 1)
	go func() {
		_, err := relayclient.GetLink(ctx(t), p.origin, make([]byte, 16), 0, 20*time.Second)
		polled <- err
	}()
	time.Sleep(100 * time.Millisecond) // let the relay read the last ack, and the poll start
	p.cmd.Process.Signal(syscall.SIGTERM)
	for _, c := range []*relayclient.Client{a, b} {
		if err := tstest.WaitClosed(t, c, 3*time.Second); websocket.CloseStatus(err) != websocket.StatusGoingAway {
			t.Fatalf("socket ended with %v, want going away", err)
		}
	}
	select {
	case <-polled:
	case <-time.After(3 * time.Second):
		t.Fatal("link long-poll still open 3 s after SIGTERM")
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("server exit: %v", err)
	}
	p = startServer(t, addr, data)
	b, err = relayclient.Dial(ctx(t), p.origin, "bob", bob.Devs[0])
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Ready.Queued != 0 {
		t.Fatalf("%d acked envelopes survived a graceful shutdown", b.Ready.Queued)
	}
}
