package wranglertest

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// hostileHTTP is issue 14's HTTP refusals as both back ends must answer
// them: an 8 MiB body to an unreserved blob id is refused (404) on its
// headers, and an unknown /v1/ path is a 404 that no cache keeps.
// platformReadsBodies is for Workers, where the platform (wrangler's
// middleware, the runtime) takes a request's whole body before the answer
// leaves, whatever the worker decided: there the body is sent in full and
// the answer must be the same 404; the Go relay answers with the body
// never sent, so an answer means it was not awaited.
func hostileHTTP(t *testing.T, origin string, platformReadsBodies bool) {
	t.Run("unreserved blob refused before its body", func(t *testing.T) {
		u, err := url.Parse(origin)
		if err != nil {
			t.Fatal(err)
		}
		c, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		id := randBytes16()
		fmt.Fprintf(c, "PUT /v1/blobs/%s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\nx", hex.EncodeToString(id[:]), u.Host, 8<<20-1)
		if platformReadsBodies {
			go c.Write(make([]byte, 8<<20-2))
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("stalled 8 MiB PUT to an unreserved id: %v, want 404 before the body", err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNotFound {
			t.Fatalf("stalled 8 MiB PUT to an unreserved id: %d, want 404", res.StatusCode)
		}
	})
	t.Run("unknown endpoint is not cached", func(t *testing.T) {
		res, err := http.Get(origin + "/v1/no/such/endpoint")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNotFound || res.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("unknown /v1/ path: %d, Cache-Control %q, want 404 no-store", res.StatusCode, res.Header.Get("Cache-Control"))
		}
	})
}
