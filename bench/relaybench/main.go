// Command relaybench is the relay's load tool. It starts a relay in a child
// process (the same relayserver.New + store.Open as parley-server, with fsync on,
// and the per-IP limits lifted because every client is on 127.0.0.1),
// opens N idle and M active authenticated device sockets over loopback, and
// measures:
//
//   - memory per idle socket: the relay process's Go heap+stack in use
//     (after a GC) and its RSS, before and after opening the idle sockets;
//   - end-to-end envelopes/s at full load: each of M senders keeps a window
//     of sends in flight to its own receiver; an envelope counts when its
//     receiver has it (accepted durably → pushed → acked); the run ends by
//     waiting for the relay's queue to drain (deleted);
//   - delivery latency p50/p99 (send call → envelope at the receiver) at
//     full load;
//   - time to durable ack p50/p99 (send call → OK, which the relay sends
//     after fsync) at -ack-rate envelopes/s, by default 5,000: half the
//     10,000/s target, as issue 4 states the latency target.
//
// Each figure is the median over -runs runs. Run it with bench/relay.sh
// (make bench-relay).
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/parley-im/parley/crypto/devicelist"
	"github.com/parley-im/parley/crypto/identity"
	"github.com/parley-im/parley/relay"
	"github.com/parley-im/parley/relay/relayclient"
	"github.com/parley-im/parley/server/relayserver"
	"github.com/parley-im/parley/server/store"
)

