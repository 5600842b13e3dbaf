package wranglertest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestScheduledSweep runs the cron handler on a state holding expired and
// live link messages and blob reservations: the expired ones go.
//
// wrangler dev (4.86) answers /cdn-cgi/handler/scheduled with "exception"
// without running the worker when Static Assets are configured, so this
// run uses wrangler.jsonc without its assets block.
func TestScheduledSweep(t *testing.T) {
	dir := workersDir(t)
	conf, err := os.ReadFile(filepath.Join(dir, "wrangler.jsonc"))
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(conf), `"assets": {`)
	j := strings.Index(string(conf[i:]), "},")
	if i < 0 || j < 0 {
		t.Fatal("no assets block in wrangler.jsonc")
	}
	noAssets := filepath.Join(dir, fmt.Sprintf(".wranglertest-%d.jsonc", os.Getpid()))
	if err := os.WriteFile(noAssets, append(conf[:i:i], conf[i+j+2:]...), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(noAssets) })

	w := startWranglerWith(t, []string{"--config", noAssets})
	const never = 1 << 50 // unix ms, far in the future
	w.run(t, "d1", "execute", "DB", "--config", noAssets, "--command", fmt.Sprintf(`
		INSERT INTO links (key, data, expires, filled) VALUES (x'01', x'aa', 1, 1), (x'02', x'bb', %d, 1);
		INSERT INTO blobs (id, owner, expires, object, size) VALUES (x'03', 'a', 1, 'gone.x', 1), (x'04', 'a', %d, NULL, 0);`, never, never))

	res, err := http.Get(w.origin + "/cdn-cgi/handler/scheduled")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("scheduled handler: %d %s", res.StatusCode, body)
	}
	for _, table := range []string{"links", "blobs"} {
		out := w.run(t, "d1", "execute", "DB", "--config", noAssets, "--json", "--command", "SELECT count(*) AS n FROM "+table)
		var results []struct {
			Results []struct{ N int }
		}
		if err := json.Unmarshal(out[strings.Index(string(out), "["):], &results); err != nil || len(results) != 1 || len(results[0].Results) != 1 {
			t.Fatalf("count of %s: %v\n%s", table, err, out)
		}
		if n := results[0].Results[0].N; n != 1 {
			t.Errorf("%s after the sweep: %d rows, want the 1 unexpired", table, n)
		}
	}
}
