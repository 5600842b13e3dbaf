package relayserver_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/parley-im/parley/server/relayserver"
)

// serveFrom runs one request through the relay's handler as if it came
// from remote (host:port), and returns the answer.
func serveFrom(t *testing.T, r *relayserver.Relay, remote, method, path string, body []byte) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	req.RemoteAddr = remote
	w := httptest.NewRecorder()
	r.Handler().ServeHTTP(w, req)
	return w
}

func errorCode(w *httptest.ResponseRecorder) string {
	var e relayserver.ErrorResponse
	_ = json.Unmarshal(w.Body.Bytes(), &e)
	return e.Code
}

// TestIPv6NeighboursShareOneBudget is the attack of a client with an IPv6
// /64 (what one home or one VM gets) who sends each request from another
// address of it: keyed on the exact address, every request would find a
// fresh bucket. Addresses of one /64 share a budget; another /64 and IPv4
// addresses have their own.
func TestIPv6NeighboursShareOneBudget(t *testing.T) {
	tr := startRelay(t, func(c *relayserver.Config) { c.IPRate, c.IPBurst = 0.001, 3 })
	for i, remote := range []string{"[2001:db8:0:1::1]:1000", "[2001:db8:0:1::2]:1000", "[2001:db8:0:1:ffff::3]:1000"} {
		if w := serveFrom(t, tr.relay, remote, "GET", "/v1/accounts/nobody", nil); w.Code == http.StatusTooManyRequests {
			t.Fatalf("request %d from %s refused within the burst", i, remote)
		}
	}
	w := serveFrom(t, tr.relay, "[2001:db8:0:1:aaaa:bbbb:cccc:dddd]:1000", "GET", "/v1/accounts/nobody", nil)
	if w.Code != http.StatusTooManyRequests || errorCode(w) != "rate_limited" {
		t.Fatalf("fourth request from the same /64 (another address): %d %q, want 429 rate_limited", w.Code, errorCode(w))
	}
	for _, remote := range []string{"[2001:db8:0:2::1]:1000", "192.0.2.7:1000"} {
		if w := serveFrom(t, tr.relay, remote, "GET", "/v1/accounts/nobody", nil); w.Code == http.StatusTooManyRequests {
			t.Fatalf("request from %s (another network) refused: the /64 budget leaked", remote)
		}
	}
}

// TestInvalidRegistrationsSpareTheBudget is the attack of a neighbour
// behind the same address (or a buggy client) who sends registrations that
// can never succeed: they must not use up the few account creations an
// address gets, so the next valid registration still passes.
func TestInvalidRegistrationsSpareTheBudget(t *testing.T) {
	tr := startRelay(t, func(c *relayserver.Config) { c.RegisterRate, c.RegisterBurst = 0.001, 1 })
	for _, body := range []string{`{"handle":"NO SUCH HANDLE","device_list":"AAAA"}`, `{"handle":"ok-handle"}`, `not json`} {
		w := serveFrom(t, tr.relay, "192.0.2.8:1000", "POST", "/v1/accounts", []byte(body))
		if w.Code != http.StatusBadRequest {
			t.Fatalf("invalid registration %s: %d %q, want 400", body, w.Code, errorCode(w))
		}
	}
	u := newUser(t, "alice", 1)
	body, _ := json.Marshal(relayserver.RegisterRequest{Handle: "alice", DeviceList: u.Signed(t)})
	if w := serveFrom(t, tr.relay, "192.0.2.8:1000", "POST", "/v1/accounts", body); w.Code != http.StatusCreated {
		t.Fatalf("valid registration after invalid ones: %d %q, want 201", w.Code, errorCode(w))
	}
	u = newUser(t, "bob", 1)
	body, _ = json.Marshal(relayserver.RegisterRequest{Handle: "bob", DeviceList: u.Signed(t)})
	if w := serveFrom(t, tr.relay, "192.0.2.8:1000", "POST", "/v1/accounts", body); w.Code != http.StatusTooManyRequests {
		t.Fatalf("second valid registration past the budget: %d %q, want 429", w.Code, errorCode(w))
	}
}

// TestUnknownEndpointFloodLimited is the attack of a scanner that walks
// /v1/ paths no endpoint answers: those 404s spend the per-IP budget like
// any request, and are never cached (a shared cache must not keep an
// answer about a path a later release may serve).
func TestUnknownEndpointFloodLimited(t *testing.T) {
	tr := startRelay(t, func(c *relayserver.Config) { c.IPRate, c.IPBurst = 0.001, 3 })
	for i := 0; i < 3; i++ {
		w := serveFrom(t, tr.relay, "192.0.2.9:1000", "GET", "/v1/no/such/thing", nil)
		if w.Code != http.StatusNotFound || w.Header().Get("Cache-Control") != "no-store" {
			t.Fatalf("unknown endpoint: %d, Cache-Control %q, want 404 no-store", w.Code, w.Header().Get("Cache-Control"))
		}
	}
	// POST /v1/ws reaches the catch-all too, and is no exception.
	for _, p := range []string{"/v1/no/such/thing", "/v1/ws"} {
		if w := serveFrom(t, tr.relay, "192.0.2.9:1000", "POST", p, nil); w.Code != http.StatusTooManyRequests {
			t.Fatalf("POST %s past the per-IP budget: %d, want 429", p, w.Code)
		}
	}
}
