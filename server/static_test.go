package server

import (
	"bytes"
	"io/fs"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/parley-im/parley"
)

// moduleAssets is a page whose entry module imports a view that imports a
// shared module.
func moduleAssets(t *testing.T) fstest.MapFS {
	assets := testAssets(t)
	assets["web/app.js"] = &fstest.MapFile{Data: []byte(`import { view } from "/web/app/view.js";` + "\nview();\n")}
	assets["web/app/view.js"] = &fstest.MapFile{Data: []byte(`import { $ } from "/web/app/dom.js";` + "\nexport const view = () => $('x');\n")}
	assets["web/app/dom.js"] = &fstest.MapFile{Data: []byte("export const $ = (id) => document.getElementById(id);\n")}
	assets["web/sw.js"] = &fstest.MapFile{Data: []byte(`const SHELL = ["/index.html", "/web/app.js", "/web/app/view.js", "/web/app/dom.js"];`)}
	return assets
}

// versionOf returns the ?v= that body gives url ("/web/app.js"), or "".
func versionOf(body []byte, url string) string {
	m := regexp.MustCompile(`"` + regexp.QuoteMeta(url) + `\?v=([0-9a-f]+)"`).FindSubmatch(body)
	if m == nil {
		return ""
	}
	return string(m[1])
}

// A module's imports are versioned like index.html's references, and its
// own version covers them: a change to a module deep in the imports
// changes the URL of every module above it, of the page's entry and of the
// service worker, so no module is ever served stale from an immutable
// cache.
func TestModuleImportsVersioned(t *testing.T) {
	assets := moduleAssets(t)
	ts := newTestServer(t, Config{Assets: assets})
	_, index := get(t, "GET", ts.URL+"/", nil)
	entry := versionOf(index, "/web/app.js")
	resp, app := get(t, "GET", ts.URL+"/web/app.js?v="+entry, nil)
	if entry == "" || resp.Header.Get("Cache-Control") != cacheImmutable {
		t.Fatalf("the entry module is not versioned: %q, %s", resp.Header.Get("Cache-Control"), index)
	}
	view := versionOf(app, "/web/app/view.js")
	resp, viewBody := get(t, "GET", ts.URL+"/web/app/view.js?v="+view, nil)
	if view == "" || resp.Header.Get("Cache-Control") != cacheImmutable {
		t.Fatalf("app.js's import is not versioned: %q, %s", resp.Header.Get("Cache-Control"), app)
	}
	dom := versionOf(viewBody, "/web/app/dom.js")
	if resp, _ := get(t, "GET", ts.URL+"/web/app/dom.js?v="+dom, nil); dom == "" || resp.Header.Get("Cache-Control") != cacheImmutable {
		t.Fatalf("view.js's import is not versioned: %s", viewBody)
	}
	_, sw := get(t, "GET", ts.URL+"/sw.js", nil)
	for url, v := range map[string]string{"/web/app.js": entry, "/web/app/view.js": view, "/web/app/dom.js": dom} {
		if got := versionOf(sw, url); got != v {
			t.Errorf("the service worker precaches %s?v=%s, the page loads ?v=%s", url, got, v)
		}
	}

	assets["web/app/dom.js"] = &fstest.MapFile{Data: []byte("export const $ = (id) => document.querySelector('#' + id);\n")}
	ts2 := newTestServer(t, Config{Assets: assets})
	_, index2 := get(t, "GET", ts2.URL+"/", nil)
	_, app2 := get(t, "GET", ts2.URL+"/web/app.js", nil)
	_, sw2 := get(t, "GET", ts2.URL+"/sw.js", nil)
	if versionOf(index2, "/web/app.js") == entry || versionOf(app2, "/web/app/view.js") == view || bytes.Equal(sw, sw2) {
		t.Errorf("a change to dom.js left a URL above it unchanged:\n%s\n%s", index2, app2)
	}
}

