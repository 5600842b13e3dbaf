// Package relayclient is a small native Go client of the relay: one
// authenticated device socket plus the HTTP calls (registration, device
// lists, link channel, blobs). Tests, the load tool and the engine's native
// transport use it. It speaks docs/PROTOCOL.md §10 and nothing more: it
// does not verify device lists or bundles, which is the engine's job.
package relayclient

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/relay"
)

// envelopeBuffer is how many delivered envelopes the client buffers before
// it stops reading; the relay never has more than relay.MaxAcks in flight.
const envelopeBuffer = relay.MaxAcks

// StaleError is a send refused because its device set differs from the
// current lists; Accounts is the exact difference.
type StaleError struct{ Accounts []relay.StaleAccount }

func (e *StaleError) Error() string {
	var b strings.Builder
	b.WriteString("relay: stale device set:")
	for _, a := range e.Accounts {
		fmt.Fprintf(&b, " %s (missing %d, extra %d)", a.Handle, len(a.Missing), len(a.Extra))
	}
	return b.String()
}

// Client is one authenticated device socket.
type Client struct {
	ws    *websocket.Conn
	Ready relay.Ready
	envs  chan *relay.Envelope
	low   chan relay.Stock
	done  chan struct{}
	calls relay.Calls // requests and their answers; why the socket ended
}

// WSURL turns an origin ("https://host") into the socket URL.
func WSURL(origin string) string { return relay.SocketURL(origin) }

// Dial connects to the relay at origin and authenticates as dev of handle.
func Dial(ctx context.Context, origin, handle string, dev *identity.Device) (*Client, error) {
	return DialVia(ctx, nil, origin, handle, dev)
}

// DialVia is Dial over the HTTP client hc (nil: http.DefaultClient):
// bench/relaybench's hostile mode uses it to choose each socket's source
// address and to read some sockets slowly.
func DialVia(ctx context.Context, hc *http.Client, origin, handle string, dev *identity.Device) (*Client, error) {
	ws, _, err := websocket.Dial(ctx, WSURL(origin), &websocket.DialOptions{HTTPClient: hc, Subprotocols: []string{relay.Subprotocol}})
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(relay.MaxFrame)
	f, err := readFrame(ctx, ws)
	if err != nil {
		ws.CloseNow()
		return nil, err
	}
	ch, ok := f.(*relay.Challenge)
	if !ok {
		ws.CloseNow()
		return nil, fmt.Errorf("relayclient: expected Challenge, got type 0x%02x", uint8(f.Type()))
	}
	auth := &relay.Auth{Handle: handle, Device: dev.ID, Timestamp: uint64(time.Now().UnixMilli())}
	sig := dev.Sign(identity.PurposeRelayChallenge, relay.AuthMessage(ch.Nonce, origin, auth.Timestamp, handle, dev.ID))
	copy(auth.Sig[:], sig)
	return Finish(ctx, ws, auth)
}

// Finish sends a prepared Auth frame and waits for Ready; tests use it to
// send forged or replayed answers.
func Finish(ctx context.Context, ws *websocket.Conn, auth *relay.Auth) (*Client, error) {
	if err := ws.Write(ctx, websocket.MessageBinary, relay.Encode(auth)); err != nil {
		ws.CloseNow()
		return nil, err
	}
	f, err := readFrame(ctx, ws)
	if err != nil {
		ws.CloseNow()
		return nil, err
	}
	switch f := f.(type) {
	case *relay.Ready:
		c := &Client{
			ws: ws, Ready: *f,
			envs: make(chan *relay.Envelope, envelopeBuffer),
			low:  make(chan relay.Stock, 4),
			done: make(chan struct{}),
		}
		go c.readLoop()
		return c, nil
	case *relay.Error:
		ws.CloseNow()
		return nil, &relay.RelayError{Code: f.Code, Message: f.Message}
	default:
		ws.CloseNow()
		return nil, fmt.Errorf("relayclient: expected Ready, got type 0x%02x", uint8(f.Type()))
	}
}

