// Command parley is Parley's messenger on the command line: the same
// engine as the browser client (package client), with its state in one
// bbolt file. It is meant for bots, demos and load tests.
//
//	parley [-relay URL] [-data FILE] <command> [arguments]
//
//	create <handle> <device-name>   make a new account with this device as its primary
//	link <device-name>              link this device to an account (prints a code and a QR)
//	approve <link-code>             on the primary: approve a device showing that code
//	send <handle> <text>            send a message (waits until the relay has it)
//	listen                          print messages as they arrive, until interrupted
//	devices                         list the account's devices
//	revoke <device-id>              on the primary: remove a companion
//
// One process at a time may use a data file; a second one fails with a
// clear error instead of waiting.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/parley-im/parley/client"
	"github.com/parley-im/parley/client/storage/boltstore"
	qrcode "github.com/skip2/go-qrcode"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "parley:", err)
		os.Exit(1)
	}
}

const usage = `usage: parley [-relay URL] [-data FILE] [-timeout D] [-json] [-v] <command> [arguments]

commands:
  create <handle> <device-name>   make a new account with this device as its primary
  link <device-name>              link this device to an account (prints a code and a QR)
  approve <link-code>             on the primary: approve a device showing that code
  send <handle> <text>            send a message (waits until the relay has it)
  listen                          print messages as they arrive, until interrupted
  devices                         list the account's devices
  revoke <device-id>              on the primary: remove a companion

flags:
`

