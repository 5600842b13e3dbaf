package link

import (
	"bytes"
	"testing"
	"time"

	"github.com/parley-im/parley/crypto/devicelist"
	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/internal/vectortest"
	"github.com/parley-im/parley/crypto/wire"
)

// The vectors in testdata are written by `go test ./crypto/link -run
// TestVectors -update` and replayed by TestVectors. The JSON layout is
// described in docs/PROTOCOL.md section 9.
type vector = vectortest.Op

var vectorErrors = vectortest.Errors{
	"malformed":        ErrMalformed,
	"expired":          ErrExpired,
	"wrong_link":       ErrWrongLink,
	"bad_confirmation": ErrBadConfirmation,
	"decrypt":          ErrDecrypt,
	"replay":           ErrReplay,
	"too_large":        ErrTooLarge,
	"not_in_list":      ErrNotInList,
	"wrong_account":    devicelist.ErrWrongAccount,
	"bad_signature":    devicelist.ErrBadSignature,

	"device_signed_other_account": devicelist.ErrDeviceSignature,
	"other_handle":                devicelist.ErrOtherHandle,
}

var (
	hx          = vectortest.Hex
	hexList     = vectortest.HexList
	mustMarshal = vectortest.MustMarshal
	in          = vectortest.Bytes
	inList      = vectortest.BytesList
	num         = vectortest.Int
)

