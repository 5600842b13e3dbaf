package client

import (
	"fmt"
	"strings"

	"rsc.io/qr/coding"
)

// qrQuiet is the quiet zone around a QR code, in modules (the standard's
// minimum is 4).
const qrQuiet = 4

// QRSVG renders text as a QR code (error correction level M) in SVG: one
// path of unit squares, so it scales crisply and needs no image decoding
// and no inline script. It uses rsc.io/qr's encoder, which has no image
// dependencies: image/png alone would add about 1 MB to the browser
// client's wasm.
func QRSVG(text string) (string, error) {
	enc := coding.String(text)
	level := coding.M
	v := coding.Version(coding.MinVersion)
	for ; v <= coding.MaxVersion && enc.Bits(v) > v.DataBytes(level)*8; v++ {
	}
	if v > coding.MaxVersion {
		return "", fmt.Errorf("qr: text of %d bytes is too long for a QR code", len(text))
	}
	plan, err := coding.NewPlan(v, level, 0)
	if err != nil {
		return "", fmt.Errorf("qr: %w", err)
	}
	code, err := plan.Encode(enc)
	if err != nil {
		return "", fmt.Errorf("qr: %w", err)
	}
	n := code.Size + 2*qrQuiet
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" shape-rendering="crispEdges" role="img" aria-label="QR code">`, n, n)
	fmt.Fprintf(&sb, `<rect width="%d" height="%d" fill="#fff"/><path fill="#000" d="`, n, n)
	for y := 0; y < code.Size; y++ {
		for x := 0; x < code.Size; x++ {
			if code.Black(x, y) {
				fmt.Fprintf(&sb, "M%d %dh1v1h-1z", x+qrQuiet, y+qrQuiet)
			}
		}
	}
	sb.WriteString(`"/></svg>`)
	return sb.String(), nil
}
