package client

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"

	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/link"
	"github.com/parley-im/parley/crypto/pqxdh"
	"github.com/parley-im/parley/crypto/ratchet"
	"github.com/parley-im/parley/crypto/wire"
)

// Storage layout (PROTOCOL.md §15). Buckets:
const (
	bSelf     = "self"     // device, account
	bPrekeys  = "prekeys"  // private prekeys: spk/<id>, otk/<id>, kem/<id>
	bLists    = "lists"    // <handle> → pinned account key + verified signed list
	bSessions = "sessions" // <handle>/<device hex> → sessionRecord
	bMessages = "msgs"     // <chat>\x1f<sort key> → messageRecord
	bMsgIndex = "msgidx"   // <message id hex> → <chat>\x1f<sort key>
	bChats    = "chats"    // <chat> → chatRecord
	bOutbox   = "outbox"   // <seq, 16 hex> → outboxRecord
	bLink     = "link"     // companion: state of a link in progress
	bAttach   = "attach"   // <message id hex> → attachmentRecord (blob reference, thumbnail)
	// A file waiting for a connection (uploads.go).
	bUploads    = "uploads" // <message id hex> → uploadRecord
	bUploadData = "upchunk" // <message id hex>/<chunk, 4 hex> → up to uploadChunk bytes of the file

	keyDevice  = "device"
	keyAccount = "account"
	keyPrekeys = "prekey-state"
	keyOutSeq  = "outbox-seq"

	// sep separates a chat from the sort key; it sorts below every
	// printable character, so a chat's messages are one contiguous range.
	sep = "\x1f"
)

const (
	recordVersion = 1
	// maxSessionsPerDevice bounds the sessions kept per peer device: the
	// active one plus older ones that may still receive in-flight
	// messages (simultaneous initiation, a peer that re-initiated).
	maxSessionsPerDevice = 3
	maxStateLen          = 1 << 20
	maxListLen           = 16 << 10
	maxNameLen           = 64
	maxOutboxTargets     = 64
)

// accountRecord is this device's membership of an account.
type accountRecord struct {
	Handle     string
	AccountPub ed25519.PublicKey
	Primary    bool
	AccountKey []byte // identity.Account.MarshalBinary; primary only
	SyncKey    [link.SyncKeySize]byte
	DeviceName string
	Revoked    bool
}

func (a *accountRecord) marshal() []byte {
	w := wire.NewWriter(256)
	w.U8(recordVersion)
	w.String(a.Handle)
	w.Fixed(a.AccountPub)
	w.Bool(a.Primary)
	w.Var(a.AccountKey)
	w.Fixed(a.SyncKey[:])
	w.String(a.DeviceName)
	w.Bool(a.Revoked)
	return w.Bytes()
}

func unmarshalAccount(b []byte) (*accountRecord, error) {
	r := wire.NewReader(b)
	r.Version(recordVersion)
	a := &accountRecord{}
	a.Handle = r.String(maxHandleLen)
	a.AccountPub = ed25519.PublicKey(r.Fixed(ed25519.PublicKeySize))
	a.Primary = r.Bool()
	a.AccountKey = r.Var(1024)
	r.FixedInto(a.SyncKey[:])
	a.DeviceName = r.String(maxNameLen)
	a.Revoked = r.Bool()
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("account record: %w", err)
	}
	return a, nil
}

// pinnedList is the highest verified device list seen for an account,
// under the account key first seen for that handle (trust on first use,
// surfaced by safety numbers).
type pinnedList struct {
	AccountPub ed25519.PublicKey
	Encoded    []byte // the signed list as served and verified
	// KeyChanged is set when the relay served a different account key for
	// the handle; sending is blocked until the user acknowledges it.
	KeyChanged bool
	NewKey     ed25519.PublicKey // the key that replaced AccountPub, if KeyChanged
	// Want, if set, is a newer list of the account that one of its
	// devices announced and that no verified list has settled yet
	// (lists.go): nothing is encrypted to the account meanwhile. It is
	// written last and only when set, so a record from before it
	// existed decodes as one without it.
	Want *listWant
}

// listWant is a newer device list one of the account's devices announced
// in a payload's stamp (PROTOCOL.md §14.2).
type listWant struct {
	listStamp
	From identity.DeviceID // the announcing device
}

func (p *pinnedList) marshal() []byte {
	w := wire.NewWriter(64 + len(p.Encoded) + 8 + 32 + 16)
	w.U8(recordVersion)
	w.Fixed(p.AccountPub)
	w.Var(p.Encoded)
	w.Bool(p.KeyChanged)
	if p.KeyChanged {
		w.Fixed(p.NewKey)
	}
	if p.Want != nil {
		w.U64(p.Want.Version)
		w.Fixed(p.Want.Hash[:])
		w.Fixed(p.Want.From[:])
	}
	return w.Bytes()
}