func generateVectors(t *testing.T) map[string]vector {
	v := map[string]vector{}
	r := newDetRand("parley link vectors")
	c, err := NewCompanion(r, origin, t0)
	if err != nil {
		t.Fatal(err)
	}
	cstate, _ := c.MarshalBinary()
	text := c.Payload().String()
	pb, _ := c.Payload().MarshalBinary()
	now := t0.Add(90 * time.Second)
	acct := accountKey("parley link vectors account")

	v["good_payload"] = vector{Comment: "the companion's link code", Type: "link/payload",
		Input:  map[string]any{"text": text},
		Output: map[string]any{"payload": hx(pb), "link_id": hx(c.payload.LinkID[:]), "relay_origin": origin, "expires": c.payload.Expires}}
	v["fail_payload_unknown_version"] = vector{Comment: "a link code of a future format", Type: "link/payload",
		Input: map[string]any{"text": "parley-link:2:" + text[len(Prefix):]}, Error: "version"}
	pv := append([]byte(nil), pb...)
	pv[0] = 2
	v["fail_payload_unknown_binary_version"] = vector{Comment: "current prefix, binary format version 2", Type: "link/payload",
		Input: map[string]any{"text": Prefix + b64(pv)}, Error: "version"}
	v["fail_payload_trailing_data"] = vector{Comment: "payload with an extra byte", Type: "link/payload",
		Input: map[string]any{"text": Prefix + b64(append(append([]byte(nil), pb...), 0))}, Error: "trailing"}
	v["fail_payload_line_break"] = vector{Comment: "a line break inside the base64 text, which Go's decoder would skip", Type: "link/payload",
		Input: map[string]any{"text": text[:60] + "\n" + text[60:]}, Error: "malformed"}
	bo := *c.Payload()
	bo.RelayOrigin = "https://relay.parley.example/path"
	w := wire.NewWriter(200)
	w.U8(1)
	w.Fixed(bo.LinkID[:])
	w.Fixed(bo.LinkPub[:])
	w.Fixed(bo.Secret[:])
	w.U64(bo.Expires)
	w.String(bo.RelayOrigin)
	v["fail_payload_bad_origin"] = vector{Comment: "relay origin with a path", Type: "link/payload",
		Input: map[string]any{"text": Prefix + b64(w.Bytes())}, Error: "malformed"}

	eph := make([]byte, 32)
	r.Read(eph)
	p2c := [][]byte{[]byte("link bundle: account key, signed list, device id, state-sync key, history pointer")}
	c2p := [][]byte{[]byte("join request: device public keys, device-signs-account signature, name")}
	ps, hello, err := StartPrimary(bytes.NewReader(eph), c.Payload(), acct, now)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := c.Accept(hello, now)
	if err != nil {
		t.Fatal(err)
	}
	var c2pMsgs, p2cMsgs [][]byte
	for _, m := range c2p {
		s, _ := cs.Seal(m)
		c2pMsgs = append(c2pMsgs, s)
	}
	for _, m := range p2c {
		s, _ := ps.Seal(m)
		p2cMsgs = append(p2cMsgs, s)
	}
	v["good_handshake"] = vector{Comment: "full link: hello, check code, join request (companion to primary), link bundle (primary to companion)", Type: "link/handshake",
		Input: map[string]any{"companion_state": hx(cstate), "account_public": hx(acct), "primary_ephemeral": hx(eph),
			"now": now.Unix(), "c2p_plaintexts": hexList(c2p), "p2c_plaintexts": hexList(p2c)},
		Output: map[string]any{"payload_text": text, "hello": hx(hello), "check_code": ps.CheckCode(),
			"c2p_messages": hexList(c2pMsgs), "p2c_messages": hexList(p2cMsgs)}}

	dps, dhello, _ := StartPrimary(bytes.NewReader(eph), c.Payload(), acct, now)
	dcs, _ := c.Accept(dhello, now)
	decline, _ := dcs.Seal(Decline)
	if pt, err := dps.Open(decline); err != nil || !IsDecline(pt) {
		t.Fatalf("decline does not open as one: %v", err)
	}
	v["good_decline"] = vector{Comment: "the companion's user rejected the check code: its first sealed message is empty instead of a join request (7.5)", Type: "link/handshake",
		Input: map[string]any{"companion_state": hx(cstate), "account_public": hx(acct), "primary_ephemeral": hx(eph),
			"now": now.Unix(), "c2p_plaintexts": hexList([][]byte{Decline}), "p2c_plaintexts": hexList(nil)},
		Output: map[string]any{"payload_text": text, "hello": hx(dhello), "check_code": dps.CheckCode(),
			"c2p_messages": hexList([][]byte{decline}), "p2c_messages": hexList(nil)}}

	comp := func(comment string, hello []byte, msgs [][]byte, at time.Time, errName string) vector {
		return vector{Comment: comment, Type: "link/companion",
			Input: map[string]any{"companion_state": hx(cstate), "hello": hx(hello), "now": at.Unix(), "p2c_messages": hexList(msgs)},
			Error: errName}
	}
	good := comp("the companion side of good_handshake", hello, p2cMsgs, now, "")
	good.Output = map[string]any{"check_code": cs.CheckCode(), "account_public": hx(acct), "p2c_plaintexts": hexList(p2c)}
	v["good_companion"] = good

	wrong := c.Payload()
	wrong.Secret[0] ^= 1
	_, h2, _ := StartPrimary(bytes.NewReader(eph), wrong, acct, now)
	v["fail_wrong_link_secret"] = comp("hello made by a primary holding a different one-time secret", h2, nil, now, "bad_confirmation")
	wrong = c.Payload()
	other, _ := NewCompanion(newDetRand("parley link vectors, other"), origin, t0)
	wrong.LinkPub = other.payload.LinkPub
	_, h2, _ = StartPrimary(bytes.NewReader(eph), wrong, acct, now)
	v["fail_wrong_link_key"] = comp("hello made for a different link public key", h2, nil, now, "bad_confirmation")
	h2 = append([]byte(nil), hello...)
	copy(h2[49:81], accountKey("mallory"))
	v["fail_tampered_hello"] = comp("the relay replaced the account key in the hello", h2, nil, now, "bad_confirmation")
	h2 = append([]byte(nil), hello...)
	h2[1] ^= 1
	v["fail_wrong_link"] = comp("hello addressed to another link id", h2, nil, now, "wrong_link")
	v["fail_hello_trailing_data"] = comp("hello with an extra byte", append(append([]byte(nil), hello...), 0), nil, now, "trailing")
	v["fail_expired"] = comp("hello arrives 1 second after the payload expired", hello, nil, time.Unix(int64(c.payload.Expires)+1, 0), "expired")
	tb := append([]byte(nil), p2cMsgs[0]...)
	tb[len(tb)/2] ^= 0x20
	v["fail_tampered_bundle"] = comp("one bit of the sealed link bundle flipped", hello, [][]byte{tb}, now, "decrypt")
	v["fail_replayed_message"] = comp("the sealed link bundle delivered twice", hello, [][]byte{p2cMsgs[0], p2cMsgs[0]}, now, "replay")
	v["fail_reflected_message"] = comp("the companion's own join request sent back to it", hello, c2pMsgs, now, "decrypt")
	messageVectors(t, v)
	return v
}