// DialRaw opens a socket and returns it with the relay's challenge,
// without authenticating.
func DialRaw(ctx context.Context, origin string) (*websocket.Conn, *relay.Challenge, error) {
	ws, _, err := websocket.Dial(ctx, WSURL(origin), &websocket.DialOptions{Subprotocols: []string{relay.Subprotocol}})
	if err != nil {
		return nil, nil, err
	}
	ws.SetReadLimit(relay.MaxFrame)
	f, err := readFrame(ctx, ws)
	if err != nil {
		ws.CloseNow()
		return nil, nil, err
	}
	ch, ok := f.(*relay.Challenge)
	if !ok {
		ws.CloseNow()
		return nil, nil, errors.New("relayclient: expected Challenge")
	}
	return ws, ch, nil
}

func readFrame(ctx context.Context, ws *websocket.Conn) (relay.Frame, error) {
	typ, b, err := ws.Read(ctx)
	if err != nil {
		return nil, err
	}
	if typ != websocket.MessageBinary {
		return nil, errors.New("relayclient: text message from relay")
	}
	return relay.Decode(b)
}

func (c *Client) readLoop() {
	defer close(c.done)
	defer close(c.envs)
	for {
		f, err := readFrame(context.Background(), c.ws)
		if err != nil {
			c.finish(err)
			return
		}
		if c.calls.Answer(f) {
			continue
		}
		switch f := f.(type) {
		case *relay.Envelope:
			c.envs <- f
		case *relay.LowStock:
			select {
			case c.low <- f.Stock:
			default:
			}
		case *relay.Error: // request 0: the relay ends the socket
			c.finish(&relay.RelayError{Code: f.Code, Message: f.Message})
		}
	}
}

func (c *Client) finish(err error) { c.calls.Close(err) }

// Err is why the socket ended (a *relay.RelayError when the relay said),
// or nil while it is open.
func (c *Client) Err() error { return c.calls.Err() }

// Done is closed when the socket has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// Envelopes delivers envelopes in mailbox order; it is closed with the
// socket. Ack each once it is stored.
func (c *Client) Envelopes() <-chan *relay.Envelope { return c.envs }

// LowStock reports the relay's requests to upload more prekeys.
func (c *Client) LowStock() <-chan relay.Stock { return c.low }

// Close closes the socket normally.
func (c *Client) Close() error {
	err := c.ws.Close(websocket.StatusNormalClosure, "")
	<-c.done
	return err
}

// Conn exposes the socket for tests that write raw frames.
func (c *Client) Conn() *websocket.Conn { return c.ws }

// request sends a frame built with a fresh request id and waits for its
// answer; a Stale answer becomes a *StaleError.
func (c *Client) request(ctx context.Context, build func(req uint32) relay.Frame) (relay.Frame, error) {
	write := func(b []byte) error { return c.ws.Write(ctx, websocket.MessageBinary, b) }
	f, err := c.calls.Do(ctx, write, build)
	if st, ok := f.(*relay.Stale); ok {
		return nil, &StaleError{Accounts: st.Accounts}
	}
	return f, err
}

// Send submits one message as per-device ciphertexts and returns once the
// relay has stored it durably.
func (c *Client) Send(ctx context.Context, msgID [16]byte, to []relay.Sealed) (*relay.OK, error) {
	f, err := c.request(ctx, func(req uint32) relay.Frame { return &relay.Send{Req: req, MessageID: msgID, To: to} })
	if err != nil {
		return nil, err
	}
	return f.(*relay.OK), nil
}

// SendTTL is Send with a TTL in seconds (0: the relay's default); the
// relay raises one under relay.MinTTL to it.
func (c *Client) SendTTL(ctx context.Context, msgID [16]byte, ttlSec uint32, to []relay.Sealed) (*relay.OK, error) {
	f, err := c.request(ctx, func(req uint32) relay.Frame { return &relay.Send{Req: req, MessageID: msgID, TTL: ttlSec, To: to} })
	if err != nil {
		return nil, err
	}
	return f.(*relay.OK), nil
}

// GroupSend submits one ciphertext for the relay to copy to every listed
// device.
func (c *Client) GroupSend(ctx context.Context, msgID [16]byte, payload []byte, to []relay.Addr) (*relay.OK, error) {
	f, err := c.request(ctx, func(req uint32) relay.Frame {
		return &relay.GroupSend{Req: req, MessageID: msgID, Payload: payload, To: to}
	})
	if err != nil {
		return nil, err
	}
	return f.(*relay.OK), nil
}

