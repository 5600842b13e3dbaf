package main

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/internal/tstest"
)

// startRelay runs the real relay in-process on a loopback port.
func startRelay(t *testing.T) string {
	t.Helper()
	return tstest.StartRelay(t, nil).Origin
}

// buildCLI builds this command into a temporary directory.
func buildCLI(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "parley")
	out, err := exec.Command(goBin, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// lines streams a process's output line by line.
type lines struct {
	t  *testing.T
	ch chan string
}

func streamLines(t *testing.T, r io.Reader) *lines {
	l := &lines{t: t, ch: make(chan string, 100)}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			l.ch <- sc.Text()
		}
		close(l.ch)
	}()
	return l
}

// waitFor returns the first line matching re (20 s).
func (l *lines) waitFor(re *regexp.Regexp) []string {
	l.t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case line, ok := <-l.ch:
			if !ok {
				l.t.Fatalf("output ended before a line matching %s", re)
			}
			if m := re.FindStringSubmatch(line); m != nil {
				return m
			}
		case <-timeout:
			l.t.Fatalf("no line matching %s", re)
		}
	}
}

// TestCLI builds parley and drives two accounts through it against an
// in-process relay: create, send, listen; then link a companion with
// approve, list devices and revoke it.
func TestCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a relay")
	}
	bin := buildCLI(t)
	origin := startRelay(t)
	dir := t.TempDir()
	alice, bob, tablet := filepath.Join(dir, "alice.db"), filepath.Join(dir, "bob.db"), filepath.Join(dir, "tablet.db")

	cmd := func(data string, args ...string) *exec.Cmd {
		c := exec.Command(bin, append([]string{"-relay", origin, "-data", data, "-timeout", "20s"}, args...)...)
		c.Stderr = os.Stderr
		return c
	}
	run := func(data string, args ...string) string {
		t.Helper()
		out, err := cmd(data, args...).Output()
		if err != nil {
			t.Fatalf("parley %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	if out := run(alice, "create", "alice", "Alice's laptop"); !strings.Contains(out, "created account alice") {
		t.Fatalf("create: %q", out)
	}
	run(bob, "create", "bob", "Bob's laptop")

	listen := cmd(bob, "listen")
	stdout, err := listen.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := listen.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { listen.Process.Kill(); listen.Wait() })
	heard := streamLines(t, stdout)

	id := strings.TrimSpace(run(alice, "send", "bob", "hello", "from", "the", "cli"))
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(id) {
		t.Fatalf("send printed %q, want a message id", id)
	}
	heard.waitFor(regexp.MustCompile(`alice: hello from the cli$`))
	run(alice, "send", "bob", "second")
	heard.waitFor(regexp.MustCompile(`alice: second$`))

	listen.Process.Signal(os.Interrupt)
	if err := listen.Wait(); err != nil {
		t.Fatalf("listen after interrupt: %v", err)
	}

	// A companion links to alice: `link` prints the code, `approve` on
	// the primary shows the check code; both confirm it on "y".
	link := cmd(tablet, "link", "Alice's tablet")
	link.Stdin = strings.NewReader("y\n") // the check code matches
	lout, err := link.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := link.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { link.Process.Kill(); link.Wait() })
	linkOut := streamLines(t, lout)
	payload := linkOut.waitFor(regexp.MustCompile(`parley approve '([^']+)'`))[1]

	approve := cmd(alice, "approve", payload)
	approve.Stdin = strings.NewReader("y\n")
	out, err := approve.Output()
	if err != nil {
		t.Fatalf("approve: %v\n%s", err, out)
	}
	code := regexp.MustCompile(`Check code: (\S+)`).FindStringSubmatch(string(out))
	if code == nil || !strings.Contains(string(out), `linked "Alice's tablet"`) {
		t.Fatalf("approve printed %q", out)
	}
	if got := linkOut.waitFor(regexp.MustCompile(`Check code: (\S+)`))[1]; got != code[1] {
		t.Fatalf("check codes differ: primary %s, companion %s", code[1], got)
	}
	tabletID := linkOut.waitFor(regexp.MustCompile(`linked to alice as device (\S+)`))[1]
	if err := link.Wait(); err != nil {
		t.Fatalf("link: %v", err)
	}

	devs := run(alice, "devices")
	if !strings.Contains(devs, tabletID) || !strings.Contains(devs, "primary") || strings.Count(devs, "\n") != 2 {
		t.Fatalf("devices:\n%s", devs)
	}
	run(alice, "revoke", tabletID)
	if devs := run(alice, "devices"); strings.Contains(devs, tabletID) {
		t.Fatalf("revoked device still listed:\n%s", devs)
	}
	out, err = cmd(tablet, "send", "bob", "from a revoked tablet").Output()
	if err == nil {
		t.Fatalf("a revoked device could send: %s", out)
	}
}