// messageVectors adds the join request and link bundle vectors (7.5).
func messageVectors(t *testing.T, v map[string]vector) {
	r := newDetRand("parley link vectors, messages")
	acct, _ := identity.NewAccount(r)
	other, _ := identity.NewAccount(r)
	primary, _ := identity.NewDevice(r)
	comp, _ := identity.NewDevice(r)
	jr := NewJoinRequest(comp, acct.Public(), "laptop browser")
	jb, _ := jr.MarshalBinary()
	v["good_join_request"] = vector{Comment: "the companion's join request for the account named in the hello", Type: "link/join_request",
		Input:  map[string]any{"account_public": hx(acct.Public()), "join_request": hx(jb)},
		Output: map[string]any{"device_public": hx(mustMarshal(t, comp.Public())), "name": jr.Name}}
	ob, _ := NewJoinRequest(comp, other.Public(), "laptop browser").MarshalBinary()
	v["fail_join_request_other_account"] = vector{Comment: "a join request whose device signature names another account", Type: "link/join_request",
		Input: map[string]any{"account_public": hx(acct.Public()), "join_request": hx(ob)}, Error: "device_signed_other_account"}

	ts := uint64(t0.Unix())
	entry := func(d *identity.Device, name string, primary bool) devicelist.Entry {
		return devicelist.Entry{Device: d.Public(), Name: name, Added: ts, Attested: ts, Primary: primary,
			DeviceSig: devicelist.DeviceSignature(d, acct.Public())}
	}
	l := &devicelist.List{Account: acct.Public(), Handle: "alice", Version: 7, Timestamp: ts,
		Entries: []devicelist.Entry{entry(primary, "phone", true), entry(comp, jr.Name, false)}}
	listEnc, err := devicelist.Sign(acct, l)
	if err != nil {
		t.Fatal(err)
	}
	b := &Bundle{Account: acct.Public(), Handle: "alice", DeviceID: comp.ID, DeviceList: listEnc, History: []byte("history blob id and key")}
	r.Read(b.SyncKey[:])
	bundle := func(comment string, b *Bundle, errName string) vector {
		enc, err := b.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return vector{Comment: comment, Type: "link/bundle", Error: errName,
			Input: map[string]any{"account_public": hx(acct.Public()), "device_public": hx(mustMarshal(t, comp.Public())), "bundle": hx(enc)}}
	}
	good := bundle("a link bundle whose device list (version 7) holds the companion", b, "")
	good.Output = map[string]any{"device_list_version": 7, "sync_key": hx(b.SyncKey[:]), "history": hx(b.History)}
	v["good_bundle"] = good

	l2 := &devicelist.List{Account: acct.Public(), Handle: "alice", Version: 7, Timestamp: ts, Entries: []devicelist.Entry{entry(primary, "phone", true)}}
	enc2, _ := devicelist.Sign(acct, l2)
	nb := *b
	nb.DeviceList = enc2
	v["fail_bundle_not_in_list"] = bundle("the bundle's device list does not contain the companion", &nb, "not_in_list")
	nb = *b
	nb.Account = other.Public()
	v["fail_bundle_wrong_account"] = bundle("the bundle names another account than the hello did", &nb, "wrong_account")
	nb = *b
	nb.DeviceList = append([]byte(nil), listEnc...)
	nb.DeviceList[len(listEnc)-1] ^= 1
	v["fail_bundle_bad_list_signature"] = bundle("the device list in the bundle has a bad signature", &nb, "bad_signature")
	l3 := l.Clone()
	l3.Handle = "mallory"
	nb = *b
	nb.DeviceList, err = devicelist.Sign(acct, l3)
	if err != nil {
		t.Fatal(err)
	}
	v["fail_bundle_list_other_handle"] = bundle("the bundle's device list names another handle than the bundle", &nb, "other_handle")
}