// cli is one invocation.
type cli struct {
	stdin          *bufio.Reader
	stdout, stderr io.Writer
	timeout        time.Duration
	json           bool

	eng   *client.Engine
	store *boltstore.Store

	mu     sync.Mutex
	events chan client.Event // nil: not listening
	check  chan string       // link-check codes for `link`
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("parley", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	home, _ := os.UserHomeDir()
	relayURL := fs.String("relay", envOr("PARLEY_RELAY", "http://127.0.0.1:8080"), "relay origin (env PARLEY_RELAY)")
	data := fs.String("data", envOr("PARLEY_DATA_FILE", filepath.Join(home, ".parley", "parley.db")), "this device's data file (env PARLEY_DATA_FILE)")
	timeout := fs.Duration("timeout", 30*time.Second, "how long send, create, link and revoke wait for the relay")
	asJSON := fs.Bool("json", false, "listen and devices print JSON lines")
	verbose := fs.Bool("v", false, "log the engine's operational messages to stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return flag.ErrHelp
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	want := map[string]int{"create": 2, "link": 1, "approve": 1, "send": 2, "listen": 0, "devices": 0, "revoke": 1}
	n, ok := want[cmd]
	if !ok {
		fs.Usage()
		return fmt.Errorf("unknown command %q", cmd)
	}
	if cmd == "send" && len(rest) > 2 {
		rest = []string{rest[0], strings.Join(rest[1:], " ")}
	}
	if len(rest) != n {
		return fmt.Errorf("%s takes %d argument(s), got %d (see parley -h)", cmd, n, len(rest))
	}

	path := *data
	if strings.HasPrefix(path, "~/") {
		path = filepath.Join(home, path[2:])
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	st, err := boltstore.Open(path)
	if err != nil {
		return err
	}
	defer st.Close()

	c := &cli{stdin: bufio.NewReader(stdin), stdout: stdout, stderr: stderr, timeout: *timeout, json: *asJSON, store: st, check: make(chan string, 1)}
	level := slog.LevelError
	if *verbose {
		level = slog.LevelInfo
	}
	c.eng, err = client.Open(ctx, client.Config{
		Store:   st,
		Relay:   client.NewRelay(strings.TrimRight(*relayURL, "/")),
		OnEvent: c.onEvent,
		Logger:  slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
	})
	if err != nil {
		return err
	}
	switch cmd {
	case "create":
		return c.create(ctx, rest[0], rest[1])
	case "link":
		return c.link(ctx, rest[0])
	case "approve":
		return c.approve(ctx, rest[0])
	case "send":
		return c.send(ctx, rest[0], rest[1])
	case "listen":
		return c.listen(ctx)
	case "devices":
		return c.devices(ctx)
	default:
		return c.revoke(ctx, rest[0])
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func (c *cli) onEvent(ev client.Event) {
	if ev.Type == "link-check" {
		select {
		case c.check <- ev.CheckCode:
		default:
		}
	}
	c.mu.Lock()
	ch := c.events
	c.mu.Unlock()
	if ch != nil {
		ch <- ev
	}
}

// online runs the engine in the background until the returned stop is
// called; stop waits for it to end (the store is closed after that).
func (c *cli) online(ctx context.Context) (stop func(), done <-chan struct{}, runErr func() error) {
	rctx, cancel := context.WithCancel(ctx)
	ch := make(chan struct{})
	var err error
	go func() {
		err = c.eng.Run(rctx)
		close(ch)
	}()
	return func() {
			cancel()
			<-ch
		}, ch, func() error {
			<-ch
			return err
		}
}

// flush runs the engine until what is queued has left and the prekeys are
// up (bounded by -timeout).
func (c *cli) flush(ctx context.Context) error {
	stop, done, runErr := c.online(ctx)
	defer stop()
	fctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- c.eng.Flush(fctx) }()
	select {
	case err := <-errc:
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("the relay did not take everything within %s; the rest stays queued and goes out next time", c.timeout)
		}
		return err
	case <-done:
		return runErr()
	}
}

func (c *cli) create(ctx context.Context, handle, name string) error {
	if err := c.eng.CreateAccount(ctx, handle, name); err != nil {
		return err
	}
	if err := c.flush(ctx); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "created account %s; this device (%s) is its primary\n", handle, c.eng.Device().ID)
	return nil
}

func (c *cli) link(ctx context.Context, name string) error {
	start, err := c.eng.StartLink(ctx, name)
	if err != nil {
		return err
	}
	q, err := qrcode.New(start.Payload, qrcode.Low)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "%s\nOn the primary, scan this code or run:\n\n  parley approve '%s'\n\nWaiting (the code expires at %s)...\n",
		q.ToSmallString(false), start.Payload, time.Unix(start.Expires, 0).Format(time.TimeOnly))
	type res struct {
		handle string
		err    error
	}
	linked := make(chan res, 1)
	go func() {
		h, err := c.eng.WaitLinked(ctx)
		linked <- res{h, err}
	}()
	var r res
	for waiting := true; waiting; {
		select {
		case code := <-c.check:
			// Whoever answered the code first sent this one: join only
			// if it is the user's own primary that shows it.
			fmt.Fprintf(c.stdout, "Check code: %s\nDoes your primary show the same code? [y/N] ", code)
			line, _ := c.stdin.ReadString('\n')
			if a := strings.ToLower(strings.TrimSpace(line)); a == "y" || a == "yes" {
				err = c.eng.ConfirmLinkCode()
			} else {
				err = c.eng.RejectLinkCode()
			}
			if err != nil {
				return err
			}
		case r = <-linked:
			waiting = false
		}
	}
	if errors.Is(r.err, client.ErrLinkRejected) {
		return errors.New("not confirmed; this device was not linked")
	}
	if r.err != nil {
		return r.err
	}
	if err := c.flush(ctx); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "linked to %s as device %s\n", r.handle, c.eng.Device().ID)
	return nil
}