func unmarshalPinned(b []byte) (*pinnedList, error) {
	r := wire.NewReader(b)
	r.Version(recordVersion)
	p := &pinnedList{}
	p.AccountPub = ed25519.PublicKey(r.Fixed(ed25519.PublicKeySize))
	p.Encoded = r.Var(maxListLen)
	p.KeyChanged = r.Bool()
	if p.KeyChanged {
		p.NewKey = ed25519.PublicKey(r.Fixed(ed25519.PublicKeySize))
	}
	if r.Err() == nil && r.Remaining() > 0 {
		p.Want = &listWant{}
		p.Want.Version = r.U64()
		r.FixedInto(p.Want.Hash[:])
		r.FixedInto(p.Want.From[:])
		if r.Err() == nil && p.Want.Version == 0 {
			r.Fail(fmt.Errorf("%w: a wanted list of version 0", wire.ErrInvalid))
		}
	}
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("pinned list: %w", err)
	}
	return p, nil
}

// session is one pairwise ratchet with a peer device.
type session struct {
	State *ratchet.State
	// Initial is set on the initiator until the peer's first reply
	// decrypts: every message is sent as an initial message so the peer
	// can set the session up from whichever arrives first.
	Initial *pqxdh.InitialMessage
	// PeerEphemeral is set on the responder: a repeated initial message
	// with this ephemeral belongs to this session.
	PeerEphemeral [32]byte
	HasPeerEph    bool
}

// sessionRecord holds the sessions with one peer device, active first.
type sessionRecord struct {
	Sessions []*session
}

func (s *sessionRecord) marshal() ([]byte, error) {
	w := wire.NewWriter(4096)
	w.U8(recordVersion)
	w.U8(uint8(len(s.Sessions)))
	for _, ss := range s.Sessions {
		st, err := ss.State.MarshalBinary()
		if err != nil {
			return nil, err
		}
		w.Var(st)
		w.Bool(ss.Initial != nil)
		if ss.Initial != nil {
			tmpl := *ss.Initial
			tmpl.Message = []byte{0} // the template's message is replaced per send
			im, err := tmpl.MarshalBinary()
			if err != nil {
				return nil, err
			}
			w.Var(im)
		}
		w.Bool(ss.HasPeerEph)
		if ss.HasPeerEph {
			w.Fixed(ss.PeerEphemeral[:])
		}
	}
	return w.Bytes(), nil
}

func unmarshalSessions(b []byte) (*sessionRecord, error) {
	r := wire.NewReader(b)
	r.Version(recordVersion)
	n := int(r.U8())
	if n > maxSessionsPerDevice {
		r.Fail(fmt.Errorf("%w: %d sessions", wire.ErrTooLarge, n))
	}
	rec := &sessionRecord{}
	for i := 0; i < n && r.Err() == nil; i++ {
		ss := &session{}
		st, err := ratchet.Unmarshal(r.Var(maxStateLen))
		if r.Err() == nil && err != nil {
			r.Fail(err)
		}
		ss.State = st
		if r.Bool() {
			im, err := pqxdh.UnmarshalInitialMessage(r.Var(pqxdh.MaxInitialMessageSize))
			if r.Err() == nil && err != nil {
				r.Fail(err)
			}
			ss.Initial = im
		}
		if ss.HasPeerEph = r.Bool(); ss.HasPeerEph {
			r.FixedInto(ss.PeerEphemeral[:])
		}
		rec.Sessions = append(rec.Sessions, ss)
	}
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("session record: %w", err)
	}
	return rec, nil
}

func sessionKey(handle string, dev identity.DeviceID) string {
	return handle + "/" + dev.String()
}

// Message is a stored message as the UI sees it.
type Message struct {
	ID         string `json:"id"`
	Chat       string `json:"chatId"`
	From       string `json:"from"`
	FromDevice string `json:"fromDevice"`
	Text       string `json:"text"`
	SentAt     int64  `json:"sentAt"` // unix ms, sender's clock
	Outgoing   bool   `json:"outgoing"`
	Status     string `json:"status"`
	// Attachment is set for a message carrying a file (attachment.go).
	Attachment *Attachment `json:"attachment,omitempty"`
	sortKey    string
	// attach is a received group message's attachmentRecord, stored in
	// bAttach with the message (storeGroupMessagesLocked).
	attach []byte
}

func (m *Message) marshal() []byte {
	w := wire.NewWriter(128 + len(m.Text))
	w.U8(recordVersion)
	w.String(m.ID)
	w.String(m.Chat)
	w.String(m.From)
	w.String(m.FromDevice)
	w.String(m.Text)
	w.U64(uint64(m.SentAt))
	w.Bool(m.Outgoing)
	w.String(m.Status)
	w.Bool(m.Attachment != nil)
	if a := m.Attachment; a != nil {
		w.String(a.Name)
		w.String(a.Type)
		w.U64(uint64(a.Size))
		w.Bool(a.HasThumbnail)
	}
	return w.Bytes()
}

