package link_test

import (
	"fmt"
	"time"

	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/link"
)

// The whole link handshake, with the relay's part played by passing byte
// slices along.
func Example() {
	now := time.Now()
	account, _ := identity.NewAccount(nil)

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

	// After the user confirmed: join request up, link bundle down.
	join, _ := session.Seal([]byte("device keys + device-signs-account"))
	req, _ := primary.Open(join)
	bundle, _ := primary.Seal([]byte("account key, signed list, sync key"))
	got, _ := session.Open(bundle)
	fmt.Printf("%s\n%s\n", req, got)
	// Output:
	// true
	// device keys + device-signs-account
	// account key, signed list, sync key
}