func (c *cli) approve(ctx context.Context, payload string) error {
	// Online while linking: the new device's history goes over the relay.
	stop, _, _ := c.online(ctx)
	defer stop()
	wctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if err := c.eng.WaitOnline(wctx); err != nil {
		return fmt.Errorf("could not reach the relay: %w", err)
	}
	type res struct {
		p   *client.PendingLink
		err error
	}
	approved := make(chan res, 1)
	go func() {
		p, err := c.eng.ApproveLink(ctx, strings.TrimSpace(payload))
		approved <- res{p, err}
	}()
	var r res
	for waiting := true; waiting; {
		select {
		case code := <-c.check:
			fmt.Fprintf(c.stdout, "Check code: %s\nConfirm it on the new device if it shows the same code...\n", code)
		case r = <-approved:
			waiting = false
		}
	}
	if errors.Is(r.err, client.ErrLinkRejected) {
		return errors.New("the new device rejected the check code; nothing changed")
	}
	if r.err != nil {
		return r.err
	}
	p := r.p
	fmt.Fprintf(c.stdout, "Device %q wants to join.\nCheck code: %s\nDoes the new device show the same code? [y/N] ", p.DeviceName, p.CheckCode)
	line, _ := c.stdin.ReadString('\n')
	if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
		c.eng.CancelLink(p.LinkID)
		return errors.New("not approved; nothing changed")
	}
	if err := c.eng.ConfirmLink(ctx, p.LinkID); err != nil {
		return err
	}
	fctx, fcancel := context.WithTimeout(ctx, c.timeout)
	defer fcancel()
	if err := c.eng.Flush(fctx); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "linked %q\n", p.DeviceName)
	return nil
}

func (c *cli) send(ctx context.Context, to, text string) error {
	id, err := c.eng.SendText(ctx, to, text)
	if err != nil {
		return err
	}
	if err := c.flush(ctx); err != nil {
		return err
	}
	msgs, err := c.eng.Messages(ctx, to, "", 50)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if m.ID == id && m.Status == "failed" {
			return fmt.Errorf("message %s could not be delivered", id)
		}
	}
	fmt.Fprintln(c.stdout, id)
	return nil
}

func (c *cli) listen(ctx context.Context) error {
	events := make(chan client.Event, 256)
	c.mu.Lock()
	c.events = events
	c.mu.Unlock()
	stop, done, runErr := c.online(ctx)
	// The engine may block on an event while it stops, and late events
	// may still come: drain them (the channel is never closed).
	defer func() {
		go func() {
			for range events {
			}
		}()
		stop()
		c.mu.Lock()
		c.events = nil
		c.mu.Unlock()
	}()
	enc := json.NewEncoder(c.stdout)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-done:
			if ctx.Err() != nil {
				return nil
			}
			return runErr()
		case ev := <-events:
			switch {
			case c.json && (ev.Type == "message" || ev.Type == "error"):
				enc.Encode(ev)
			case ev.Type == "message" && ev.Message != nil:
				m := ev.Message
				at := time.UnixMilli(m.SentAt).Format(time.TimeOnly)
				if m.Outgoing {
					fmt.Fprintf(c.stdout, "%s you → %s: %s\n", at, m.Chat, m.Text)
				} else {
					fmt.Fprintf(c.stdout, "%s %s: %s\n", at, m.From, m.Text)
				}
			case ev.Type == "error":
				fmt.Fprintf(c.stderr, "parley: %s: %s\n", ev.Code, ev.Text)
			}
		}
	}
}

func (c *cli) devices(ctx context.Context) error {
	devs, err := c.eng.Devices(ctx, true)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(c.stdout)
	for _, d := range devs {
		if c.json {
			enc.Encode(d)
			continue
		}
		role, note := "companion", ""
		if d.Primary {
			role = "primary"
		} else {
			note = " expires " + time.Unix(d.Expires, 0).Format(time.DateOnly)
		}
		if d.This {
			note += " (this device)"
		}
		fmt.Fprintf(c.stdout, "%s  %-9s  %-20s added %s%s\n", d.ID, role, d.Name, time.Unix(d.Added, 0).Format(time.DateOnly), note)
	}
	return nil
}

func (c *cli) revoke(ctx context.Context, id string) error {
	if err := c.eng.RevokeDevice(ctx, id); err != nil {
		return err
	}
	// The new state-sync key must reach the remaining devices.
	if err := c.flush(ctx); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "revoked %s\n", id)
	return nil
}