// Ack tells the relay these envelopes are stored and may be deleted.
func (c *Client) Ack(ctx context.Context, seqs ...uint64) error {
	for len(seqs) > 0 {
		n := min(len(seqs), relay.MaxAcks)
		if err := c.ws.Write(ctx, websocket.MessageBinary, relay.Encode(&relay.Ack{Seqs: seqs[:n]})); err != nil {
			return err
		}
		seqs = seqs[n:]
	}
	return nil
}

// UploadPrekeys publishes prekeys (Req is filled in).
func (c *Client) UploadPrekeys(ctx context.Context, p relay.Prekeys) error {
	_, err := c.request(ctx, func(req uint32) relay.Frame { p.Req = req; return &p })
	return err
}

// Fetch takes another device's prekey bundle.
func (c *Client) Fetch(ctx context.Context, of relay.Addr) (*relay.Bundle, error) {
	f, err := c.request(ctx, func(req uint32) relay.Frame { return &relay.Fetch{Req: req, Of: of} })
	if err != nil {
		return nil, err
	}
	return f.(*relay.Bundle), nil
}

// ReserveBlob gets a fresh blob id to PutBlob to.
func (c *Client) ReserveBlob(ctx context.Context) (*relay.BlobID, error) {
	f, err := c.request(ctx, func(req uint32) relay.Frame { return &relay.BlobReserve{Req: req} })
	if err != nil {
		return nil, err
	}
	return f.(*relay.BlobID), nil
}

// ---- HTTP ----

// Account is the relay's answer about an account (see relay.AccountResponse).
type Account struct {
	Handle     string `json:"handle"`
	AccountKey []byte `json:"account_key"`
	Version    uint64 `json:"version"`
	DeviceList []byte `json:"device_list"`
}

// HTTPError is a refused HTTP request.
type HTTPError struct {
	Status  int
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("relay: HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

func do(ctx context.Context, method, url string, body io.Reader, out any) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		he := &HTTPError{Status: resp.StatusCode}
		_ = json.Unmarshal(b, he)
		return nil, he
	}
	if out != nil {
		return b, json.Unmarshal(b, out)
	}
	return b, nil
}

func jsonBody(v any) io.Reader {
	b, _ := json.Marshal(v)
	return bytes.NewReader(b)
}

// Register creates an account with its first signed device list.
func Register(ctx context.Context, origin, handle string, list []byte) (*Account, error) {
	var a Account
	_, err := do(ctx, "POST", origin+"/v1/accounts", jsonBody(map[string]any{"handle": handle, "device_list": list}), &a)
	return &a, err
}

// Publish replaces an account's device list with a newer signed one.
func Publish(ctx context.Context, origin, handle string, list []byte) (*Account, error) {
	var a Account
	_, err := do(ctx, "PUT", origin+"/v1/accounts/"+handle+"/devices", jsonBody(map[string]any{"device_list": list}), &a)
	return &a, err
}

// GetAccount fetches an account's key and signed list.
func GetAccount(ctx context.Context, origin, handle string) (*Account, error) {
	var a Account
	_, err := do(ctx, "GET", origin+"/v1/accounts/"+handle, nil, &a)
	return &a, err
}

// PutLink writes one link-channel message into slot.
func PutLink(ctx context.Context, origin string, id []byte, slot int, data []byte) error {
	_, err := do(ctx, "PUT", fmt.Sprintf("%s/v1/link/%s/%d", origin, hex.EncodeToString(id), slot), bytes.NewReader(data), nil)
	return err
}

// GetLink waits up to wait for the message in slot and consumes it.
func GetLink(ctx context.Context, origin string, id []byte, slot int, wait time.Duration) ([]byte, error) {
	return do(ctx, "GET", fmt.Sprintf("%s/v1/link/%s/%d?wait=%d", origin, hex.EncodeToString(id), slot, int(wait/time.Second)), nil, nil)
}

// PutBlob uploads the encrypted bytes of a reserved blob.
func PutBlob(ctx context.Context, origin string, id [16]byte, data []byte) error {
	_, err := do(ctx, "PUT", origin+"/v1/blobs/"+hex.EncodeToString(id[:]), bytes.NewReader(data), nil)
	return err
}

// GetBlob downloads a blob.
func GetBlob(ctx context.Context, origin string, id [16]byte) ([]byte, error) {
	return do(ctx, "GET", origin+"/v1/blobs/"+hex.EncodeToString(id[:]), nil, nil)
}
