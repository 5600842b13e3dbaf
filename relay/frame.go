// Frames: the types, their bodies and the strict decoder (docs/PROTOCOL.md
// §10.2-§10.4). See relay.go for the flow they carry.

package relay

import (
	"errors"
	"fmt"

	"github.com/parley-im/parley/crypto/wire"
)

// Subprotocol is the WebSocket subprotocol of this version of the framing.
const Subprotocol = "parley.relay.v1"

// AuthLabel domain-separates the challenge answer from every other
// signature a device key makes.
const AuthLabel = "parley/relay-auth/v1"

// Limits. Each is enforced by Decode (or by the relay where noted) before
// anything reaches the store.
const (
	// MaxFrame is the largest WebSocket message either side accepts. A
	// send to every device of a few accounts fits; attachments and history
	// go through blobs, not frames.
	MaxFrame = 1 << 20
	// MaxPreAuthFrame is the largest WebSocket message either side
	// accepts before the relay has sent Ready: the Auth frame with the
	// longest handle (type byte, handle with its u32 length, device id,
	// timestamp, signature). Until a device has proved who it is, a socket
	// may hold no more than this (docs/PROTOCOL.md §10.1), not MaxFrame.
	MaxPreAuthFrame = 1 + 4 + MaxHandle + 16 + 8 + 64
	// MaxPayload bounds one per-device ciphertext: a text message with its
	// ratchet header and padding, or a sender-key message, with room for
	// a thumbnail. Larger content is a blob referenced by the message.
	MaxPayload = 256 << 10
	// MaxHandle is the longest account handle (the handle rules allow
	// 3–32 characters).
	MaxHandle = 32
	// MinHandle is the shortest account handle.
	MinHandle = 3
	// MaxRecipients bounds the devices one send or group send fans out to:
	// a 100-member group of five devices each, with room to spare.
	MaxRecipients = 1024
	// MaxAcks bounds the sequence numbers in one ack frame; it equals the
	// relay's delivery window, so one frame can ack everything in flight.
	MaxAcks = 512
	// MaxPrekeyBatch bounds the one-time prekeys of either kind in one
	// upload.
	MaxPrekeyBatch = 200
	// MaxPrekey bounds one encoded prekey: an ML-KEM-768 public key is
	// 1184 bytes, plus id and signature.
	MaxPrekey = 2048
	// MaxMessage bounds a human-readable error message.
	MaxMessage = 512
	// MaxStale bounds the accounts listed in a stale-devices refusal.
	MaxStale = MaxRecipients
	// MaxStaleDevices bounds the device ids listed per account in it.
	MaxStaleDevices = 256
)

// Type is the first byte of a frame. Client frames are below 0x80, relay
// frames at or above it.
type Type uint8

const (
	TAuth      Type = 0x01 // client: answer to the challenge
	TSend      Type = 0x02 // client: one message as per-device ciphertexts
	TGroupSend Type = 0x03 // client: one ciphertext fanned out to listed devices
	TAck       Type = 0x04 // client: envelopes received and stored, delete them
	TPrekeys   Type = 0x05 // client: upload prekeys
	TFetch     Type = 0x06 // client: fetch one device's prekey bundle
	TBlob      Type = 0x07 // client: reserve a blob id for an HTTP upload

	TChallenge Type = 0x81 // relay: random challenge, first frame on every socket
	TReady     Type = 0x82 // relay: auth accepted; queue size and prekey stock
	TEnvelope  Type = 0x83 // relay: one queued envelope
	TOK        Type = 0x84 // relay: request done (for sends: durably stored)
	TError     Type = 0x85 // relay: request refused, or connection closing
	TStale     Type = 0x86 // relay: send refused, the exact device difference
	TBundle    Type = 0x87 // relay: a prekey bundle
	TBlobID    Type = 0x88 // relay: a reserved blob id
	TLowStock  Type = 0x89 // relay: the device should upload more one-time prekeys
)

// DeviceID names a device within an account (crypto/identity.DeviceID has
// the same layout).
type DeviceID = [16]byte

// Addr is one device of one account.
type Addr struct {
	Handle string
	Device DeviceID
}

// Frame is any decoded frame.
type Frame interface {
	Type() Type
	encode(w *wire.Writer)
}

// Auth answers the challenge. Sig is the device key's Ed25519 signature
// over AuthMessage.
type Auth struct {
	Handle    string
	Device    DeviceID
	Timestamp uint64 // unix milliseconds
	Sig       [64]byte
}

// Send is one message encrypted once per device. The set must cover every
// current device of every account it names and every other device of the
// sender's account.
type Send struct {
	Req       uint32
	MessageID [16]byte
	TTL       uint32 // seconds; 0 means the relay's default
	To        []Sealed
}

