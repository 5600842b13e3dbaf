package devicelist_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/parley-im/parley/crypto/devicelist"
	"github.com/parley-im/parley/crypto/identity"
)

// A primary signs a list with itself and a linked companion; the relay (or
// a peer) verifies it against the pinned account key and refuses a replay
// of an older version.
func Example() {
	account, _ := identity.NewAccount(nil)
	phone, _ := identity.NewDevice(nil)
	laptop, _ := identity.NewDevice(nil) // the companion; its half arrives during linking
	now := uint64(time.Now().Unix())

	l := &devicelist.List{Account: account.Public(), Handle: "alice", Version: 1, Timestamp: now, Entries: []devicelist.Entry{
		{Device: phone.Public(), Name: "phone", Added: now, Attested: now, Primary: true,
			DeviceSig: devicelist.DeviceSignature(phone, account.Public())},
		{Device: laptop.Public(), Name: "laptop", Added: now, Attested: now,
			DeviceSig: devicelist.DeviceSignature(laptop, account.Public())},
	}}
	v1, err := devicelist.Sign(account, l)
	if err != nil {
		panic(err)
	}

	// Relay side: verify the upload, and only accept a higher version.
	current, err := devicelist.Verify(account.Public(), "alice", v1)
	if err != nil {
		panic(err)
	}
	_, v2, _ := devicelist.Reattest(account, current, "alice", time.Now().Add(time.Hour))
	next, _ := devicelist.Verify(account.Public(), "alice", v2)
	fmt.Println(devicelist.CheckUpdate(current, next))
	fmt.Println(errors.Is(devicelist.CheckUpdate(next, current), devicelist.ErrRollback))
	fmt.Println(next.Find(laptop.ID).Name)
	// Output:
	// <nil>
	// true
	// laptop
}
