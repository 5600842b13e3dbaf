// Command genicons draws Parley's PNG app icons (web/icons/) from the same
// geometry as web/icon.svg, so the committed PNGs can be made again:
//
//	go run ./scripts/genicons web/icons
//
// "any" icons keep the SVG's rounded square; the maskable one fills the
// whole square and keeps the artwork inside the 80% safe zone that
// platforms may crop to a circle.
package main

import (
	"image"
	"image/color"
	"image/png"
	"log"
	"math"
	"os"
	"path/filepath"
)

var (
	blue  = color.NRGBA{0x1f, 0x5f, 0x8b, 0xff}
	white = color.NRGBA{0xff, 0xff, 0xff, 0xff}
)

// sdRoundRect is the signed distance to a rounded rectangle.
func sdRoundRect(x, y, x0, y0, x1, y1, r float64) float64 {
	cx, cy := (x0+x1)/2, (y0+y1)/2
	hx, hy := (x1-x0)/2-r, (y1-y0)/2-r
	dx, dy := math.Abs(x-cx)-hx, math.Abs(y-cy)-hy
	out := math.Hypot(math.Max(dx, 0), math.Max(dy, 0))
	return out + math.Min(math.Max(dx, dy), 0) - r
}

// inside reports which colour the point (in the SVG's 64-unit space) has,
// or transparent outside the icon.
func paint(x, y float64, maskable bool) color.NRGBA {
	if !maskable && sdRoundRect(x, y, 0, 0, 64, 64, 14) > 0 {
		return color.NRGBA{}
	}
	if maskable {
		// Shrink the artwork toward the centre into the safe zone.
		x, y = 32+(x-32)/0.78, 32+(y-32)/0.78
	}
	c := blue
	bubble := sdRoundRect(x, y, 8, 18, 56, 44, 6) <= 0
	tail := y >= 44 && y <= 52 && x >= 20 && x <= 30-(y-44)*10/8
	if bubble || tail {
		c = white
	}
	if sdRoundRect(x, y, 26, 27, 38, 37, 2) <= 0 {
		c = blue
	}
	// The shackle: a 2.5-unit stroke on a half circle of radius 4 at
	// (32, 24) and two legs down to y=27.
	d := math.Abs(math.Hypot(x-32, y-24) - 4)
	if (y <= 24 && d <= 1.25) || (y > 24 && y <= 27 && (math.Abs(x-28) <= 1.25 || math.Abs(x-36) <= 1.25)) {
		c = blue
	}
	return c
}

func draw(size int, maskable bool) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	const ss = 4 // supersampling per axis
	scale := 64 / float64(size)
	for py := 0; py < size; py++ {
		for px := 0; px < size; px++ {
			var r, g, b, a float64
			for sy := 0; sy < ss; sy++ {
				for sx := 0; sx < ss; sx++ {
					x := (float64(px) + (float64(sx)+0.5)/ss) * scale
					y := (float64(py) + (float64(sy)+0.5)/ss) * scale
					c := paint(x, y, maskable)
					fa := float64(c.A) / 255
					r += float64(c.R) * fa
					g += float64(c.G) * fa
					b += float64(c.B) * fa
					a += fa
				}
			}
			if a == 0 {
				continue
			}
			img.SetNRGBA(px, py, color.NRGBA{uint8(r / a), uint8(g / a), uint8(b / a), uint8(a / ss / ss * 255)})
		}
	}
	return img
}

func main() {
	dir := "web/icons"
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Fatal(err)
	}
	for _, ic := range []struct {
		name     string
		size     int
		maskable bool
	}{
		{"icon-192.png", 192, false},
		{"icon-512.png", 512, false},
		{"maskable-512.png", 512, true},
	} {
		f, err := os.Create(filepath.Join(dir, ic.name))
		if err != nil {
			log.Fatal(err)
		}
		if err := png.Encode(f, draw(ic.size, ic.maskable)); err != nil {
			log.Fatal(err)
		}
		if err := f.Close(); err != nil {
			log.Fatal(err)
		}
	}
}