func unmarshalMessage(b []byte) (*Message, error) {
	r := wire.NewReader(b)
	r.Version(recordVersion)
	m := &Message{}
	m.ID = r.String(32)
	m.Chat = r.String(maxHandleLen + 40)
	m.From = r.String(maxHandleLen)
	m.FromDevice = r.String(32)
	m.Text = r.String(MaxTextLen)
	m.SentAt = int64(r.U64())
	m.Outgoing = r.Bool()
	m.Status = r.String(16)
	if r.Bool() {
		m.Attachment = &Attachment{Name: r.String(MaxFileNameLen), Type: r.String(MaxMIMETypeLen), Size: int64(r.U64()), HasThumbnail: r.Bool()}
	}
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("message record: %w", err)
	}
	return m, nil
}

// msgSortKey orders a chat's messages by sender time, then id, so every
// device shows the same order.
func msgSortKey(sentAt uint64, id MessageID) string {
	return fmt.Sprintf("%016x", sentAt) + hex.EncodeToString(id[:])
}

// Chat is one conversation's summary.
type Chat struct {
	ID       string `json:"id"`
	LastText string `json:"lastText"`
	LastAt   int64  `json:"lastAt"`
	Unread   int    `json:"unread"`
	// LastFile is set when the last message carries a file, so a list can
	// say so when it has no caption (LastText ""), and say nothing for a
	// chat with no message yet (a new group).
	LastFile bool `json:"lastFile,omitempty"`
	// Name is a group's name (from its state, not stored here); "" for a
	// chat with one contact, whose id is the handle.
	Name string `json:"name,omitempty"`
}

func (c *Chat) marshal() []byte {
	w := wire.NewWriter(64 + len(c.LastText))
	w.U8(recordVersion)
	w.String(c.ID)
	w.String(c.LastText)
	w.U64(uint64(c.LastAt))
	w.U32(uint32(c.Unread))
	if c.LastFile {
		w.U8(1) // optional: records before it end after Unread
	}
	return w.Bytes()
}

func unmarshalChat(b []byte) (*Chat, error) {
	r := wire.NewReader(b)
	r.Version(recordVersion)
	c := &Chat{}
	c.ID = r.String(maxHandleLen + 40)
	c.LastText = r.String(MaxTextLen)
	c.LastAt = int64(r.U64())
	c.Unread = int(r.U32())
	if r.Err() == nil && r.Remaining() > 0 {
		if r.U8() != 1 {
			return nil, fmt.Errorf("chat record: bad file flag")
		}
		c.LastFile = true
	}
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("chat record: %w", err)
	}
	return c, nil
}

// sealedOut is one prepared per-device ciphertext of an outgoing message.
type sealedOut struct {
	Handle  string
	Device  identity.DeviceID
	Payload []byte
}

// outboxRecord is an outgoing message not yet accepted by the relay. The
// plaintext payload is kept so devices that appear later (a stale-set
// refusal) can be encrypted to; the ciphertexts already made are kept so
// a retry resends exactly the same bytes and never re-uses ratchet keys.
type outboxRecord struct {
	Payload []byte // payload.marshal()
	To      string // recipient handle ("" for a message only to own devices)
	Sealed  []sealedOut
	// Only, if set, is the one device the payload is for: a message sent
	// again on a retry request (repair.go). The relay takes a send only
	// if it covers every device of the accounts it names (10.3), so the
	// others get an empty receipt instead.
	Only *deviceRef
}

// outboxVersionOnly is the encoding of an outbox record with Only: the
// version 1 fields, then str handle ‖ device id (16). One without Only is
// still written as version 1.
const outboxVersionOnly = 2

func (o *outboxRecord) marshal() []byte {
	n := len(o.Payload) + 64
	for _, s := range o.Sealed {
		n += 56 + len(s.Payload)
	}
	w := wire.NewWriter(n)
	if o.Only != nil {
		w.U8(outboxVersionOnly)
	} else {
		w.U8(recordVersion)
	}
	w.Var(o.Payload)
	w.String(o.To)
	w.U32(uint32(len(o.Sealed)))
	for _, s := range o.Sealed {
		w.String(s.Handle)
		w.Fixed(s.Device[:])
		w.Var(s.Payload)
	}
	if o.Only != nil {
		w.String(o.Only.Handle)
		w.Fixed(o.Only.Device[:])
	}
	return w.Bytes()
}

func unmarshalOutbox(b []byte) (*outboxRecord, error) {
	r := wire.NewReader(b)
	v := r.U8()
	if r.Err() == nil && v != recordVersion && v != outboxVersionOnly {
		r.Fail(fmt.Errorf("%w: got %d, want %d or %d", wire.ErrVersion, v, recordVersion, outboxVersionOnly))
	}
	o := &outboxRecord{}
	o.Payload = r.Var(maxPayloadBody + 256)
	o.To = r.String(maxHandleLen)
	n := r.Count(maxOutboxTargets)
	for i := 0; i < n && r.Err() == nil; i++ {
		var s sealedOut
		s.Handle = r.String(maxHandleLen)
		r.FixedInto(s.Device[:])
		s.Payload = r.Var(pqxdh.MaxInitialMessageSize + 16)
		o.Sealed = append(o.Sealed, s)
	}
	if v == outboxVersionOnly {
		o.Only = &deviceRef{Handle: r.String(maxHandleLen)}
		r.FixedInto(o.Only.Device[:])
	}
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("outbox record: %w", err)
	}
	return o, nil
}