// Sealed is one per-device ciphertext of a Send.
type Sealed struct {
	To      Addr
	Payload []byte
}

// GroupSend is one sender-key ciphertext that the relay copies to each
// listed device, under the same coverage rule as Send.
type GroupSend struct {
	Req       uint32
	MessageID [16]byte
	TTL       uint32
	Payload   []byte
	To        []Addr
}

// Ack lists the sequence numbers of delivered envelopes the device has
// stored; the relay deletes them.
type Ack struct {
	Seqs []uint64
}

// Prekeys uploads prekeys; empty SignedPrekey or LastResortKEM keep the
// stored ones. Keys are opaque to the relay (crypto/identity encodings).
type Prekeys struct {
	Req           uint32
	SignedPrekey  []byte
	LastResortKEM []byte
	OneTime       [][]byte
	KEM           [][]byte
}

// Fetch asks for one device's prekey bundle, consuming one one-time prekey
// of each kind.
type Fetch struct {
	Req uint32
	Of  Addr
}

// BlobReserve asks for a fresh blob id to upload to over HTTP.
type BlobReserve struct {
	Req uint32
}

// Challenge is the relay's first frame.
type Challenge struct {
	Nonce      [32]byte
	ServerTime uint64 // unix milliseconds, so a client can see its clock skew
}

// Ready confirms authentication.
type Ready struct {
	Queued uint32 // envelopes waiting; they follow as Envelope frames
	Stock  Stock
}

// Stock is a device's one-time prekey stock.
type Stock struct {
	OneTime uint32
	KEM     uint32
}

// Envelope delivers one queued ciphertext. From is set by the relay from
// the sender's authenticated connection.
type Envelope struct {
	Seq        uint64
	From       Addr
	MessageID  [16]byte
	ServerTime uint64
	Payload    []byte
}

// OK completes request Req.
type OK struct {
	Req        uint32
	ServerTime uint64
}

// Error refuses request Req, or (Req 0) explains why the relay is closing
// the connection.
type Error struct {
	Req     uint32
	Code    Code
	Message string
}

// Stale refuses a send whose device set does not match the current lists.
type Stale struct {
	Req      uint32
	Accounts []StaleAccount
}

// StaleAccount is the difference for one account: devices the send lacked
// and devices it named that are not (or no longer) in the list.
type StaleAccount struct {
	Handle  string
	Missing []DeviceID
	Extra   []DeviceID
}

// Bundle answers a Fetch.
type Bundle struct {
	Req          uint32
	SignedPrekey []byte
	OneTime      []byte // empty when the device's stock ran out
	KEM          []byte
	LastResort   bool // KEM is the device's last-resort key
}

// BlobID answers a BlobReserve.
type BlobID struct {
	Req     uint32
	ID      [16]byte
	Expires uint64 // unix milliseconds: upload before, download until
}

// LowStock tells a device to replenish its one-time prekeys.
type LowStock struct {
	Stock Stock
}

func (*Auth) Type() Type        { return TAuth }
func (*Send) Type() Type        { return TSend }
func (*GroupSend) Type() Type   { return TGroupSend }
func (*Ack) Type() Type         { return TAck }
func (*Prekeys) Type() Type     { return TPrekeys }
func (*Fetch) Type() Type       { return TFetch }
func (*BlobReserve) Type() Type { return TBlob }
func (*Challenge) Type() Type   { return TChallenge }
func (*Ready) Type() Type       { return TReady }
func (*Envelope) Type() Type    { return TEnvelope }
func (*OK) Type() Type          { return TOK }
func (*Error) Type() Type       { return TError }
func (*Stale) Type() Type       { return TStale }
func (*Bundle) Type() Type      { return TBundle }
func (*BlobID) Type() Type      { return TBlobID }
func (*LowStock) Type() Type    { return TLowStock }

func (f *Auth) encode(w *wire.Writer) {
	w.String(f.Handle)
	w.Fixed(f.Device[:])
	w.U64(f.Timestamp)
	w.Fixed(f.Sig[:])
}

func (f *Send) encode(w *wire.Writer) {
	w.U32(f.Req)
	w.Fixed(f.MessageID[:])
	w.U32(f.TTL)
	w.U32(uint32(len(f.To)))
	for _, s := range f.To {
		putAddr(w, s.To)
		w.Var(s.Payload)
	}
}

func (f *GroupSend) encode(w *wire.Writer) {
	w.U32(f.Req)
	w.Fixed(f.MessageID[:])
	w.U32(f.TTL)
	w.Var(f.Payload)
	w.U32(uint32(len(f.To)))
	for _, a := range f.To {
		putAddr(w, a)
	}
}

func (f *Ack) encode(w *wire.Writer) {
	w.U32(uint32(len(f.Seqs)))
	for _, s := range f.Seqs {
		w.U64(s)
	}
}

