package server

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"regexp"
	"slices"
	"strings"
)

// Cache lifetimes. index.html and the service worker must always be
// revalidated, or a deploy never reaches users; an asset requested with the
// ?v= of its own content hash can never change, so it is cached for a year.
const (
	cacheRevalidate = "no-cache"
	cacheImmutable  = "public, max-age=31536000, immutable"
	// versionLen is how many hex digits of the SHA-256 go into ?v=.
	versionLen = 16
)

// contentTypes pins the types the client depends on instead of trusting the
// platform's mime tables (a wrong wasm type breaks instantiateStreaming).
var contentTypes = map[string]string{
	".html":        "text/html; charset=utf-8",
	".js":          "text/javascript; charset=utf-8",
	".mjs":         "text/javascript; charset=utf-8",
	".css":         "text/css; charset=utf-8",
	".wasm":        "application/wasm",
	".webmanifest": "application/manifest+json",
	".json":        "application/json",
	".svg":         "image/svg+xml",
	".png":         "image/png",
	".ico":         "image/x-icon",
	".txt":         "text/plain; charset=utf-8",
}

// encodings are the precompressed variants, in order of preference. The
// build writes name.br and name.gz next to each large asset.
var encodings = []struct{ token, suffix string }{
	{"br", ".br"},
	{"gzip", ".gz"},
}

// asset is one file prepared at startup: nothing on the request path reads
// the filesystem or compresses.
type asset struct {
	body        []byte
	contentType string
	etag        string
	version     string
	variants    map[string][]byte // encoding token → precompressed body
	revalidate  bool              // never cache without asking
}

// assetTable maps URL paths to prepared assets.
type assetTable map[string]*asset

// loadAssets walks fsys and prepares every file under its URL path:
// index.html at "/", web/x at "/web/x". Precompressed siblings become
// variants of their original, not URLs of their own.
func loadAssets(fsys fs.FS) (assetTable, error) {
	t := assetTable{}
	files := map[string][]byte{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		files[p] = b
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("server: read assets: %w", err)
	}
	for p, b := range files {
		if strings.HasSuffix(p, ".br") || strings.HasSuffix(p, ".gz") {
			continue
		}
		sum := sha256.Sum256(b)
		a := &asset{
			body:        b,
			contentType: typeOf(p),
			etag:        `"` + hex.EncodeToString(sum[:12]) + `"`,
			version:     hex.EncodeToString(sum[:])[:versionLen],
			variants:    map[string][]byte{},
			revalidate:  p == "index.html" || path.Base(p) == "sw.js",
		}
		for _, e := range encodings {
			if v, ok := files[p+e.suffix]; ok && len(v) < len(b) {
				a.variants[e.token] = v
			}
		}
		t["/"+p] = a
	}
	if err := versionModules(t); err != nil {
		return nil, err
	}
	if idx, ok := t["/index.html"]; ok {
		t["/"] = versionRefs(idx, t)
		delete(t, "/index.html")
	}
	// The service worker controls only URLs under its own path, so it is
	// served at the root to cover "/"; its references are versioned like
	// index.html's, so every new build changes its bytes and the browser
	// installs the new worker (which then waits for the next start). The
	// manifest gets a stable root URL: browsers key an installed app on it.
	if sw, ok := t["/web/sw.js"]; ok {
		t["/sw.js"] = versionRefs(sw, t)
	}
	if m, ok := t["/web/manifest.webmanifest"]; ok {
		root := *m
		root.revalidate = true
		t["/manifest.webmanifest"] = &root
	}
	return t, nil
}

// assetRef matches the asset URLs index.html, the service worker and the
// page's modules name, so they can be rewritten to their content-versioned form. "/index.html"
// stands for the page itself, which is served at "/".
var assetRef = regexp.MustCompile(`"(/web/[A-Za-z0-9_./-]+|/index\.html)"`)

// versionRefs rewrites every "/web/..." reference in a text asset to
// "/web/...?v=<hash>" (and "/index.html" to "/?v=<hash>" once the page is
// versioned), so the immutable caching of assets is safe: a new build
// changes the URL, and the referring file is itself either always
// revalidated (index.html, the service worker) or versioned by the hash of
// its rewritten bytes (the modules, versionModules).
func versionRefs(src *asset, t assetTable) *asset {
	body := assetRef.ReplaceAllFunc(src.body, func(m []byte) []byte {
		p := string(m[1 : len(m)-1])
		url := p
		if p == "/index.html" {
			url = "/"
		}
		a, ok := t[url]
		if !ok || (p == "/index.html" && t["/index.html"] != nil) {
			return m
		}
		return []byte(`"` + url + "?v=" + a.version + `"`)
	})
	sum := sha256.Sum256(body)
	out := *src
	out.body = body
	out.etag = `"` + hex.EncodeToString(sum[:12]) + `"`
	out.version = hex.EncodeToString(sum[:])[:versionLen]
	out.variants = map[string][]byte{} // the rewritten file is small
	return &out
}

