package relayserver_test

import (
	"testing"

	"github.com/parley-im/parley/relay"
	"github.com/parley-im/parley/relay/relayclient"
)

// TestRevokedDeviceCannotKeepIdentityUnderAlias is issue 14 item 6:
// re-registering the victim's public version-1 list under a new handle
// returned 201 with the victim's account key, and the device the victim
// had removed in version 2 logged in under that alias (it could send,
// drain prekeys and use blob quota). An account key is registered under
// one handle only.
func TestRevokedDeviceCannotKeepIdentityUnderAlias(t *testing.T) {
	tr := startRelay(t, nil)
	victim := tr.register(t, "victim", 2)
	v1 := victim.Signed(t)
	tr.drop(t, victim, 1)
	_, err := relayclient.Register(ctx(t), tr.origin, "alias", v1)
	if httpCode(err) != "key_taken" {
		t.Fatalf("the victim's version-1 list under another handle: %v, want key_taken", err)
	}
	if _, err := relayclient.Dial(ctx(t), tr.origin, "alias", victim.Devs[1]); relayCode(err) != relay.CodeAuthFailed {
		t.Fatalf("the removed device under the alias: %v, want %s", err, relay.CodeAuthFailed)
	}
}
