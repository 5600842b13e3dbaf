//go:build !js

package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/client/internal/groupstate"
	"github.com/parley-im/parley/client/storage"
	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/senderkey"
	"github.com/parley-im/parley/relay"
)

// groupScenario is the set-up most group tests share: one relay, accounts
// on it, each on a phone (its primary) and maybe a linked browser, and a
// group made by one of their devices.
type groupScenario struct {
	t   testing.TB
	tr  *testRelay
	ctx context.Context
	// devices holds each account's devices: the phone, then the browser.
	devices map[string][]*device
	// idle holds the devices made not running, which create does not wait for.
	idle map[*device]bool
	gid  string // the group create made
}

func newGroupScenario(t testing.TB) *groupScenario {
	return &groupScenario{t: t, tr: startRelay(t, nil), ctx: ctxT(t), devices: map[string][]*device{}, idle: map[*device]bool{}}
}

// account makes handle's account on a phone ("<handle>-phone") and links a
// browser ("<handle>-browser") to it, both running.
func (s *groupScenario) account(handle string) (phone, browser *device) {
	s.t.Helper()
	phone = s.newPhone(handle+"-phone", handle, handle+"'s phone")
	phone.run()
	browser = newDevice(s.t, s.tr, handle+"-browser")
	linkCompanion(s.t, phone, browser, handle+"'s browser")
	browser.run()
	s.devices[handle] = append(s.devices[handle], browser)
	return phone, browser
}

// phone makes handle's account on one running device named handle.
func (s *groupScenario) phone(handle string) *device {
	s.t.Helper()
	d := s.newPhone(handle, handle, "phone")
	d.run()
	return d
}

// idlePhone is phone without running the device: a test plays its receive
// path itself.
func (s *groupScenario) idlePhone(handle string) *device {
	s.t.Helper()
	d := s.newPhone(handle, handle, "phone")
	s.idle[d] = true
	return d
}

func (s *groupScenario) newPhone(name, handle, deviceName string) *device {
	s.t.Helper()
	d := newDevice(s.t, s.tr, name)
	if err := d.eng.CreateAccount(s.ctx, handle, deviceName); err != nil {
		s.t.Fatal(err)
	}
	s.devices[handle] = append(s.devices[handle], d)
	return d
}

// create makes a group named name of by's account and members on by, and
// waits until every running device of every member holds its version 1.
// It returns the group's id.
func (s *groupScenario) create(by *device, name string, members ...string) string {
	s.t.Helper()
	gid, err := by.eng.CreateGroup(s.ctx, name, members)
	if err != nil {
		s.t.Fatal(err)
	}
	for h, devs := range s.devices {
		if !slices.Contains(members, h) && !slices.Contains(devs, by) {
			continue
		}
		for _, d := range devs {
			if !s.idle[d] {
				waitGroup(s.t, d, gid, "version 1", func(g Group) bool { return g.Version == 1 })
			}
		}
	}
	s.gid = gid
	return gid
}

// send sends text to the group from a device and waits until each device
// of to has stored it.
func (s *groupScenario) send(from *device, text string, to ...*device) {
	s.t.Helper()
	if _, err := from.eng.SendGroupText(s.ctx, s.gid, text); err != nil {
		s.t.Fatal(err)
	}
	for _, d := range to {
		d.waitMessage(s.gid, text)
	}
}

// captureRelay records the group ciphertexts a device submits, so a test
// can hand one to a device the relay would never deliver it to.
type captureRelay struct {
	Relay
	mu   sync.Mutex
	sent map[MessageID][]byte
}

func (r *captureRelay) Connect(ctx context.Context, handle string, dev *identity.Device) (Conn, error) {
	c, err := r.Relay.Connect(ctx, handle, dev)
	if err != nil {
		return nil, err
	}
	return &captureConn{Conn: c, r: r}, nil
}

type captureConn struct {
	Conn
	r *captureRelay
}

