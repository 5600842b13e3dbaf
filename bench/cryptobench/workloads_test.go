package cryptobench

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/parley-im/parley/crypto/devicelist"
	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/crypto/pqxdh"
	"github.com/parley-im/parley/crypto/ratchet"
	"github.com/parley-im/parley/crypto/senderkey"
)

// msgSize is the plaintext of every message workload, as in
// bench/libsignal/bench.mjs.
const msgSize = 1024

// A workload builds its fixtures (untimed) and returns op, one unit of work
// that also checks its own result. Names match the libsignal script's, so
// benchtable can pair the rows.
type workload struct {
	name string
	make func(tb testing.TB) (op func() error)
}

var workloads = []workload{
	{"Setup", newSetup},
	{"Stream1KiB", newStream},
	{"PingPong1KiB", newPingPong},
	{"Group1KiB", newGroup},
	{"DeviceListVerify5", newDeviceListVerify5},
	{"StateMarshal", newStateMarshal},
	{"StateUnmarshal", newStateUnmarshal},
}

func plaintext(tb testing.TB) []byte {
	pt := make([]byte, msgSize)
	if _, err := rand.Read(pt); err != nil {
		tb.Fatal(err)
	}
	return pt
}

func must[T any](tb testing.TB) func(T, error) T {
	return func(v T, err error) T {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
		return v
	}
}

// offClock runs f with the benchmark timer stopped (for key generation a
// device does ahead of time, not per session).
func offClock(tb testing.TB, f func()) {
	if b, ok := tb.(*testing.B); ok {
		b.StopTimer()
		defer b.StartTimer()
	}
	f()
}

var errMismatch = errors.New("cryptobench: decrypted plaintext differs")

func same(pt, got []byte) error {
	if !bytes.Equal(pt, got) {
		return errMismatch
	}
	return nil
}

// responder is a device that has published prekeys: a signed prekey, a
// last-resort ML-KEM-768 prekey and a pool of one-time prekeys. It is the
// pqxdh.Prekeys the device's storage would provide.
type responder struct {
	dev     *identity.Device
	spk     *identity.SignedPrekey
	kem     *identity.KEMPrekey
	oneTime map[uint32]*identity.OneTimePrekey
	nextID  uint32
}

func newResponder(tb testing.TB) *responder {
	r := &responder{dev: must[*identity.Device](tb)(identity.NewDevice(nil)),
		oneTime: map[uint32]*identity.OneTimePrekey{}, nextID: 1}
	now := time.Now()
	r.spk = must[*identity.SignedPrekey](tb)(r.dev.NewSignedPrekey(nil, 1, now))
	r.kem = must[*identity.KEMPrekey](tb)(r.dev.NewKEMPrekey(nil, 1, now, true))
	return r
}

// bundle returns a bundle with a fresh one-time prekey, as the relay hands
// out one per session.
func (r *responder) bundle(tb testing.TB) *identity.Bundle {
	if len(r.oneTime) == 0 {
		// Devices upload one-time prekeys in batches, ahead of time.
		offClock(tb, func() {
			for _, k := range must[[]*identity.OneTimePrekey](tb)(identity.NewOneTimePrekeys(nil, r.nextID, 100)) {
				r.oneTime[k.Public.ID] = k
			}
			r.nextID += 100
		})
	}
	var otp *identity.OneTimePrekey
	for _, otp = range r.oneTime {
		break
	}
	return &identity.Bundle{Device: r.dev.Public(), SignedPrekey: r.spk.Public,
		KEMPrekey: r.kem.Public, OneTime: &otp.Public}
}

func (r *responder) SignedPrekey(id uint32) *identity.SignedPrekey {
	if id != r.spk.Public.ID {
		return nil
	}
	return r.spk
}

func (r *responder) KEMPrekey(id uint32) *identity.KEMPrekey {
	if id != r.kem.Public.ID {
		return nil
	}
	return r.kem
}

func (r *responder) OneTimePrekey(id uint32) *identity.OneTimePrekey { return r.oneTime[id] }

func (r *responder) Consume(oneTimeID uint32, hasOneTime bool, kemID uint32, kemLastResort bool) error {
	if hasOneTime {
		delete(r.oneTime, oneTimeID)
	}
	return nil
}

// setup is one session start: the initiator checks the bundle against the
// pinned device and runs PQXDH, encrypts the first message and encodes the
// initial message; the responder decodes it, runs PQXDH and decrypts.
func setup(initiator *identity.Device, resp *responder, bundle *identity.Bundle, pt []byte) (a, b *ratchet.State, err error) {
	a, tmpl, err := pqxdh.Initiate(nil, initiator, resp.dev.Public(), bundle)
	if err != nil {
		return nil, nil, err
	}
	if tmpl.Message, err = a.Encrypt(nil, pt); err != nil {
		return nil, nil, err
	}
	enc, err := tmpl.MarshalBinary()
	if err != nil {
		return nil, nil, err
	}
	m, err := pqxdh.UnmarshalInitialMessage(enc)
	if err != nil {
		return nil, nil, err
	}
	b, got, err := pqxdh.Respond(resp.dev, resp, m)
	if err != nil {
		return nil, nil, err
	}
	return a, b, same(pt, got)
}

// newSetup: bundle → first 1 KiB message → responder decrypt. The
// responder's prekeys and the initiator's identity exist beforehand.
func newSetup(tb testing.TB) func() error {
	initiator := must[*identity.Device](tb)(identity.NewDevice(nil))
	resp := newResponder(tb)
	pt := plaintext(tb)
	return func() error {
		_, _, err := setup(initiator, resp, resp.bundle(tb), pt)
		return err
	}
}