func main() {
	serve := flag.Bool("serve", false, "run only the relay (child mode)")
	data := flag.String("data", "", "data directory (child mode)")
	idle := flag.Int("idle", 1000, "idle device sockets")
	active := flag.Int("senders", 100, "active senders (each with its own receiver)")
	window := flag.Int("window", 8, "sends in flight per sender")
	size := flag.Int("size", 1024, "payload bytes per envelope")
	dur := flag.Duration("duration", 5*time.Second, "measured time per phase")
	ackRate := flag.Float64("ack-rate", 5000, "envelopes/s offered while measuring time to durable ack: half the 10,000/s target (0: half the measured full-load rate)")
	runs := flag.Int("runs", 3, "runs; figures are medians")
	jsonOut := flag.String("json", "", "also write the results as JSON to this file")
	baseline := flag.String("baseline", "", "JSON results of bench/relayjs (JetStream) to compare with")
	stalled := flag.String("stalled", "", "instead: measure issue 14's stalled requests against this parley-server binary")
	stalledN := flag.Int("stalled-n", 300, "stalled requests of each kind (with -stalled)")
	hostile := flag.String("hostile", "", "instead: issue 14's combined flood against this parley-server binary")
	var hc hostileConfig
	flag.DurationVar(&hc.dur, "hostile-duration", time.Minute, "how long the flood lasts (with -hostile)")
	flag.IntVar(&hc.stalled, "hostile-stalled", 20, "stalled 1-byte link PUTs held per flooding address (with -hostile)")
	flag.IntVar(&hc.preAuth, "hostile-preauth", 10, "pre-login sockets with a 1 MiB frame begun, per address of the upper half (with -hostile)")
	flag.IntVar(&hc.slow, "hostile-slow", 20, "slow-reading accounts, one per address (with -hostile)")
	flag.IntVar(&hc.queued, "hostile-queued", 40, "256 KiB envelopes queued to each slow reader, more than loopback's socket buffers take (with -hostile)")
	flag.IntVar(&hc.readRate, "hostile-read-rate", 16<<10, "bytes a second a slow reader takes (with -hostile)")
	flag.IntVar(&hc.ttlSends, "hostile-ttl-sends", 11000, "ttl_s=1 sends into the victim's mailbox (with -hostile)")
	control := flag.Bool("control", false, "run only a trivial HTTP server (the hostile mode's control)")
	probeURLs := flag.String("probe", "", "run only the hostile mode's prober on these comma-separated URLs")
	flag.Parse()
	if *probeURLs != "" {
		runProbes(strings.Split(*probeURLs, ","))
		return
	}
	if *control {
		if err := serveControl(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if *hostile != "" {
		hc.bin = *hostile
		for i := 0; i < *runs; i++ {
			if err := runHostile(hc); err != nil {
				fmt.Fprintln(os.Stderr, "hostile:", err)
				os.Exit(1)
			}
		}
		return
	}
	if *stalled != "" {
		if err := runStalled(*stalled, *stalledN); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if *serve {
		if err := serveChild(*data); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	var results []result
	for i := 0; i < *runs; i++ {
		r, err := oneRun(*idle, *active, *window, *size, *dur, *ackRate)
		if err != nil {
			fmt.Fprintln(os.Stderr, "run failed:", err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "run %d: %s\n", i+1, r)
		results = append(results, r)
	}
	m := medians(results)
	fmt.Printf("relay on %d cores, %d idle + %d senders/%d receivers, %d B payloads, fsync on, median of %d runs\n",
		runtime.NumCPU(), *idle, *active, *active, *size, *runs)
	fmt.Printf("  end-to-end envelopes/s (full load)   %10.0f   target >= 10000\n", m.Throughput)
	fmt.Printf("  delivery latency p50 / p99 (full)    %7.2f ms / %.2f ms\n", m.DeliveryP50, m.DeliveryP99)
	fmt.Printf("  durable ack p50 / p99 (paced)        %7.2f ms / %.2f ms   target p99 < 15 ms at 5,000/s\n", m.AckP50, m.AckP99)
	fmt.Printf("  paced rate achieved                  %10.0f envelopes/s\n", m.HalfRate)
	fmt.Printf("  memory per idle socket (heap+stack)  %7.1f KiB   target <= 32 KiB\n", m.IdleKiB)
	fmt.Printf("  memory per idle socket (RSS)         %7.1f KiB\n", m.IdleRSSKiB)
	fmt.Printf("  envelopes per store commit           %7.1f\n", m.PerCommit)
	fmt.Printf("  disk: raw 4 KiB write+fsync p50 / p99 %6.2f ms / %.2f ms (context: the floor under durable acks)\n", m.FsyncP50, m.FsyncP99)
	fmt.Printf("  machine load (1-min avg, after paced) %6.2f on %d cores (this bench and its relay make about 2; the rest is other processes)\n", m.Load, runtime.NumCPU())
	if *baseline != "" {
		var js struct{ Median result }
		if b, err := os.ReadFile(*baseline); err != nil || json.Unmarshal(b, &js) != nil || js.Median.Throughput == 0 {
			fmt.Printf("  JetStream baseline: unavailable (%s)\n", *baseline)
		} else {
			fmt.Printf("  JetStream (fsync always) envelopes/s %10.0f   relay/JetStream = %.1fx   target >= 2x\n",
				js.Median.Throughput, m.Throughput/js.Median.Throughput)
			fmt.Printf("  JetStream publish ack p50 / p99 (half load) %.2f ms / %.2f ms\n", js.Median.AckP50, js.Median.AckP99)
		}
	}
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(map[string]any{"runs": results, "median": m}, "", "  ")
		os.WriteFile(*jsonOut, b, 0o644)
	}
}

type result struct {
	Throughput  float64 `json:"envelopes_per_s"`
	DeliveryP50 float64 `json:"delivery_p50_ms"`
	DeliveryP99 float64 `json:"delivery_p99_ms"`
	AckP50      float64 `json:"durable_ack_p50_ms"`
	AckP99      float64 `json:"durable_ack_p99_ms"`
	HalfRate    float64 `json:"half_load_envelopes_per_s"`
	IdleKiB     float64 `json:"idle_socket_heap_stack_kib"`
	IdleRSSKiB  float64 `json:"idle_socket_rss_kib"`
	PerCommit   float64 `json:"envelopes_per_commit"`
	FsyncP50    float64 `json:"raw_fsync_p50_ms"`
	FsyncP99    float64 `json:"raw_fsync_p99_ms"`
	CommitMs    float64 `json:"commit_ms"`
	CommitBusy  float64 `json:"commit_busy_fraction"`
	// The same during the paced phase.
	PacedPerCommit float64 `json:"paced_ops_per_commit"`
	PacedCommitMs  float64 `json:"paced_commit_ms"`
	// Load is the machine's 1-minute load average as the paced phase
	// ends (bench and relay included): on a shared machine it is what
	// separates a slow relay from a busy one.
	Load float64 `json:"load_avg_1m"`
}

func (r result) String() string {
	return fmt.Sprintf("%.0f env/s, delivery p50 %.2f p99 %.2f ms, durable ack (half load %.0f/s) p50 %.2f p99 %.2f ms, idle %.1f KiB (RSS %.1f), %.1f ops/commit, %.2f ms/commit, writer busy %.0f%%, paced %.1f ops/commit %.2f ms/commit, raw fsync p99 %.2f ms, load %.2f",
		r.Throughput, r.DeliveryP50, r.DeliveryP99, r.HalfRate, r.AckP50, r.AckP99, r.IdleKiB, r.IdleRSSKiB, r.PerCommit, r.CommitMs, 100*r.CommitBusy, r.PacedPerCommit, r.PacedCommitMs, r.FsyncP99, r.Load)
}

func medians(rs []result) result {
	med := func(f func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	return result{
		Throughput:  med(func(r result) float64 { return r.Throughput }),
		DeliveryP50: med(func(r result) float64 { return r.DeliveryP50 }),
		DeliveryP99: med(func(r result) float64 { return r.DeliveryP99 }),
		AckP50:      med(func(r result) float64 { return r.AckP50 }),
		AckP99:      med(func(r result) float64 { return r.AckP99 }),
		HalfRate:    med(func(r result) float64 { return r.HalfRate }),
		IdleKiB:     med(func(r result) float64 { return r.IdleKiB }),
		IdleRSSKiB:  med(func(r result) float64 { return r.IdleRSSKiB }),
		PerCommit:   med(func(r result) float64 { return r.PerCommit }),
		FsyncP50:    med(func(r result) float64 { return r.FsyncP50 }),
		FsyncP99:    med(func(r result) float64 { return r.FsyncP99 }),
		Load:        med(func(r result) float64 { return r.Load }),
	}
}

// ---- child: the relay ----

type memStats struct {
	HeapStack uint64 `json:"heap_stack"`
	RSS       uint64 `json:"rss"`
	Queued    int64  `json:"queued"`
	Commits   int64  `json:"commits"`
	Ops       int64  `json:"ops"`
	Conns     int    `json:"goroutines"`
	Stack     uint64 `json:"stack"`
	CommitNs  int64  `json:"commit_ns"`
}

func serveChild(data string) error {
	st, err := store.Open(data)
	if err != nil {
		return err
	}
	defer st.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	origin := "http://" + ln.Addr().String()
	rl, err := relayserver.New(st, relayserver.Config{
		Origin: origin, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		IPRate: 1e9, IPBurst: 1 << 30, RegisterRate: 1e9, RegisterBurst: 1 << 30,
		MailboxLimit: 1 << 30,
	})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", rl.Handler())
	mux.Handle("/metrics", rl.Metrics())
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/bench/mem", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("gc") == "1" {
			runtime.GC()
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		c, o := st.Commits()
		json.NewEncoder(w).Encode(memStats{
			HeapStack: ms.HeapInuse + ms.StackInuse, RSS: rss(), Queued: st.Queued(),
			Commits: c, Ops: o, Conns: runtime.NumGoroutine(), Stack: ms.StackInuse, CommitNs: int64(st.CommitTime()),
		})
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	fmt.Println("ORIGIN", origin)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
	cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rl.Close(cctx)
	return nil
}

func rss() uint64 { return uint64(procRSS(os.Getpid())) }

// ---- parent: the load ----

type device struct {
	handle string
	dev    *identity.Device
}

func newAccount(origin, handle string) (*device, error) { return newAccountVia(nil, origin, handle) }

// newAccountVia registers through hc (nil: http.DefaultClient, as
// relayclient.Register does), so the hostile mode's accounts come from
// its flooding addresses and spend their registration budgets.
func newAccountVia(hc *http.Client, origin, handle string) (*device, error) {
	acct, err := identity.NewAccount(nil)
	if err != nil {
		return nil, err
	}
	d, err := identity.NewDevice(nil)
	if err != nil {
		return nil, err
	}
	now := uint64(time.Now().Unix())
	enc, err := devicelist.Sign(acct, &devicelist.List{Account: acct.Public(), Version: 1, Timestamp: now, Entries: []devicelist.Entry{{
		Device: d.Public(), Name: "bench", Added: now, Attested: now, Primary: true,
		DeviceSig: devicelist.DeviceSignature(d, acct.Public()),
	}}})
	if err != nil {
		return nil, err
	}
	if hc == nil {
		_, err = relayclient.Register(context.Background(), origin, handle, enc)
	} else {
		err = postRegister(hc, origin, handle, enc)
	}
	if err != nil {
		return nil, err
	}
	return &device{handle: handle, dev: d}, nil
}

// postRegister is relayclient.Register's request over hc.
func postRegister(hc *http.Client, origin, handle string, list []byte) error {
	b, _ := json.Marshal(map[string]any{"handle": handle, "device_list": list})
	res, err := hc.Post(origin+"/v1/accounts", "application/json", bytes.NewReader(b))
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode >= 300 {
		msg, _ := io.ReadAll(io.LimitReader(res.Body, 1<<10))
		return fmt.Errorf("register %s: HTTP %d %s", handle, res.StatusCode, msg)
	}
	return nil
}

func parallel(n, workers int, f func(i int) error) error {
	var wg sync.WaitGroup
	var first atomic.Value
	next := atomic.Int64{}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || first.Load() != nil {
					return
				}
				if err := f(i); err != nil {
					first.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if e := first.Load(); e != nil {
		return e.(error)
	}
	return nil
}

func getMem(origin string) (memStats, error) { return getStats(origin, true) }

func getStats(origin string, gc bool) (memStats, error) {
	var m memStats
	q := "?gc=0"
	if gc {
		q = "?gc=1"
	}
	resp, err := http.Get(origin + "/bench/mem" + q)
	if err != nil {
		return m, err
	}
	defer resp.Body.Close()
	return m, json.NewDecoder(resp.Body).Decode(&m)
}

func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	sort.Float64s(v)
	return v[min(len(v)-1, int(float64(len(v))*p))]
}

func oneRun(nIdle, nActive, window, size int, dur time.Duration, ackRate float64) (result, error) {
	var res result
	dir, err := os.MkdirTemp("", "relaybench")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	res.FsyncP50, res.FsyncP99 = rawFsync(dir)
	self, err := os.Executable()
	if err != nil {
		return res, err
	}
	child := exec.Command(self, "-serve", "-data", dir)
	child.Stderr = os.Stderr
	out, _ := child.StdoutPipe()
	if err := child.Start(); err != nil {
		return res, err
	}
	defer func() { child.Process.Signal(syscall.SIGTERM); child.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		return res, fmt.Errorf("child: %v", err)
	}
	origin := strings.TrimSpace(strings.TrimPrefix(line, "ORIGIN "))
	ctx := context.Background()

	// Accounts: idle, senders, receivers.
	total := nIdle + 2*nActive
	devs := make([]*device, total)
	if err := parallel(total, 8, func(i int) error {
		d, err := newAccount(origin, fmt.Sprintf("u%06d", i))
		devs[i] = d
		return err
	}); err != nil {
		return res, err
	}
	before, err := getMem(origin)
	if err != nil {
		return res, err
	}
	idle := make([]*relayclient.Client, nIdle)
	if err := parallel(nIdle, 16, func(i int) error {
		c, err := relayclient.Dial(ctx, origin, devs[i].handle, devs[i].dev)
		idle[i] = c
		return err
	}); err != nil {
		return res, err
	}
	time.Sleep(200 * time.Millisecond)
	after, err := getMem(origin)
	if err != nil {
		return res, err
	}
	if os.Getenv("RELAYBENCH_VERBOSE") != "" {
		fmt.Fprintf(os.Stderr, "idle: goroutines %d→%d, stack %d→%d KiB, heap+stack %d→%d KiB\n", before.Conns, after.Conns,
			before.Stack>>10, after.Stack>>10, before.HeapStack>>10, after.HeapStack>>10)
	}
	res.IdleKiB = float64(int64(after.HeapStack)-int64(before.HeapStack)) / float64(nIdle) / 1024
	res.IdleRSSKiB = float64(int64(after.RSS)-int64(before.RSS)) / float64(nIdle) / 1024
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()

	senders := make([]*relayclient.Client, nActive)
	receivers := make([]*relayclient.Client, nActive)
	if err := parallel(2*nActive, 16, func(i int) error {
		d := devs[nIdle+i]
		c, err := relayclient.Dial(ctx, origin, d.handle, d.dev)
		if i < nActive {
			senders[i] = c
		} else {
			receivers[i-nActive] = c
		}
		return err
	}); err != nil {
		return res, err
	}
	defer func() {
		for _, c := range append(senders, receivers...) {
			c.Close()
		}
	}()

	// Receivers: ack everything, record delivery latency.
	var received atomic.Int64
	var latMu sync.Mutex
	var lats []float64
	recording := atomic.Bool{}
	var rwg sync.WaitGroup
	for _, c := range receivers {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			var seqs []uint64
			for e := range c.Envelopes() {
				if len(e.Payload) >= 8 && recording.Load() {
					sent := int64(binary.BigEndian.Uint64(e.Payload))
					l := float64(time.Now().UnixNano()-sent) / 1e6
					latMu.Lock()
					lats = append(lats, l)
					latMu.Unlock()
				}
				received.Add(1)
				seqs = append(seqs, e.Seq)
				// Ack in batches: whatever has arrived, up to a frame.
				if len(c.Envelopes()) == 0 || len(seqs) == relay.MaxAcks {
					if c.Ack(ctx, seqs...) != nil {
						return
					}
					seqs = seqs[:0]
				}
			}
		}()
	}

	payload := func() []byte {
		p := make([]byte, size)
		rand.Read(p[8:])
		binary.BigEndian.PutUint64(p, uint64(time.Now().UnixNano()))
		return p
	}

	// Phase A: full load.
	stopA := make(chan struct{})
	var swg sync.WaitGroup
	for i, c := range senders {
		to := relay.Addr{Handle: devs[nIdle+nActive+i].handle, Device: devs[nIdle+nActive+i].dev.ID}
		for w := 0; w < window; w++ {
			swg.Add(1)
			go func() {
				defer swg.Done()
				for {
					select {
					case <-stopA:
						return
					default:
					}
					var id [16]byte
					rand.Read(id[:])
					if _, err := c.Send(ctx, id, []relay.Sealed{{To: to, Payload: payload()}}); err != nil {
						fmt.Fprintln(os.Stderr, "send:", err)
						return
					}
				}
			}()
		}
	}
	time.Sleep(time.Second) // warm-up
	if p := os.Getenv("RELAYBENCH_PROFILE"); p != "" && os.Getenv("RELAYBENCH_PROFILE_PACED") == "" {
		go func() {
			resp, err := http.Get(origin + "/debug/pprof/profile?seconds=3")
			if err == nil {
				f, _ := os.Create(p)
				io.Copy(f, resp.Body)
				f.Close()
				resp.Body.Close()
			}
		}()
	}
	memA, _ := getStats(origin, false)
	recording.Store(true)
	r0 := received.Load()
	t0 := time.Now()
	time.Sleep(dur)
	r1 := received.Load()
	el := time.Since(t0)
	recording.Store(false)
	memB, _ := getStats(origin, false)
	close(stopA)
	swg.Wait()
	res.Throughput = float64(r1-r0) / el.Seconds()
	if memB.Commits > memA.Commits {
		res.PerCommit = float64(memB.Ops-memA.Ops) / float64(memB.Commits-memA.Commits)
		res.CommitBusy = float64(memB.CommitNs-memA.CommitNs) / float64(el)
		res.CommitMs = float64(memB.CommitNs-memA.CommitNs) / 1e6 / float64(memB.Commits-memA.Commits)
	}
	latMu.Lock()
	res.DeliveryP50, res.DeliveryP99 = percentile(lats, 0.50), percentile(lats, 0.99)
	lats = nil
	latMu.Unlock()
	if err := drained(origin); err != nil {
		return res, err
	}

	// Phase B: paced sends at ackRate (default: half the target rate);
	// time to durable ack.
	if ackRate <= 0 {
		ackRate = res.Throughput / 2
	}
	perSender := ackRate / float64(nActive)
	interval := time.Duration(float64(time.Second) / perSender)
	stopB := make(chan struct{})
	var ackMu sync.Mutex
	var acks []float64
	var sentB atomic.Int64
	for i, c := range senders {
		to := relay.Addr{Handle: devs[nIdle+nActive+i].handle, Device: devs[nIdle+nActive+i].dev.ID}
		swg.Add(1)
		go func() {
			defer swg.Done()
			// Stagger the senders so their ticks do not line up.
			time.Sleep(time.Duration(i) * interval / time.Duration(nActive))
			t := time.NewTicker(interval)
			defer t.Stop()
			inflight := make(chan struct{}, 64)
			for {
				select {
				case <-stopB:
					return
				case <-t.C:
				}
				select {
				case inflight <- struct{}{}:
				default:
					continue // falling behind: skip rather than queue
				}
				go func() {
					defer func() { <-inflight }()
					var id [16]byte
					rand.Read(id[:])
					start := time.Now()
					if _, err := c.Send(ctx, id, []relay.Sealed{{To: to, Payload: payload()}}); err != nil {
						return
					}
					ackMu.Lock()
					acks = append(acks, float64(time.Since(start).Microseconds())/1000)
					ackMu.Unlock()
					sentB.Add(1)
				}()
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	ackMu.Lock()
	acks = acks[:0]
	ackMu.Unlock()
	s0 := sentB.Load()
	memC, _ := getStats(origin, false)
	if p := os.Getenv("RELAYBENCH_PROFILE"); p != "" && os.Getenv("RELAYBENCH_PROFILE_PACED") != "" {
		go func() {
			resp, err := http.Get(origin + "/debug/pprof/profile?seconds=3")
			if err == nil {
				f, _ := os.Create(p)
				io.Copy(f, resp.Body)
				f.Close()
				resp.Body.Close()
			}
		}()
	}
	t0 = time.Now()
	time.Sleep(dur)
	if memD, err := getStats(origin, false); err == nil && memD.Commits > memC.Commits {
		res.PacedPerCommit = float64(memD.Ops-memC.Ops) / float64(memD.Commits-memC.Commits)
		res.PacedCommitMs = float64(memD.CommitNs-memC.CommitNs) / 1e6 / float64(memD.Commits-memC.Commits)
	}
	res.HalfRate = float64(sentB.Load()-s0) / time.Since(t0).Seconds()
	res.Load = loadAvg()
	ackMu.Lock()
	res.AckP50, res.AckP99 = percentile(acks, 0.50), percentile(acks, 0.99)
	ackMu.Unlock()
	if os.Getenv("RELAYBENCH_VERBOSE") != "" {
		if resp, err := http.Get(origin + "/metrics"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, l := range strings.Split(string(b), "\n") {
				if strings.HasPrefix(l, "parley_relay_durable_ack_seconds") {
					fmt.Fprintln(os.Stderr, l)
				}
			}
		}
	}
	close(stopB)
	swg.Wait()
	if err := drained(origin); err != nil {
		return res, err
	}
	return res, nil
}

// loadAvg is the 1-minute load average (0 where /proc is missing).
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// drained waits until every accepted envelope was acked and deleted.
func drained(origin string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		m, err := getStats(origin, false)
		if err != nil {
			return err
		}
		if m.Queued == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("relay queue did not drain: %d envelopes left", m.Queued)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// rawFsync measures 4 KiB write+fsync latency in dir: the disk's floor
// under every durable ack, reported beside the relay's figures because
// this machine's disk is shared.
func rawFsync(dir string) (p50, p99 float64) {
	f, err := os.CreateTemp(dir, "fsync")
	if err != nil {
		return 0, 0
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	var d []float64
	for i := 0; i < 500; i++ {
		t := time.Now()
		f.WriteAt(buf, int64(i%64)*4096)
		f.Sync()
		d = append(d, float64(time.Since(t).Microseconds())/1000)
	}
	return percentile(d, 0.5), percentile(d, 0.99)
}