func (f *Prekeys) encode(w *wire.Writer) {
	w.U32(f.Req)
	w.Var(f.SignedPrekey)
	w.Var(f.LastResortKEM)
	for _, list := range [][][]byte{f.OneTime, f.KEM} {
		w.U32(uint32(len(list)))
		for _, k := range list {
			w.Var(k)
		}
	}
}

func (f *Fetch) encode(w *wire.Writer) {
	w.U32(f.Req)
	putAddr(w, f.Of)
}

func (f *BlobReserve) encode(w *wire.Writer) { w.U32(f.Req) }

func (f *Challenge) encode(w *wire.Writer) {
	w.Fixed(f.Nonce[:])
	w.U64(f.ServerTime)
}

func (f *Ready) encode(w *wire.Writer) {
	w.U32(f.Queued)
	w.U32(f.Stock.OneTime)
	w.U32(f.Stock.KEM)
}

func (f *Envelope) encode(w *wire.Writer) {
	w.U64(f.Seq)
	putAddr(w, f.From)
	w.Fixed(f.MessageID[:])
	w.U64(f.ServerTime)
	w.Var(f.Payload)
}

func (f *OK) encode(w *wire.Writer) {
	w.U32(f.Req)
	w.U64(f.ServerTime)
}

func (f *Error) encode(w *wire.Writer) {
	w.U32(f.Req)
	w.U16(uint16(f.Code))
	w.String(f.Message)
}

func (f *Stale) encode(w *wire.Writer) {
	w.U32(f.Req)
	w.U32(uint32(len(f.Accounts)))
	for _, a := range f.Accounts {
		w.String(a.Handle)
		for _, ids := range [][]DeviceID{a.Missing, a.Extra} {
			w.U32(uint32(len(ids)))
			for _, id := range ids {
				w.Fixed(id[:])
			}
		}
	}
}

func (f *Bundle) encode(w *wire.Writer) {
	w.U32(f.Req)
	w.Var(f.SignedPrekey)
	w.Var(f.OneTime)
	w.Var(f.KEM)
	w.Bool(f.LastResort)
}

func (f *BlobID) encode(w *wire.Writer) {
	w.U32(f.Req)
	w.Fixed(f.ID[:])
	w.U64(f.Expires)
}

func (f *LowStock) encode(w *wire.Writer) {
	w.U32(f.Stock.OneTime)
	w.U32(f.Stock.KEM)
}

func putAddr(w *wire.Writer, a Addr) {
	w.String(a.Handle)
	w.Fixed(a.Device[:])
}

func getAddr(r *wire.Reader) Addr {
	var a Addr
	a.Handle = r.String(MaxHandle)
	r.FixedInto(a.Device[:])
	return a
}

// Encode returns f as one WebSocket message.
func Encode(f Frame) []byte {
	w := wire.NewWriter(64)
	w.U8(uint8(f.Type()))
	f.encode(w)
	return w.Bytes()
}

// ErrUnknownType reports a frame type this version does not define.
var ErrUnknownType = errors.New("frame: unknown frame type")