// Content versions cannot be given to modules that import each other.
func TestModuleImportCycle(t *testing.T) {
	assets := moduleAssets(t)
	assets["web/app/dom.js"] = &fstest.MapFile{Data: []byte(`import { view } from "/web/app/view.js";` + "\nexport const $ = view;\n")}
	_, err := New(Config{Assets: assets})
	if err == nil || !strings.Contains(err.Error(), "import cycle") || !strings.Contains(err.Error(), "/web/app/view.js -> /web/app/dom.js -> /web/app/view.js") {
		t.Fatalf("New with an import cycle: %v", err)
	}
}

// The shipped page: every file under web/app/ is in the service worker's
// precache list with the version the page loads, every module reference
// in the page and in the modules names a module that exists, versioned,
// and index.html preloads every module imported. A new module cannot be
// forgotten in web/sw.js (the app still starts offline) or index.html.
func TestShippedModulesPrecachedAndVersioned(t *testing.T) {
	ts := newTestServer(t, Config{Assets: parley.Assets})
	_, sw := get(t, "GET", ts.URL+"/sw.js", nil)
	_, index := get(t, "GET", ts.URL+"/", nil)
	modules := []string{"/web/app.js"}
	err := fs.WalkDir(parley.Assets, "web/app", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			modules = append(modules, "/"+p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(modules) < 10 {
		t.Fatalf("only %d modules under web/app/", len(modules))
	}
	served := map[string][]byte{"/": index}
	for _, m := range modules {
		v := versionOf(sw, m)
		if v == "" {
			t.Errorf("web/sw.js does not precache %s", m)
			_, served[m] = get(t, "GET", ts.URL+m, nil)
			continue
		}
		resp, body := get(t, "GET", ts.URL+m+"?v="+v, nil)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != cacheImmutable {
			t.Errorf("%s?v=%s precached by the service worker: %d, %q", m, v, resp.StatusCode, resp.Header.Get("Cache-Control"))
		}
		served[m] = body
	}
	ref := regexp.MustCompile(`"(/web/app(?:\.js|/[^"?]*))(\?v=[0-9a-f]+)?"`)
	for from, body := range served {
		for _, m := range ref.FindAllSubmatch(body, -1) {
			if _, ok := served[string(m[1])]; !ok || len(m[2]) == 0 {
				t.Errorf("%s names %s (not a known module, or not versioned)", from, m[0])
			}
		}
	}
	if versionOf(index, "/web/app.js") == "" {
		t.Errorf("index.html does not load a versioned /web/app.js")
	}

	// index.html preloads exactly the modules app.js imports, directly or
	// not, so the browser fetches them at once (see its comment).
	imported := map[string]bool{}
	var walk func(m string)
	walk = func(m string) {
		for _, r := range ref.FindAllSubmatch(served[m], -1) {
			if dep := string(r[1]); !imported[dep] {
				imported[dep] = true
				walk(dep)
			}
		}
	}
	walk("/web/app.js")
	preloaded := map[string]bool{}
	for _, m := range regexp.MustCompile(`<link rel="modulepreload" href="([^"?]+)\?v=[0-9a-f]+">`).FindAllSubmatch(index, -1) {
		preloaded[string(m[1])] = true
	}
	if !maps.Equal(imported, preloaded) {
		t.Errorf("index.html preloads %v, app.js imports %v", slices.Sorted(maps.Keys(preloaded)), slices.Sorted(maps.Keys(imported)))
	}
}

// web/app/words.js keeps errorWords one object literal with one
// `code: 'sentence',` per line, so that entries can be added by hand and
// read by tools.
func TestErrorWordsFormat(t *testing.T) {
	b, err := fs.ReadFile(parley.Assets, "web/app/words.js")
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	start := strings.Index(src, "\nexport const errorWords = {\n")
	if start < 0 {
		t.Fatal("words.js: no `export const errorWords = {` line")
	}
	body, _, ok := strings.Cut(src[start+len("\nexport const errorWords = {\n"):], "\n};\n")
	if !ok {
		t.Fatal("words.js: errorWords does not end with a `};` line")
	}
	entry := regexp.MustCompile(`^  [a-z][a-z0-9_]*: '([^'\\]|\\.)*',$`)
	for _, line := range strings.Split(body, "\n") {
		if !entry.MatchString(line) {
			t.Errorf("words.js: errorWords line %q is not `  code: 'sentence',`", line)
		}
	}
}