// established returns both sides of a session set up by PQXDH in which
// each side has sent one message, so the next messages are plain ratchet
// messages (as in the libsignal script).
func established(tb testing.TB) (alice, bob *ratchet.State, pt []byte) {
	pt = plaintext(tb)
	resp := newResponder(tb)
	initiator := must[*identity.Device](tb)(identity.NewDevice(nil))
	alice, bob, err := setup(initiator, resp, resp.bundle(tb), pt)
	if err != nil {
		tb.Fatal(err)
	}
	if err := roundTrip(bob, alice, pt); err != nil {
		tb.Fatal(err)
	}
	return alice, bob, pt
}

func roundTrip(from, to *ratchet.State, pt []byte) error {
	m, err := from.Encrypt(nil, pt)
	if err != nil {
		return err
	}
	got, err := to.Decrypt(m)
	if err != nil {
		return err
	}
	return same(pt, got)
}

// newStream: one side keeps sending; chain steps only, no DH.
func newStream(tb testing.TB) func() error {
	alice, bob, pt := established(tb)
	return func() error { return roundTrip(alice, bob, pt) }
}

// newPingPong: the sender alternates every message, so each one costs a DH
// ratchet step.
func newPingPong(tb testing.TB) func() error {
	alice, bob, pt := established(tb)
	return func() error {
		err := roundTrip(alice, bob, pt)
		alice, bob = bob, alice
		return err
	}
}

// newGroup: the sender encrypts and signs once with its sender key; one
// member device verifies and decrypts. The distribution went through its
// encoding, as it would over the pairwise session.
func newGroup(tb testing.TB) func() error {
	s := must[*senderkey.Sender](tb)(senderkey.NewSender(nil, []byte("bench-group")))
	dist := must[*senderkey.Distribution](tb)(senderkey.UnmarshalDistribution(
		must[[]byte](tb)(s.Distribution().MarshalBinary())))
	rc := must[*senderkey.Receiver](tb)(senderkey.NewReceiver(dist))
	pt := plaintext(tb)
	return func() error {
		m, err := s.Encrypt(pt)
		if err != nil {
			return err
		}
		got, err := rc.Decrypt(m)
		if err != nil {
			return err
		}
		return same(pt, got)
	}
}

// newDeviceListVerify5: decode and verify a signed list of 5 devices (the
// list signature plus both signatures of every entry).
func newDeviceListVerify5(tb testing.TB) func() error {
	const n = 5
	acct := must[*identity.Account](tb)(identity.NewAccount(nil))
	now := uint64(time.Now().Unix())
	l := &devicelist.List{Account: acct.Public(), Handle: "alice", Version: 7, Timestamp: now}
	for i := range n {
		d := must[*identity.Device](tb)(identity.NewDevice(nil))
		l.Entries = append(l.Entries, devicelist.Entry{
			Device: d.Public(), Name: fmt.Sprintf("device %d", i),
			Added: now - 3600, Attested: now, Primary: i == 0,
			DeviceSig: devicelist.DeviceSignature(d, acct.Public()),
		})
	}
	enc := must[[]byte](tb)(devicelist.Sign(acct, l))
	pub := ed25519.PublicKey(acct.Public())
	return func() error {
		got, err := devicelist.Verify(pub, "alice", enc)
		if err != nil {
			return err
		}
		if len(got.Entries) != n {
			return fmt.Errorf("cryptobench: verified list has %d devices, want %d", len(got.Entries), n)
		}
		return nil
	}
}

// newStateMarshal: an established session's state to its stored encoding.
func newStateMarshal(tb testing.TB) func() error {
	alice, _, _ := established(tb)
	return func() error {
		b, err := alice.MarshalBinary()
		if err == nil && len(b) == 0 {
			err = errors.New("cryptobench: empty state encoding")
		}
		return err
	}
}

// newStateUnmarshal: the same state back from bytes (strict decoding).
func newStateUnmarshal(tb testing.TB) func() error {
	alice, _, _ := established(tb)
	enc := must[[]byte](tb)(alice.MarshalBinary())
	return func() error {
		_, err := ratchet.Unmarshal(enc)
		return err
	}
}

// TestWorkloads runs every workload a few times, untimed, so go test ./...
// (and make test, natively and in wasm) checks that each still round-trips
// against the current crypto packages. The timing is in the benchmarks.
func TestWorkloads(t *testing.T) {
	for _, w := range workloads {
		t.Run(w.name, func(t *testing.T) {
			op := w.make(t)
			for i := range 3 {
				if err := op(); err != nil {
					t.Fatalf("op %d: %v", i, err)
				}
			}
		})
	}
}

func bench(b *testing.B, make func(testing.TB) func() error) {
	op := make(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := op(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSetup(b *testing.B)             { bench(b, newSetup) }
func BenchmarkStream1KiB(b *testing.B)        { bench(b, newStream) }
func BenchmarkPingPong1KiB(b *testing.B)      { bench(b, newPingPong) }
func BenchmarkGroup1KiB(b *testing.B)         { bench(b, newGroup) }
func BenchmarkDeviceListVerify5(b *testing.B) { bench(b, newDeviceListVerify5) }
func BenchmarkStateMarshal(b *testing.B)      { bench(b, newStateMarshal) }
func BenchmarkStateUnmarshal(b *testing.B)    { bench(b, newStateUnmarshal) }