// Decode parses one WebSocket message. It never allocates more than the
// limits allow and rejects trailing bytes.
func Decode(b []byte) (Frame, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("frame: empty message: %w", wire.ErrShort)
	}
	if len(b) > MaxFrame {
		return nil, fmt.Errorf("frame: %d bytes: %w", len(b), wire.ErrTooLarge)
	}
	t := Type(b[0])
	r := wire.NewReader(b[1:])
	var f Frame
	switch t {
	case TAuth:
		x := &Auth{}
		x.Handle = r.String(MaxHandle)
		r.FixedInto(x.Device[:])
		x.Timestamp = r.U64()
		r.FixedInto(x.Sig[:])
		f = x
	case TSend:
		x := &Send{}
		x.Req = r.U32()
		r.FixedInto(x.MessageID[:])
		x.TTL = r.U32()
		n := r.Count(MaxRecipients)
		// Each entry takes at least 4+16+4 bytes: refuse a count the
		// input cannot hold before allocating for it.
		if n*24 > r.Remaining() {
			r.Fail(wire.ErrShort)
			n = 0
		}
		x.To = make([]Sealed, 0, n)
		for i := 0; i < n && r.Err() == nil; i++ {
			a := getAddr(r)
			x.To = append(x.To, Sealed{To: a, Payload: r.Var(MaxPayload)})
		}
		f = x
	case TGroupSend:
		x := &GroupSend{}
		x.Req = r.U32()
		r.FixedInto(x.MessageID[:])
		x.TTL = r.U32()
		x.Payload = r.Var(MaxPayload)
		n := r.Count(MaxRecipients)
		if n*20 > r.Remaining() {
			r.Fail(wire.ErrShort)
			n = 0
		}
		x.To = make([]Addr, 0, n)
		for i := 0; i < n && r.Err() == nil; i++ {
			x.To = append(x.To, getAddr(r))
		}
		f = x
	case TAck:
		x := &Ack{}
		n := r.Count(MaxAcks)
		if n*8 > r.Remaining() {
			r.Fail(wire.ErrShort)
			n = 0
		}
		x.Seqs = make([]uint64, n)
		for i := range x.Seqs {
			x.Seqs[i] = r.U64()
		}
		f = x
	case TPrekeys:
		x := &Prekeys{}
		x.Req = r.U32()
		x.SignedPrekey = r.Var(MaxPrekey)
		x.LastResortKEM = r.Var(MaxPrekey)
		for _, dst := range []*[][]byte{&x.OneTime, &x.KEM} {
			n := r.Count(MaxPrekeyBatch)
			if n*4 > r.Remaining() {
				r.Fail(wire.ErrShort)
				n = 0
			}
			for i := 0; i < n && r.Err() == nil; i++ {
				k := r.Var(MaxPrekey)
				if r.Err() == nil && len(k) == 0 {
					r.Fail(fmt.Errorf("%w: empty prekey", wire.ErrInvalid))
				}
				*dst = append(*dst, k)
			}
		}
		f = x
	case TFetch:
		f = &Fetch{Req: r.U32(), Of: getAddr(r)}
	case TBlob:
		f = &BlobReserve{Req: r.U32()}
	case TChallenge:
		x := &Challenge{}
		r.FixedInto(x.Nonce[:])
		x.ServerTime = r.U64()
		f = x
	case TReady:
		f = &Ready{Queued: r.U32(), Stock: Stock{OneTime: r.U32(), KEM: r.U32()}}
	case TEnvelope:
		x := &Envelope{}
		x.Seq = r.U64()
		x.From = getAddr(r)
		r.FixedInto(x.MessageID[:])
		x.ServerTime = r.U64()
		x.Payload = r.Var(MaxPayload)
		f = x
	case TOK:
		f = &OK{Req: r.U32(), ServerTime: r.U64()}
	case TError:
		x := &Error{}
		x.Req = r.U32()
		x.Code = Code(r.U16())
		x.Message = r.String(MaxMessage)
		f = x
	case TStale:
		x := &Stale{}
		x.Req = r.U32()
		n := r.Count(MaxStale)
		if n*12 > r.Remaining() {
			r.Fail(wire.ErrShort)
			n = 0
		}
		for i := 0; i < n && r.Err() == nil; i++ {
			a := StaleAccount{Handle: r.String(MaxHandle)}
			for _, dst := range []*[]DeviceID{&a.Missing, &a.Extra} {
				m := r.Count(MaxStaleDevices)
				if m*16 > r.Remaining() {
					r.Fail(wire.ErrShort)
					m = 0
				}
				for j := 0; j < m && r.Err() == nil; j++ {
					var id DeviceID
					r.FixedInto(id[:])
					*dst = append(*dst, id)
				}
			}
			x.Accounts = append(x.Accounts, a)
		}
		f = x
	case TBundle:
		x := &Bundle{}
		x.Req = r.U32()
		x.SignedPrekey = r.Var(MaxPrekey)
		x.OneTime = r.Var(MaxPrekey)
		x.KEM = r.Var(MaxPrekey)
		x.LastResort = r.Bool()
		f = x
	case TBlobID:
		x := &BlobID{Req: r.U32()}
		r.FixedInto(x.ID[:])
		x.Expires = r.U64()
		f = x
	case TLowStock:
		f = &LowStock{Stock: Stock{OneTime: r.U32(), KEM: r.U32()}}
	default:
		return nil, fmt.Errorf("%w 0x%02x", ErrUnknownType, uint8(t))
	}
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("frame: type 0x%02x: %w", uint8(t), err)
	}
	return f, nil
}

// AuthMessage is what a device signs to answer a challenge: the label, the
// challenge, the relay's origin (so an answer for one relay is useless at
// another), the device's clock, and who it claims to be.
func AuthMessage(challenge [32]byte, origin string, timestamp uint64, handle string, device DeviceID) []byte {
	w := wire.NewWriter(128)
	w.U8(1)
	w.String(AuthLabel)
	w.Fixed(challenge[:])
	w.String(origin)
	w.U64(timestamp)
	w.String(handle)
	w.Fixed(device[:])
	return w.Bytes()
}

// ValidHandle reports whether s follows the handle rules: 3–32 characters
// from lowercase ASCII letters, digits, '.', '_' and '-'.
func ValidHandle(s string) bool {
	if len(s) < MinHandle || len(s) > MaxHandle {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
