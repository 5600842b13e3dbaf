package identity

import (
	"crypto/ed25519"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/parley-im/parley/crypto/wire"
)

const (
	// MaxHandleLen bounds a handle fed into a safety number, or named by a
	// signed device list (crypto/devicelist), in bytes.
	MaxHandleLen = 255
	// SafetyNumberIterations is how many times each side's digest is
	// re-hashed, as in Signal (5200): it multiplies the cost of searching for
	// an account key whose 30 digits collide with a victim's.
	SafetyNumberIterations = 5200
	// SafetyNumberDigits is the length of SafetyNumber.Digits.
	SafetyNumberDigits = 60

	safetyQRVersion = 1
	safetyQRHashLen = 32
)

// ErrSafetyNumberMismatch means a scanned safety-number QR code was made
// for different keys or handles: the conversation may be intercepted.
var ErrSafetyNumberMismatch = errors.New("identity: safety number does not match")

// SafetyNumber lets two users check, out of band, that each has the other's
// real account key. Digits is the same string on both phones (60 digits);
// QR is what this side shows for the other side to scan.
type SafetyNumber struct {
	Digits string
	QR     []byte
	ours   []byte
	theirs []byte
}

// safetyDigest is one side's iterated hash:
// h0 = SHA-512(str("parley/v1/safety-number") || var(pub) || str(handle)),
// h(i+1) = SHA-512(h(i) || pub), SafetyNumberIterations times.
func safetyDigest(handle string, pub ed25519.PublicKey) []byte {
	w := wire.NewWriter(128)
	w.String("parley/v1/safety-number")
	w.Var(pub)
	w.String(handle)
	h := sha512.Sum512(w.Bytes())
	buf := make([]byte, 0, sha512.Size+len(pub))
	for i := 0; i < SafetyNumberIterations; i++ {
		buf = append(append(buf[:0], h[:]...), pub...)
		h = sha512.Sum512(buf)
	}
	return h[:]
}

// safetyHalf turns the first 30 bytes of a digest into 30 digits: six
// 5-byte big-endian chunks, each mod 100000 as 5 zero-padded digits.
func safetyHalf(d []byte) string {
	var sb strings.Builder
	for i := 0; i < 6; i++ {
		var c [8]byte
		copy(c[3:], d[5*i:5*i+5])
		fmt.Fprintf(&sb, "%05d", binary.BigEndian.Uint64(c[:])%100000)
	}
	return sb.String()
}

// ComputeSafetyNumber derives the safety number between our account and
// theirs. Both sides get the same Digits, because the two 30-digit halves
// are sorted before they are joined. Handles are hashed byte for byte, so
// callers pass them in the relay's canonical form.
func ComputeSafetyNumber(ourHandle string, ourKey ed25519.PublicKey, theirHandle string, theirKey ed25519.PublicKey) (SafetyNumber, error) {
	if err := checkEd25519Public(ourKey); err != nil {
		return SafetyNumber{}, err
	}
	if err := checkEd25519Public(theirKey); err != nil {
		return SafetyNumber{}, err
	}
	if len(ourHandle) > MaxHandleLen || len(theirHandle) > MaxHandleLen {
		return SafetyNumber{}, ErrHandleTooLong
	}
	ours, theirs := safetyDigest(ourHandle, ourKey), safetyDigest(theirHandle, theirKey)
	a, b := safetyHalf(ours), safetyHalf(theirs)
	if b < a {
		a, b = b, a
	}
	w := wire.NewWriter(1 + 2*safetyQRHashLen)
	w.U8(safetyQRVersion)
	w.Fixed(ours[:safetyQRHashLen])
	w.Fixed(theirs[:safetyQRHashLen])
	return SafetyNumber{Digits: a + b, QR: w.Bytes(),
		ours: ours[:safetyQRHashLen], theirs: theirs[:safetyQRHashLen]}, nil
}

// Grouped is Digits in 12 groups of 5 separated by spaces, for display.
func (s SafetyNumber) Grouped() string {
	var sb strings.Builder
	for i := 0; i+5 <= len(s.Digits); i += 5 {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(s.Digits[i : i+5])
	}
	return sb.String()
}

// CheckScanned compares the QR payload scanned from the other user's screen
// with ours: their "ours" must be our "theirs" and the other way round.
// It returns ErrSafetyNumberMismatch on any difference, or a wire error if
// the payload is malformed.
func (s SafetyNumber) CheckScanned(qr []byte) error {
	r := wire.NewReader(qr)
	r.Version(safetyQRVersion)
	theirOurs := r.Fixed(safetyQRHashLen)
	theirTheirs := r.Fixed(safetyQRHashLen)
	if err := r.Finish(); err != nil {
		return fmt.Errorf("identity: decoding safety number QR: %w", err)
	}
	if len(s.ours) != safetyQRHashLen {
		return ErrSafetyNumberMismatch
	}
	if subtle.ConstantTimeCompare(theirOurs, s.theirs)&subtle.ConstantTimeCompare(theirTheirs, s.ours) != 1 {
		return ErrSafetyNumberMismatch
	}
	return nil
}
