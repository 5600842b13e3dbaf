package groupstate

import (
	"bytes"
	"testing"

	"github.com/parley-im/parley/crypto/devicelist"
	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/senderkey"
)

// Fuzz targets: one per decoder. A decoder must never panic, and whatever
// it accepts must encode again to the same bytes.

func FuzzState(f *testing.F) {
	admin, _ := identity.NewDevice(nil)
	g := bound(&State{Version: 1, Name: "g", Members: []string{"alice", "bob"},
		Admins: []Admin{{Handle: "alice", Device: admin.ID, Key: admin.Public().SignPub}}}, "alice")
	g.Sign(admin)
	f.Add(g.raw)
	legacy := &State{Legacy: true, ID: ID{1}, Version: 1, Name: "g", Members: []string{"alice"}, Admins: g.Admins}
	legacy.Sign(admin)
	f.Add(legacy.raw)
	f.Add([]byte{stateVersion})
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := Parse(b)
		if err != nil {
			return
		}
		if !bytes.Equal(append(g.SignedPart(), g.Sig...), b) || !bytes.Equal(g.Raw(), b) {
			t.Fatal("group state does not re-encode to its input")
		}
		g.Verify(g.Admins)
		g.VerifyFirst(nil)
		g.VerifyFirst(&devicelist.List{Account: g.CreatorKey})
	})
}

func FuzzChainGroupID(f *testing.F) {
	f.Add(ChainGroupID(ID{1}, 7))
	f.Add(make([]byte, IDSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, version, ok := ParseChainGroupID(b)
		if ok && !bytes.Equal(ChainGroupID(id, version), b) {
			t.Fatal("a chain's group id does not re-encode to its input")
		}
	})
}

func FuzzSenderRecord(f *testing.F) {
	s, _ := senderkey.NewSender(nil, make([]byte, IDSize))
	enc, _ := (&SenderRecord{Sender: s, Devices: []DeviceRef{{"bob", identity.DeviceID{2}}}}).Marshal()
	f.Add(enc)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := UnmarshalSenderRecord(b)
		if err != nil {
			return
		}
		if _, err := r.Marshal(); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzOutRecord(f *testing.F) {
	f.Add((&OutRecord{GroupID: ID{1}, Payload: []byte("p"), Sealed: []byte{0x03, 1}}).Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := UnmarshalOut(b)
		if err != nil {
			return
		}
		if !bytes.Equal(r.Marshal(), b) {
			t.Fatal("group outbox record does not re-encode to its input")
		}
	})
}

func FuzzPending(f *testing.F) {
	f.Add((&Pending{MessageID: [16]byte{1}, Msg: []byte("m")}).Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := UnmarshalPending(b)
		if err != nil {
			return
		}
		if !bytes.Equal(p.Marshal(), b) {
			t.Fatal("pending group message does not re-encode to its input")
		}
	})
}

func FuzzLeave(f *testing.F) {
	f.Add(LeaveBody(ID{3}, 7))
	f.Add([]byte("short"))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, version, err := ParseLeave(b)
		if err != nil {
			return
		}
		if !bytes.Equal(LeaveBody(id, version), b) {
			t.Fatal("leave request does not re-encode to its input")
		}
	})
}
