package relayclient

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-im/parley/relay"
)

// countingConn counts the bytes a client writes to its connection.
type countingConn struct {
	net.Conn
	written *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.written.Add(int64(n))
	return n, err
}

// TestRefusedUploadSendsNoBody: a relay that refuses a large upload on
// its headers, as it refuses an unreserved or oversize blob, gets the
// refusal to the client before the client sends the body, so the answer
// cannot be lost to a reset while the client is still writing.
func TestRefusedUploadSendsNoBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"code":"not_found","error":"no such reservation"}`))
	}))
	defer srv.Close()
	// Count what the client sends, through the transport the package uses.
	var written atomic.Int64
	tr := http.DefaultTransport.(*http.Transport).Clone()
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countingConn{c, &written}, nil
	}
	saved := http.DefaultClient.Transport
	http.DefaultClient.Transport = tr
	defer func() { http.DefaultClient.Transport = saved }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body := make([]byte, relay.MaxBlob)
	err := PutBlob(ctx, srv.URL, [16]byte{1}, body)
	var he *HTTPError
	if !errors.As(err, &he) || he.Status != http.StatusNotFound {
		t.Fatalf("refused upload: %v, want the 404", err)
	}
	if n := written.Load(); n >= expectContinueOver {
		t.Fatalf("the client sent %d bytes of a refused %d-byte upload, want only the headers", n, len(body))
	}
}
