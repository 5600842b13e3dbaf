package tstest

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/parley-im/parley/server/relayserver"
	"github.com/parley-im/parley/server/store"
)

// Relay is the real relay serving on a loopback port over its own store in
// a temporary directory, until the test ends.
type Relay struct {
	Origin string // http://127.0.0.1:port, the origin logins are signed to
	Relay  *relayserver.Relay
	Store  *store.Store
	Clock  *Clock // the relay's Now
}

// StartRelay starts a relay whose per-IP and registration budgets are out
// of reach (every test client shares one loopback address), that logs
// nothing, and whose time is r.Clock; tweak, if not nil, changes its
// Config before it starts. It serves /v1/ and /metrics, and it is shut down
// and its store closed when the test ends.
func StartRelay(t testing.TB, tweak func(*relayserver.Config)) *Relay {
	t.Helper()
	return StartRelayOver(t, nil, tweak)
}

// StartRelayOver is StartRelay with the relay's store seen through wrap
// (a test that watches or breaks what the relay asks of its store); nil
// means the store as it is.
func StartRelayOver(t testing.TB, wrap func(*store.Store) relayserver.Store, tweak func(*relayserver.Config)) *Relay {
	t.Helper()
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := &Relay{Origin: "http://" + ln.Addr().String(), Store: st, Clock: &Clock{}}
	cfg := relayserver.Config{
		Origin: tr.Origin, Now: tr.Clock.Now, AfterFunc: tr.Clock.AfterFunc,
		IPRate: 1e6, IPBurst: 1e6, RegisterRate: 1e6, RegisterBurst: 1e6,
		Logger: slog.New(slog.DiscardHandler),
	}
	if tweak != nil {
		tweak(&cfg)
	}
	var rs relayserver.Store = st
	if wrap != nil {
		rs = wrap(st)
	}
	r, err := relayserver.New(rs, cfg)
	if err != nil {
		t.Fatal(err)
	}
	tr.Relay = r
	mux := http.NewServeMux()
	mux.Handle("/v1/", r.Handler())
	mux.Handle("/metrics", r.Metrics())
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		r.Close(ctx)
		st.Close()
	})
	return tr
}
