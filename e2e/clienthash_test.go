package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"net/http"
	"testing"

	"github.com/parley-im/parley"
)

// TestSwappedClientShowsItsHash plays an operator who serves a client other
// than the published one (here the parleytest build in place of the
// release wasm that `make wasm` embedded). The page must report, in
// state().clientHash and in Settings, the SHA-256 of the bytes it actually
// instantiated, so a user comparing it with a release's published hash
// (`make wasm` prints it) sees the swap: it is the hash of what was
// served, and not the release's.
func TestSwappedClientShowsItsHash(t *testing.T) {
	srv := StartTestServer(t)
	res, err := http.Get(srv.URL + "/web/dist/parley.wasm")
	if err != nil {
		t.Fatal(err)
	}
	served, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(served)
	want := hex.EncodeToString(sum[:])
	if release, err := fs.ReadFile(parley.Assets, "web/dist/parley.wasm"); err == nil {
		if r := sha256.Sum256(release); r == sum {
			t.Fatal("the test server serves the release wasm, not a swapped one")
		}
	}

	b := NewBrowser(t)
	desktop(t, b)
	createAccountUI(t, b, srv.URL, "alice", "Alice's laptop")
	got := MustEval[string](b, `parley.state().then((st) => String(st.clientHash))`)
	if got != want {
		t.Fatalf("state().clientHash = %q, want the SHA-256 of the served wasm %s", got, want)
	}

	click(t, b, "#btn-settings")
	waitUI(t, b, "the client's hash in Settings", visible("#settings-client-hash")+
		` && document.getElementById('settings-client-hash').textContent === `+jsString(want))
	MustEval[bool](b, `(document.getElementById('settings-client-hash').scrollIntoView({block: 'center'}), true)`)
	screenshot(t, b, "settings-client-hash", 1280, 800)

	// A second tab (a view of the owner tab's engine) reports the hash of
	// the client it runs itself, not the owner's word for it.
	tab := b.OpenTab()
	tab.Navigate(srv.URL)
	waitUI(t, tab, "the second tab's chat list", visible("#view-main"))
	if got := MustEval[string](tab, `parley.state().then((st) => st.role + ' ' + st.clientHash)`); got != "view "+want {
		t.Fatalf("second tab: state() role and clientHash = %q, want \"view %s\"", got, want)
	}
}