// isModule reports whether p is one of the page's ES modules: the entry
// web/app.js and everything under web/app/.
func isModule(p string) bool {
	return p == "/web/app.js" || strings.HasPrefix(p, "/web/app/") && path.Ext(p) == ".js"
}

// versionModules rewrites the "/web/..." references of the page's ES
// modules (their import specifiers, in double quotes) like index.html's.
// A module's own version then covers the versions of what it imports, so
// a change to any module changes the URL of every module that imports it,
// up to index.html: none can be served stale from an immutable cache. That
// needs each import rewritten before its importer, so the imports must not
// form a cycle (a cycle would make the hashes depend on themselves).
func versionModules(t assetTable) error {
	const (
		visiting = 1
		done     = 2
	)
	seen := map[string]int{}
	var visit func(p string, via []string) error
	visit = func(p string, via []string) error {
		switch seen[p] {
		case visiting:
			cycle := append(via[slices.Index(via, p):], p)
			return fmt.Errorf("server: import cycle among the page's modules: %s", strings.Join(cycle, " -> "))
		case done:
			return nil
		}
		seen[p] = visiting
		for _, m := range assetRef.FindAllSubmatch(t[p].body, -1) {
			if dep := string(m[1]); isModule(dep) && t[dep] != nil {
				if err := visit(dep, append(via, p)); err != nil {
					return err
				}
			}
		}
		t[p] = versionRefs(t[p], t)
		seen[p] = done
		return nil
	}
	var modules []string
	for p := range t {
		if isModule(p) {
			modules = append(modules, p)
		}
	}
	slices.Sort(modules) // the same error for the same cycle
	for _, p := range modules {
		if err := visit(p, nil); err != nil {
			return err
		}
	}
	return nil
}

func typeOf(p string) string {
	ext := path.Ext(p)
	if t, ok := contentTypes[ext]; ok {
		return t
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return "application/octet-stream"
}

// serveAsset writes a, choosing a precompressed variant by Accept-Encoding.
func serveAsset(w http.ResponseWriter, r *http.Request, a *asset) {
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	body, etag := a.body, a.etag
	enc := chooseEncoding(r.Header.Get("Accept-Encoding"), a.variants)
	if enc != "" {
		body, etag = a.variants[enc], variantETag(a.etag, enc)
	}
	h.Set("ETag", etag)
	h.Set("Vary", "Accept-Encoding")
	switch {
	case a.revalidate:
		h.Set("Cache-Control", cacheRevalidate)
	case r.URL.Query().Get("v") == a.version:
		h.Set("Cache-Control", cacheImmutable)
	default:
		h.Set("Cache-Control", cacheRevalidate)
	}
	if match := r.Header.Get("If-None-Match"); match != "" && etagMatch(match, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if enc != "" {
		h.Set("Content-Encoding", enc)
	}
	h.Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// variantETag is the ETag of an encoded variant: a strong ETag names
// exact bytes, so brotli, gzip and identity answers each need their own,
// or a cache could revalidate one encoding's bytes with another's tag.
func variantETag(etag, enc string) string {
	return strings.TrimSuffix(etag, `"`) + "-" + enc + `"`
}

func etagMatch(header, etag string) bool {
	for _, part := range strings.Split(header, ",") {
		part = strings.TrimSpace(part)
		if part == "*" || strings.TrimPrefix(part, "W/") == etag {
			return true
		}
	}
	return false
}

// chooseEncoding picks the first of our preferred encodings the client
// accepts with a non-zero q value. Unknown or malformed parts are ignored.
func chooseEncoding(accept string, variants map[string][]byte) string {
	if accept == "" || len(variants) == 0 {
		return ""
	}
	accepted := map[string]bool{}
	for _, part := range strings.Split(accept, ",") {
		token, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		token = strings.ToLower(strings.TrimSpace(token))
		q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
		if q == "q=0" || q == "q=0.0" || q == "q=0.00" || q == "q=0.000" {
			accepted[token] = false
			continue
		}
		if _, seen := accepted[token]; !seen {
			accepted[token] = true
		}
	}
	for _, e := range encodings {
		if _, ok := variants[e.token]; !ok {
			continue
		}
		if ok, seen := accepted[e.token]; (seen && ok) || (!seen && accepted["*"]) {
			return e.token
		}
	}
	return ""
}

// Compressible reports whether the build should precompress a file: text
// and wasm shrink a lot; images are already compressed.
func Compressible(name string) bool {
	switch path.Ext(name) {
	case ".wasm", ".js", ".mjs", ".css", ".html", ".svg", ".json", ".webmanifest", ".txt":
		return true
	}
	return false
}
