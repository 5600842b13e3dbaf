//go:build js && wasm

package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"syscall/js"
	"testing/fstest"
	"time"

	"github.com/parley-im/parley/server"
	"github.com/parley-im/parley/server/relayserver"
	"github.com/parley-im/parley/server/store"
	"github.com/syumai/workers"
	"github.com/syumai/workers/cloudflare"
	"github.com/syumai/workers/cloudflare/cron"
)

// indexHTML is the client page as cmd/assets generated it (versioned asset
// URLs). Static Assets serve it at "/"; the Go handler carries it only
// because server.New requires one, and serves it with the same headers.
//
//go:embed public/index.html
var indexHTML []byte

// linkPoll is how often a link long-poll re-reads D1: the writer is always
// another instance here.
const linkPoll = time.Second

// maxHostedBody bounds a hosted-session call: one frame (base64) plus the
// session.
const maxHostedBody = 2 << 20

var logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

func main() {
	workers.ServeNonBlock(http.HandlerFunc(serve))
	cron.ScheduleTaskNonBlock(sweep)
	workers.Ready()
	<-workers.Done()
}

// newRelay builds the relay for one request. Hosted: it starts no pinger
// or sweeper (the cron trigger sweeps), so a finished request leaves no
// timer behind; Close ends its delete batcher.
func newRelay() (*relayserver.Relay, *cfStore, error) {
	st, err := openStore()
	if err != nil {
		return nil, nil, err
	}
	fetches, _ := strconv.Atoi(cloudflare.Getenv("PREKEY_FETCHES")) // unset or 0: the default
	r, err := relayserver.New(st, relayserver.Config{
		Origin:        cloudflare.Getenv("ORIGIN"),
		Logger:        logger,
		Hosted:        true,
		LinkPoll:      linkPoll,
		PrekeyFetches: fetches,
	})
	return r, st, err
}

// serve answers from a buffer: the whole response is made before it is
// handed to the runtime as one Uint8Array, so nothing calls into this Go
// instance once the handler has returned (no stream pulls on it) and it
// can be collected. Relay responses are small; a blob is at most
// relay.MaxBlob.
func serve(w http.ResponseWriter, req *http.Request) {
	rec := httptest.NewRecorder()
	handle(rec, req)
	// The platform owns connections: a Connection header (a refusal sent
	// before the body was read asks the Go server to close) is not ours.
	rec.Header().Del("Connection")
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	raw, ok := w.(interface{ WriteRawJSBody(js.Value) })
	if !ok || rec.Body.Len() == 0 {
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
		return
	}
	body := js.Global().Get("Uint8Array").New(rec.Body.Len())
	js.CopyBytesToJS(body, rec.Body.Bytes())
	w.WriteHeader(rec.Code)
	raw.WriteRawJSBody(body)
}

func handle(w http.ResponseWriter, req *http.Request) {
	r, st, err := newRelay()
	if err != nil {
		logger.Error("relay setup", "err", err)
		http.Error(w, "relay misconfigured: "+err.Error(), http.StatusInternalServerError)
		return
	}
	defer r.Close(context.Background())
	if strings.HasPrefix(req.URL.Path, "/_hosted/") {
		hosted(w, req, r, st)
		return
	}
	srv, err := server.New(server.Config{
		Assets: fstest.MapFS{"index.html": {Data: indexHTML}},
		Relay:  r.Handler(),
		Logger: logger,
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	srv.ServeHTTP(w, req)
}

// hostedCall is what a Socket object sends: its id, the session it
// stores, and for "frame" the device's message.
type hostedCall struct {
	Socket  string               `json:"socket"`
	Session *relayserver.Session `json:"session"`
	Data    []byte               `json:"data"`
	Binary  bool                 `json:"binary"`
}

type hostedReply struct {
	Session *relayserver.Session `json:"session,omitempty"`
	Out     relayserver.Output   `json:"out"`
}

// hosted runs one event of a device socket held by a Socket object. The
// entry point (src/index.mjs) refuses /_hosted/ from the internet; only
// Socket objects call it, in-process.
func hosted(w http.ResponseWriter, req *http.Request, r *relayserver.Relay, st *cfStore) {
	var c hostedCall
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxHostedBody))
	if err == nil {
		err = json.Unmarshal(body, &c)
	}
	if err == nil && c.Session == nil && req.URL.Path != "/_hosted/open" {
		err = errors.New("no session")
	}
	if err != nil {
		http.Error(w, "bad hosted call: "+err.Error(), http.StatusBadRequest)
		return
	}
	var out relayserver.Output
	s := c.Session
	switch req.URL.Path {
	case "/_hosted/open":
		s, out, err = r.OpenSession()
	case "/_hosted/frame":
		out = r.SessionFrame(s, c.Data, c.Binary)
	case "/_hosted/deliver":
		out = r.SessionDeliver(s)
	case "/_hosted/timeout":
		out = r.SessionTimeout(s)
	case "/_hosted/closed":
		if s.Authed {
			err = st.unsubscribe(store.Addr{Handle: s.Handle, Device: s.Device}, c.Socket)
		}
	default:
		http.NotFound(w, req)
		return
	}
	if err == nil {
		err = effects(r, st, s, c.Socket, &out)
	}
	if err != nil {
		logger.Error("hosted session", "op", req.URL.Path, "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(hostedReply{Session: s, Out: out})
}

// effects does what an Output asks of the world beyond this socket: a
// login subscribes the socket to its mailbox (then delivers once more, so
// an envelope stored between the first read and the subscription is not
// missed), pushes reach other devices' sockets, and a closed socket
// unsubscribes.
func effects(r *relayserver.Relay, st *cfStore, s *relayserver.Session, socket string, out *relayserver.Output) error {
	if s == nil || !s.Authed {
		return nil
	}
	defer func() {
		if st.truncated && out.Close == 0 {
			out.More = true // a page stopped at its byte bound: read on
		}
	}()
	addr := store.Addr{Handle: s.Handle, Device: s.Device}
	if out.Close != 0 {
		return st.unsubscribe(addr, socket)
	}
	if out.Authed {
		if err := st.subscribe(addr, socket); err != nil {
			return err
		}
		d := r.SessionDeliver(s)
		out.Frames = append(out.Frames, d.Frames...)
		out.Close, out.Reason, out.More = d.Close, d.Reason, d.More
	}
	for _, p := range out.Push {
		if err := st.push(p.To, p.Frame); err != nil {
			logger.Warn("pushing to another device", "err", err) // it learns its stock again from Ready
		}
	}
	return nil
}

// sweep runs from the cron trigger: expired link messages and blobs.
func sweep(ctx context.Context) error {
	st, err := openStore()
	if err != nil {
		return err
	}
	n, err := st.Sweep(time.Now())
	if err != nil {
		// Logged rather than returned: syumai/workers panics on a task
		// error, and the next run retries anyway.
		logger.Error("sweeping expired records", "swept", n, "err", err)
	} else if n > 0 {
		logger.Warn("swept expired records", "count", n)
	}
	return nil
}
