package relayserver_test

import (
	"testing"

	"github.com/parley-im/parley/crypto/devicelist"
	"github.com/parley-im/parley/relay"
	"github.com/parley-im/parley/relay/relayclient"
	"github.com/parley-im/parley/server/store"
)

// TestRevokedDeviceCannotKeepIdentityUnderAlias is issue 14 item 6:
// re-registering the victim's public version-1 list under a new handle
// returned 201 with the victim's account key, and the device the victim
// had removed in version 2 logged in under that alias (it could send,
// drain prekeys and use blob quota). The list names the victim's handle,
// so it is refused under any other; and an account key is registered
// under one handle only, even with a list its account signed for a second.
func TestRevokedDeviceCannotKeepIdentityUnderAlias(t *testing.T) {
	tr := startRelay(t, nil)
	victim := tr.register(t, "victim", 2)
	v1 := victim.Signed(t)
	tr.drop(t, victim, 1)
	_, err := relayclient.Register(ctx(t), tr.origin, "alias", v1)
	if httpCode(err) != relay.CodeBadDeviceList.String() {
		t.Fatalf("the victim's version-1 list under another handle: %v, want %s", err, relay.CodeBadDeviceList)
	}
	if _, err := relayclient.Dial(ctx(t), tr.origin, "alias", victim.Devs[1]); relayCode(err) != relay.CodeAuthFailed {
		t.Fatalf("the removed device under the alias: %v, want %s", err, relay.CodeAuthFailed)
	}
	second := victim.List.Clone()
	second.Handle = "second"
	enc, err := devicelist.Sign(victim.Acct, second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := relayclient.Register(ctx(t), tr.origin, "second", enc); httpCode(err) != "key_taken" {
		t.Fatalf("the account's own list for a second handle: %v, want key_taken", err)
	}
}

// TestListNamingAnotherHandleRefusedAtRegistration: a fresh account's
// list, signed for "named", offered under "other". The account key is new,
// so only the handle in the list can refuse it.
func TestListNamingAnotherHandleRefusedAtRegistration(t *testing.T) {
	tr := startRelay(t, nil)
	u := newUser(t, "named", 1)
	if _, err := relayclient.Register(ctx(t), tr.origin, "other", u.Signed(t)); httpCode(err) != relay.CodeBadDeviceList.String() {
		t.Fatalf("a list naming another handle: %v, want %s", err, relay.CodeBadDeviceList)
	}
	if _, err := relayclient.GetAccount(ctx(t), tr.origin, "other"); httpCode(err) != "unknown_account" {
		t.Fatalf("the handle after the refusal: %v, want unknown_account", err)
	}
}

// TestLegacyListStandsUntilTheNextUpdate is the relay's side of the
// migration (PROTOCOL.md 3.6): a list of format 1 stored before the
// upgrade is still served and still lets its devices log in; a new one is
// refused at registration and as an update; the first update in format 2
// replaces it, and from then on the account's lists name its handle.
func TestLegacyListStandsUntilTheNextUpdate(t *testing.T) {
	tr := startRelay(t, nil)
	old := newUser(t, "old", 2)
	old.List.Handle = ""
	legacy, err := devicelist.SignLegacy(old.Acct, old.List)
	if err != nil {
		t.Fatal(err)
	}
	// Registered before the upgrade: straight into the store.
	if err := tr.st.CreateAccount(store.Account{Handle: old.Handle, AccountKey: old.Acct.Public(), Version: 1, DeviceList: legacy}); err != nil {
		t.Fatal(err)
	}
	if a, err := relayclient.GetAccount(ctx(t), tr.origin, old.Handle); err != nil || string(a.DeviceList) != string(legacy) {
		t.Fatalf("the stored format-1 list: %v", err)
	}
	tr.dial(t, old, 1)

	fresh := newUser(t, "fresh", 1)
	fresh.List.Handle = ""
	enc, err := devicelist.SignLegacy(fresh.Acct, fresh.List)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := relayclient.Register(ctx(t), tr.origin, fresh.Handle, enc); httpCode(err) != relay.CodeBadDeviceList.String() {
		t.Fatalf("registration with a format-1 list: %v, want %s", err, relay.CodeBadDeviceList)
	}

	next := old.List.Clone()
	next.Version = 2
	enc, err = devicelist.SignLegacy(old.Acct, next)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := relayclient.Publish(ctx(t), tr.origin, old.Handle, enc); httpCode(err) != relay.CodeBadDeviceList.String() {
		t.Fatalf("a format-1 update: %v, want %s", err, relay.CodeBadDeviceList)
	}
	next.Handle = "someone-else"
	if enc, err = devicelist.Sign(old.Acct, next); err != nil {
		t.Fatal(err)
	}
	if _, err := relayclient.Publish(ctx(t), tr.origin, old.Handle, enc); httpCode(err) != relay.CodeBadDeviceList.String() {
		t.Fatalf("an update naming another handle: %v, want %s", err, relay.CodeBadDeviceList)
	}
	next.Handle = old.Handle
	old.List = next
	if _, err := relayclient.Publish(ctx(t), tr.origin, old.Handle, old.Signed(t)); err != nil {
		t.Fatalf("the update to format 2: %v", err)
	}
	tr.dial(t, old, 1)
}