func (c *captureConn) GroupSend(ctx context.Context, id [16]byte, payload []byte, to []relay.Addr) error {
	c.r.mu.Lock()
	c.r.sent[id] = bytes.Clone(payload)
	c.r.mu.Unlock()
	return c.Conn.GroupSend(ctx, id, payload, to)
}

func (r *captureRelay) get(id string) []byte {
	raw, _ := hex.DecodeString(id)
	var mid MessageID
	copy(mid[:], raw)
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sent[mid]
}

// capture makes d's engine go through a captureRelay.
func capture(d *device) *captureRelay {
	d.stop()
	c := &captureRelay{Relay: d.relay, sent: map[MessageID][]byte{}}
	d.relay = c
	d.start()
	return c
}

// waitGroup waits until d knows group id in a state satisfying ok.
func waitGroup(t testing.TB, d *device, id string, what string, ok func(Group) bool) Group {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		gs, err := d.eng.Groups(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range gs {
			if g.ID == id && ok(g) {
				return g
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: group %s never reached %s (have %+v)", d.name, id, what, gs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func hasMessage(t *testing.T, d *device, chat, text string) bool {
	t.Helper()
	msgs, err := d.eng.Messages(context.Background(), chat, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.Text == text {
			return true
		}
	}
	return false
}

// storedReceivers returns the group chains a device holds.
func storedReceivers(t *testing.T, d *device, gid string) []*senderkey.Receiver {
	t.Helper()
	id, err := parseGroupRef(gid)
	if err != nil {
		t.Fatal(err)
	}
	var out []*senderkey.Receiver
	err = d.store.Scan(context.Background(), bGroupRecv, hex.EncodeToString(id[:])+"/", storage.ScanOptions{}, func(_ string, v []byte) error {
		r, err := senderkey.UnmarshalReceiver(v)
		if err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// queueForged sends a control payload of kind (a group state, a leave
// request) from d's device over its pairwise sessions, whatever d's
// rights, as a modified client could.
func queueForged(t *testing.T, d *device, kind uint8, to string, raw []byte) {
	t.Helper()
	ctx := ctxT(t)
	d.eng.mu.Lock()
	var b storage.Batch
	err := d.eng.queuePairwiseLocked(ctx, &b, kind, to, raw)
	if err == nil {
		err = d.eng.cfg.Store.Commit(ctx, &b)
	}
	d.eng.kickLocked()
	d.eng.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
}

func loadState(t *testing.T, d *device, gid string) *groupstate.State {
	t.Helper()
	id, _ := parseGroupRef(gid)
	d.eng.mu.Lock()
	defer d.eng.mu.Unlock()
	g, err := d.eng.loadGroupLocked(context.Background(), id)
	if err != nil || g == nil {
		t.Fatalf("%s: group state: %v", d.name, err)
	}
	return g
}

func countEvents(d *device, typ string, code Code) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, ev := range d.events {
		if ev.Type == typ && ev.Code == code {
			n++
		}
	}
	return n
}

// loadStateV1 is the first version of the group, as a1 signed it: rebuilt
// from the current admins (a1's devices) and the creation members.
func loadStateV1(t *testing.T, a1 *device, gid string) []byte {
	t.Helper()
	cur := loadState(t, a1, gid)
	old := cur.Next()
	old.Version, old.Floor, old.Members, old.Admins = 1, 0, []string{"alice", "bob", "carol"}, cur.Admins
	old.Sign(a1.eng.dev)
	return old.Raw()
}

// senderChain returns the id of d's own sender chain in group gid.
func senderChain(t *testing.T, d *device, gid string) [senderkey.ChainIDSize]byte {
	t.Helper()
	id, _ := parseGroupRef(gid)
	d.eng.mu.Lock()
	defer d.eng.mu.Unlock()
	sr, err := d.eng.loadSenderLocked(context.Background(), id)
	if err != nil || sr == nil {
		t.Fatalf("%s: no sender chain in the group (%v)", d.name, err)
	}
	return sr.Sender.ChainID()
}
