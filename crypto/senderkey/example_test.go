package senderkey_test

import (
	"fmt"

	"github.com/parley-im/parley/crypto/senderkey"
)

func Example() {
	group := []byte("book-club")

	// Alice's device makes its chain and sends the distribution to each
	// member device over their pairwise sessions (not shown).
	alice, _ := senderkey.NewSender(nil, group)
	dist, _ := alice.Distribution().MarshalBinary()

	// Bob's device files it under Alice's device.
	d, _ := senderkey.UnmarshalDistribution(dist)
	fromAlice, _ := senderkey.NewReceiver(d)

	// One encryption, fanned out by the relay to every member device.
	msg, _ := alice.Encrypt([]byte("meeting moved to Thursday"))
	pt, _ := fromAlice.Decrypt(msg)
	fmt.Printf("%s\n", pt)

	// Carol leaves: Alice re-keys and distributes to the remaining members
	// only; a device with the old chain cannot read the new messages.
	alice, _ = senderkey.NewSender(nil, group)
	_, err := fromAlice.Decrypt(must(alice.Encrypt([]byte("after Carol left"))))
	fmt.Println(err)
	// Output:
	// meeting moved to Thursday
	// senderkey: message is for another sender chain
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
