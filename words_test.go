package parley

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"

	"github.com/parley-im/parley/client"
)

// errorWordsRE finds the UI's table of plain words for the engine's error
// codes (`errorWords = { code: '…', … }`) and wordKeyRE its keys.
var (
	errorWordsRE = regexp.MustCompile(`(?s)\berrorWords = \{(.*?)\n\};`)
	wordKeyRE    = regexp.MustCompile(`(?m)^\s*([a-z][a-z0-9_]*):\s*'`)
)

// Every error code the engine and its browser binding declare
// (client.Codes) has its sentence for people in the UI, so no code ships
// that the page would show as raw text; and the UI words no code the
// engine does not have (a renamed code would otherwise lose its words
// silently).
func TestEveryCodeHasWords(t *testing.T) {
	var table string
	err := fs.WalkDir(Assets, "web", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".js") || strings.HasPrefix(path, "web/dist/") {
			return err
		}
		b, err := fs.ReadFile(Assets, path)
		if err != nil {
			return err
		}
		if m := errorWordsRE.FindSubmatch(b); m != nil {
			if table != "" {
				t.Errorf("a second errorWords table in %s", path)
			}
			table = string(m[1])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if table == "" {
		t.Fatal("no errorWords table in web/")
	}
	worded := map[string]bool{}
	for _, m := range wordKeyRE.FindAllStringSubmatch(table, -1) {
		worded[m[1]] = true
	}
	declared := map[string]bool{}
	for _, c := range client.Codes() {
		declared[string(c)] = true
		if !worded[string(c)] {
			t.Errorf("code %q has no sentence in errorWords", c)
		}
	}
	for w := range worded {
		if !declared[w] {
			t.Errorf("errorWords has words for %q, which client.Codes does not declare", w)
		}
	}
}
