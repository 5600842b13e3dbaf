package link_test

import (
	"fmt"
	"time"

	"github.com/parley-im/parley/crypto/devicelist"
	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/link"
)

// The whole link handshake, with the relay's part played by passing byte
// slices along.
func Example() {
	now := time.Now()
	ts := uint64(now.Unix())
	account, _ := identity.NewAccount(nil)
	phone, _ := identity.NewDevice(nil)
	tab, _ := identity.NewDevice(nil) // the companion's own device keys

	// Companion: show the QR code / copyable text.
	companion, _ := link.NewCompanion(nil, "https://relay.example", now)
	code := companion.Payload().String()

	// Primary: scan or paste it, send the hello.
	payload, err := link.ParsePayload(code)
	if err != nil {
		panic(err)
	}
	primary, hello, err := link.StartPrimary(nil, payload, account.Public(), now)
	if err != nil {
		panic(err)
	}

	// Companion: accept the hello; both screens show the same check code.
	session, err := companion.Accept(hello, now)
	if err != nil {
		panic(err)
	}
	fmt.Println(session.CheckCode() == primary.CheckCode())

	// After the user confirmed on both screens, the companion asks to join.
	jr, _ := link.NewJoinRequest(tab, session.Account(), "work laptop").MarshalBinary()
	sealedJoin, _ := session.Seal(jr)

	// Primary: check the request, sign a list with the new device, send the bundle.
	plain, _ := primary.Open(sealedJoin)
	req, _ := link.UnmarshalJoinRequest(plain)
	if err := req.Verify(account.Public()); err != nil {
		panic(err)
	}
	list := &devicelist.List{Account: account.Public(), Handle: "alice", Version: 2, Timestamp: ts, Entries: []devicelist.Entry{
		{Device: phone.Public(), Name: "phone", Added: ts, Attested: ts, Primary: true,
			DeviceSig: devicelist.DeviceSignature(phone, account.Public())},
		{Device: req.Device, Name: req.Name, Added: ts, Attested: ts, DeviceSig: req.DeviceSig},
	}}
	signed, _ := devicelist.Sign(account, list)
	bundle, _ := (&link.Bundle{Account: account.Public(), Handle: "alice", DeviceID: req.Device.ID, DeviceList: signed}).MarshalBinary()
	sealedBundle, _ := primary.Seal(bundle)

	// Companion: open and check the bundle before using anything in it.
	plain, err = session.Open(sealedBundle)
	if err != nil {
		panic(err)
	}
	b, _ := link.UnmarshalBundle(plain)
	verified, err := b.Check(session.Account(), tab.Public())
	if err != nil {
		panic(err)
	}
	fmt.Println(verified.Find(tab.ID).Name)
	// Output:
	// true
	// work laptop
}
