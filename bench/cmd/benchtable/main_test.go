package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTable(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Native names carry the GOMAXPROCS suffix, wasm names do not.
	nativeOut := write("native.txt", `goos: linux
BenchmarkStream1KiB-2   	   50000	     10000 ns/op	    2048 B/op
BenchmarkStream1KiB-2   	   50000	     30000 ns/op
BenchmarkStream1KiB-2   	   50000	     20000 ns/op
BenchmarkPingPong1KiB-2 	   1000	    100000 ns/op
PASS
`)
	wasmOut := write("wasm.txt", `BenchmarkStream1KiB   	   5000	    150000 ns/op
BenchmarkStream1KiB   	   5000	    170000 ns/op
BenchmarkPingPong1KiB 	   100	    800000 ns/op
BenchmarkGroup1KiB 	   100	    300000 ns/op
`)
	// Two invocations, as crypto.sh's rounds append them.
	lsOut := write("ls.json", `{"version":"0.103.0","node":"v20","workloads":{
"Stream1KiB":{"us_per_op":190,"runs_us":[190]},"PingPong1KiB":{"us_per_op":300,"runs_us":[300]},
"Group1KiB":{"us_per_op":150,"runs_us":[150]},"DeviceListVerify5":{"na":"no signed device list"}}}
{"version":"0.103.0","node":"v20","workloads":{
"Stream1KiB":{"us_per_op":205,"runs_us":[200,210]},"PingPong1KiB":{"us_per_op":300,"runs_us":[300]},
"Group1KiB":{"us_per_op":150,"runs_us":[150]},"DeviceListVerify5":{"na":"no signed device list"},
"Setup":{"us_per_op":1500,"runs_us":[1500]}}}
`)

	native, err := readGoBench(nativeOut)
	if err != nil {
		t.Fatal(err)
	}
	if got := median(native["Stream1KiB"]); got != 20 {
		t.Errorf("native Stream1KiB median = %v µs, want 20", got)
	}
	wasm, err := readGoBench(wasmOut)
	if err != nil {
		t.Fatal(err)
	}
	if got := median(wasm["Stream1KiB"]); got != 160 {
		t.Errorf("wasm Stream1KiB median = %v µs, want 160 (even count: mean of middle two)", got)
	}
	ls, err := readLibsignal(lsOut)
	if err != nil {
		t.Fatal(err)
	}
	if got := median(ls.Workloads["Stream1KiB"].RunsUS); got != 200 {
		t.Errorf("libsignal Stream1KiB median over both lines = %v µs, want 200", got)
	}
	var sb strings.Builder
	failed := writeTable(&sb, native, wasm, ls)
	out := sb.String()
	t.Log("\n" + out)
	if !failed {
		t.Error("ping-pong at 800 µs should fail its 700 µs target")
	}
	if strings.Contains(out, "StateMarshal") {
		t.Error("a workload run nowhere should have no row")
	}
	for _, want := range []string{
		"Stream1KiB", "0.80×", "pass", // 160/200
		"2.67×", "FAIL", // ping-pong 800/300
		"n/a", "unmeasured", // device list; setup has no Go numbers
		"Stream1KiB:  native 10.0–30.0 (n=3)  wasm 150.0–170.0 (n=2)  libsignal 190.0–210.0 (n=3)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q", want)
		}
	}
}