func replay(t *testing.T, v vector) error {
	switch v.Type {
	case "link/payload":
		p, err := ParsePayload(v.Input["text"].(string))
		if err != nil {
			return err
		}
		pb, _ := p.MarshalBinary()
		if hx(pb) != v.Output["payload"] || hx(p.LinkID[:]) != v.Output["link_id"] || p.RelayOrigin != v.Output["relay_origin"] ||
			int64(p.Expires) != num(t, v.Output, "expires") {
			t.Error("payload outputs differ")
		}
	case "link/handshake":
		c, err := UnmarshalCompanion(in(t, v.Input, "companion_state"))
		if err != nil {
			return err
		}
		now := time.Unix(num(t, v.Input, "now"), 0)
		text := c.Payload().String()
		if text != v.Output["payload_text"] {
			t.Error("payload text differs")
		}
		p, err := ParsePayload(text)
		if err != nil {
			return err
		}
		ps, hello, err := StartPrimary(bytes.NewReader(in(t, v.Input, "primary_ephemeral")), p, in(t, v.Input, "account_public"), now)
		if err != nil {
			return err
		}
		if hx(hello) != v.Output["hello"] {
			t.Error("hello differs")
		}
		cs, err := c.Accept(hello, now)
		if err != nil {
			return err
		}
		if ps.CheckCode() != v.Output["check_code"] || cs.CheckCode() != ps.CheckCode() {
			t.Error("check code differs")
		}
		run := func(from, to *Session, pts, want [][]byte) error {
			for i, pt := range pts {
				m, err := from.Seal(pt)
				if err != nil {
					return err
				}
				if !bytes.Equal(m, want[i]) {
					t.Errorf("sealed message %d differs", i)
				}
				got, err := to.Open(m)
				if err != nil {
					return err
				}
				if !bytes.Equal(got, pt) {
					t.Errorf("plaintext %d differs", i)
				}
			}
			return nil
		}
		if err := run(cs, ps, inList(t, v.Input, "c2p_plaintexts"), inList(t, v.Output, "c2p_messages")); err != nil {
			return err
		}
		return run(ps, cs, inList(t, v.Input, "p2c_plaintexts"), inList(t, v.Output, "p2c_messages"))
	case "link/companion":
		c, err := UnmarshalCompanion(in(t, v.Input, "companion_state"))
		if err != nil {
			return err
		}
		cs, err := c.Accept(in(t, v.Input, "hello"), time.Unix(num(t, v.Input, "now"), 0))
		if err != nil {
			return err
		}
		var pts [][]byte
		for _, m := range inList(t, v.Input, "p2c_messages") {
			pt, err := cs.Open(m)
			if err != nil {
				return err
			}
			pts = append(pts, pt)
		}
		if v.Output != nil {
			if cs.CheckCode() != v.Output["check_code"] || hx(cs.Account()) != v.Output["account_public"] {
				t.Error("companion outputs differ")
			}
			want := inList(t, v.Output, "p2c_plaintexts")
			if len(want) != len(pts) {
				t.Fatal("plaintext count differs")
			}
			for i := range pts {
				if !bytes.Equal(pts[i], want[i]) {
					t.Errorf("plaintext %d differs", i)
				}
			}
		}
	case "link/join_request":
		j, err := UnmarshalJoinRequest(in(t, v.Input, "join_request"))
		if err != nil {
			return err
		}
		if err := j.Verify(in(t, v.Input, "account_public")); err != nil {
			return err
		}
		if hx(mustMarshal(t, j.Device)) != v.Output["device_public"] || j.Name != v.Output["name"] {
			t.Error("join request outputs differ")
		}
	case "link/bundle":
		b, err := UnmarshalBundle(in(t, v.Input, "bundle"))
		if err != nil {
			return err
		}
		self, err := identity.UnmarshalDevicePublic(in(t, v.Input, "device_public"))
		if err != nil {
			t.Fatal(err)
		}
		l, err := b.Check(in(t, v.Input, "account_public"), self)
		if err != nil {
			return err
		}
		if int64(l.Version) != num(t, v.Output, "device_list_version") || hx(b.SyncKey[:]) != v.Output["sync_key"] ||
			hx(b.History) != v.Output["history"] {
			t.Error("bundle outputs differ")
		}
	default:
		t.Fatalf("unknown vector type %q", v.Type)
	}
	return nil
}

func TestVectors(t *testing.T) { vectortest.RunOps(t, generateVectors, replay, vectorErrors) }
