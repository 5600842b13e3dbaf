package groupstate

import (
	"fmt"

	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/senderkey"
	"github.com/parley-im/parley/crypto/wire"
	"github.com/parley-im/parley/relay"
)

// The records below are stored by the engine, not sent: their encodings are
// its storage layout, versioned like its other records.
const (
	// recordVersion is the engine's record format version (client's
	// recordVersion).
	recordVersion = 1
	// maxSenderSize bounds a stored senderkey.Sender.
	maxSenderSize = 1024
	// MaxChainDevices bounds the devices one chain is made for: one
	// GroupSend's recipients.
	MaxChainDevices = relay.MaxRecipients
	// MaxOutPayload bounds the payload a group outbox record keeps: the
	// engine's largest payload (client's maxPayloadBody, MaxTextLen +
	// 1024) and room for its header.
	MaxOutPayload = 64<<10 + 1024 + 256
)

// DeviceRef names one recipient device of a chain.
type DeviceRef struct {
	Handle string
	Device identity.DeviceID
}

// SenderRecord is this device's chain in one group and the exact set of
// devices it was made for (sorted by handle, then device).
type SenderRecord struct {
	Sender  *senderkey.Sender
	Devices []DeviceRef
}

// Marshal encodes s.
func (s *SenderRecord) Marshal() ([]byte, error) {
	sb, err := s.Sender.MarshalBinary()
	if err != nil {
		return nil, err
	}
	w := wire.NewWriter(16 + len(sb) + 52*len(s.Devices))
	w.U8(recordVersion)
	w.Var(sb)
	w.U32(uint32(len(s.Devices)))
	for _, d := range s.Devices {
		w.String(d.Handle)
		w.Fixed(d.Device[:])
	}
	return w.Bytes(), nil
}

// UnmarshalSenderRecord decodes what SenderRecord.Marshal made.
func UnmarshalSenderRecord(b []byte) (*SenderRecord, error) {
	r := wire.NewReader(b)
	r.Version(recordVersion)
	s := &SenderRecord{}
	sb := r.Var(maxSenderSize)
	n := r.Count(MaxChainDevices)
	for i := 0; i < n && r.Err() == nil; i++ {
		var d DeviceRef
		d.Handle = r.String(MaxHandleLen)
		r.FixedInto(d.Device[:])
		s.Devices = append(s.Devices, d)
	}
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("group sender record: %w", err)
	}
	snd, err := senderkey.UnmarshalSender(sb)
	if err != nil {
		return nil, fmt.Errorf("group sender record: %w", err)
	}
	s.Sender = snd
	return s, nil
}

// OutRecord is a group message not yet accepted by the relay. The
// plaintext is kept so a re-key before it leaves can encrypt it again on
// the new chain; the ciphertext made is kept (with its chain) so a retry on
// the same chain resends exactly those bytes.
type OutRecord struct {
	GroupID ID
	Payload []byte // the engine's payload, encoded
	Chain   [senderkey.ChainIDSize]byte
	Sealed  []byte // envelope type || senderkey message; empty until encrypted
}

// Marshal encodes o.
func (o *OutRecord) Marshal() []byte {
	w := wire.NewWriter(64 + len(o.Payload) + len(o.Sealed))
	w.U8(recordVersion)
	w.Fixed(o.GroupID[:])
	w.Var(o.Payload)
	w.Fixed(o.Chain[:])
	w.Var(o.Sealed)
	return w.Bytes()
}

// UnmarshalOut decodes what OutRecord.Marshal made.
func UnmarshalOut(b []byte) (*OutRecord, error) {
	r := wire.NewReader(b)
	r.Version(recordVersion)
	o := &OutRecord{}
	r.FixedInto(o.GroupID[:])
	o.Payload = r.Var(MaxOutPayload)
	r.FixedInto(o.Chain[:])
	o.Sealed = r.Var(1 + MaxOutPayload + senderkey.Overhead)
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("group outbox record: %w", err)
	}
	return o, nil
}

// Pending is a group message kept until its chain is known.
type Pending struct {
	MessageID [16]byte
	Msg       []byte // the senderkey message
}

// Marshal encodes p.
func (p *Pending) Marshal() []byte {
	w := wire.NewWriter(32 + len(p.Msg))
	w.U8(recordVersion)
	w.Fixed(p.MessageID[:])
	w.Var(p.Msg)
	return w.Bytes()
}

// UnmarshalPending decodes what Pending.Marshal made.
func UnmarshalPending(b []byte) (*Pending, error) {
	r := wire.NewReader(b)
	r.Version(recordVersion)
	p := &Pending{}
	r.FixedInto(p.MessageID[:])
	p.Msg = r.Var(senderkey.MaxMessageSize)
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("pending group message: %w", err)
	}
	return p, nil
}
