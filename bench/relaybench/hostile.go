package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-im/parley/relay"
	"github.com/parley-im/parley/relay/relayclient"
)

// The hostile mode (issue 14's "Done means"): issue 14's items 1–4 at once
// from floodAddrs loopback addresses against a parley-server binary with
// its default limits, while a legitimate pair of devices keeps talking,
// and then a check that the flooded mailbox works again.

const (
	// hostileRSSBound is the relay's resident set the flood must stay
	// under: relayserver.DefaultBytesInFlight (256 MiB, every socket's
	// envelope pages together) plus as much again for the Go heap, the
	// connections' buffers and the store's mapped pages, which RSS counts.
	hostileRSSBound = 512 << 20
	// healthzTarget is the longest /healthz may take under the flood.
	healthzTarget = 100 * time.Millisecond
	// sampleEvery is how often /healthz (and the RSS) is sampled.
	sampleEvery = 100 * time.Millisecond
	// probeTimeout ends one probe; a probe that took it counts as that.
	probeTimeout = 2 * time.Second
	// floodAddrs is how many loopback addresses the flood comes from.
	floodAddrs = 100
	// legitEvery is the legitimate sender's pace: 20 messages a second.
	legitEvery = 50 * time.Millisecond
	// victimSends is how many legitimate sends test the victim's mailbox
	// after the flood.
	victimSends = 20
)

// hostileConfig is the flood's size; the flags of the same names set it.
type hostileConfig struct {
	bin      string
	dur      time.Duration
	stalled  int // stalled 1-byte link PUTs held per address (and one 8 MiB blob PUT)
	preAuth  int // pre-login sockets with a 1 MiB frame begun, per address of the upper half
	slow     int // slow-reading accounts, one per address from the first
	queued   int // relay.MaxPayload envelopes queued to each slow reader
	readRate int // bytes a second a slow reader takes
	ttlSends int // ttl_s = 1 sends into the victim's mailbox, from 10 addresses
}

// ttlAddrs is how many addresses (after the slow readers') send the
// short-TTL flood.
const ttlAddrs = 10

// probes are one sampled endpoint's answer times, in ms.
type probes struct {
	mu  sync.Mutex
	ms  []float64
	bad int // errors and timeouts (counted at probeTimeout in ms)
}

// probe times one GET of url and prints "index ms ok" for the parent.
func probe(hc *http.Client, index int, url string, out chan<- string) {
	t0 := time.Now()
	res, err := hc.Get(url)
	if err == nil {
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	ok := err == nil && res.StatusCode == http.StatusOK
	out <- fmt.Sprintf("%d %.3f %t", index, float64(time.Since(t0).Microseconds())/1000, ok)
}

// runProbes is the -probe child: every sampleEvery it GETs each of urls
// on a new connection (as a load balancer's health check would) and
// prints each answer time. In its own process, the flood's goroutines
// in the parent do not delay the probes.
func runProbes(urls []string) {
	hc := &http.Client{Timeout: probeTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
	out := make(chan string, 64)
	go func() {
		for l := range out {
			fmt.Println(l)
		}
	}()
	for t := time.NewTicker(sampleEvery); ; <-t.C {
		for i, u := range urls {
			go probe(hc, i, u, out)
		}
	}
}

// add records one answer (a failure at probeTimeout or more).
func (p *probes) add(ms float64, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !ok {
		p.bad++
		ms = max(ms, float64(probeTimeout.Milliseconds()))
	}
	p.ms = append(p.ms, ms)
}

// startProbes runs the -probe child on urls and feeds its answers to ps.
func startProbes(urls []string, ps []*probes) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-probe", strings.Join(urls, ","))
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var i int
			var ms float64
			var ok bool
			if _, err := fmt.Sscan(sc.Text(), &i, &ms, &ok); err == nil && i < len(ps) {
				ps[i].add(ms, ok)
			}
		}
	}()
	return cmd, nil
}

// since returns a summary of the samples from index i on, and the index
// to pass next time.
func (p *probes) since(i int) (string, float64, int) {
	p.mu.Lock()
	v := append([]float64(nil), p.ms[min(i, len(p.ms)):]...)
	bad, n := p.bad, len(p.ms)
	p.mu.Unlock()
	over := 0
	for _, x := range v {
		if x > float64(healthzTarget.Milliseconds()) {
			over++
		}
	}
	mx := percentile(v, 1)
	return fmt.Sprintf("%d samples, p50 %.1f ms, p99 %.1f ms, max %.1f ms, %d over %v, %d failed", len(v),
		percentile(v, 0.5), percentile(v, 0.99), mx, over, healthzTarget, bad), mx, n
}

// legitPair counts the legitimate pair's messages.
type legitPair struct {
	sent, failed, delivered atomic.Int64
	mu                      sync.Mutex
	lats                    []float64
}

// talk sends from a to b every legitEvery until ctx ends, and records
// what b receives; it returns once b has everything or 10 s after.
func (l *legitPair) talk(ctx context.Context, a, b *relayclient.Client, to relay.Addr) {
	go func() {
		for e := range b.Envelopes() {
			if len(e.Payload) >= 8 {
				lat := float64(time.Now().UnixNano()-int64(binary.BigEndian.Uint64(e.Payload))) / 1e6
				l.mu.Lock()
				l.lats = append(l.lats, lat)
				l.mu.Unlock()
			}
			l.delivered.Add(1)
			b.Ack(context.Background(), e.Seq)
		}
	}()
	t := time.NewTicker(legitEvery)
	defer t.Stop()
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-t.C:
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if _, err := a.Send(sctx, randomID(), []relay.Sealed{{To: to, Payload: stamped(1024)}}); err != nil {
				l.failed.Add(1)
			} else {
				l.sent.Add(1)
			}
			cancel()
		}
	}
	for end := time.Now().Add(10 * time.Second); l.delivered.Load() < l.sent.Load() && time.Now().Before(end); {
		time.Sleep(50 * time.Millisecond)
	}
}

func (l *legitPair) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprintf("%d sent, %d send errors, %d delivered, latency p50 %.1f ms, p99 %.1f ms, max %.1f ms",
		l.sent.Load(), l.failed.Load(), l.delivered.Load(), percentile(l.lats, 0.5), percentile(l.lats, 0.99), percentile(l.lats, 1))
}

func randomID() (id [16]byte) {
	rand.Read(id[:])
	return id
}

// stamped is a payload of size bytes that starts with the time it was made.
func stamped(size int) []byte {
	p := make([]byte, size)
	binary.BigEndian.PutUint64(p, uint64(time.Now().UnixNano()))
	return p
}

// statusKiB reads one "Vm…:" or "Rss…:" line of /proc/pid/status, in KiB.
func statusKiB(pid int, key string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == key+":" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

// cpuTicks is the process's user+system time in clock ticks (1/100 s).
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return u + k
}

// startServer starts bin on a free loopback port with data in dir and
// waits for /healthz; env is added to its environment.
func startServer(bin, dir string, env ...string) (*exec.Cmd, string, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(bin, "-addr", addr, "-data", dir)
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	if _, err := healthzTime(addr, 10*time.Second); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, "", fmt.Errorf("%s did not start: %w", bin, err)
	}
	return cmd, addr, nil
}

// runDelay is the time the process's threads together spent runnable but
// waiting for a CPU (the second field of each thread's schedstat): what
// CPU contention costs it, as opposed to a wait of its own.
func runDelay(pid int) time.Duration {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	var ns int64
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if f := strings.Fields(string(b)); err == nil && len(f) >= 2 {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			ns += n
		}
	}
	return time.Duration(ns)
}

// listenDrops is the kernel's count of connections dropped because a
// listen queue was full (TcpExt ListenDrops), machine-wide.
func listenDrops() int64 {
	b, _ := os.ReadFile("/proc/net/netstat")
	l := strings.Split(string(b), "\n")
	for i := 0; i+1 < len(l); i += 2 {
		names, vals := strings.Fields(l[i]), strings.Fields(l[i+1])
		for j := range names {
			if names[j] == "ListenDrops" && j < len(vals) {
				n, _ := strconv.ParseInt(vals[j], 10, 64)
				return n
			}
		}
	}
	return 0
}

// finWait counts the relay's sockets (local port port) in FIN-WAIT-1 and
// their unsent bytes, from /proc/net/tcp: sockets the relay has closed
// while their peer had not read what the kernel still holds for it. A
// slow reader only sees the close after that backlog, so this, not the
// client, tells whether the relay let go of it.
func finWait(port int) (n int, unsent int64) {
	b, _ := os.ReadFile("/proc/net/tcp")
	for _, l := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(l)
		if len(f) < 5 || f[3] != "04" || !strings.HasSuffix(f[1], fmt.Sprintf(":%04X", port)) {
			continue
		}
		n++
		if tx, _, ok := strings.Cut(f[4], ":"); ok {
			v, _ := strconv.ParseInt(tx, 16, 64)
			unsent += v
		}
	}
	return n, unsent
}

// metric is the value of one line of a Prometheus text page ("?" if absent).
func metric(url, name string) string {
	res, err := http.Get(url)
	if err != nil {
		return "?"
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == name {
			return f[1]
		}
	}
	return "?"
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// serveControl is the -control child: a trivial HTTP server in its own
// process. Sampled beside /healthz, it tells the machine's CPU contention
// (both slow) from a wait inside the relay (only /healthz slow).
func serveControl() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println("ORIGIN", "http://"+ln.Addr().String())
	return http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") }))
}

func startControl() (*exec.Cmd, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(self, "-control")
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, "", err
	}
	return cmd, strings.TrimSpace(strings.TrimPrefix(line, "ORIGIN ")), nil
}

func loadLine() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// runHostile runs the flood once and prints its figures.
func runHostile(cfg hostileConfig) error {
	dir, err := os.MkdirTemp("", "relaybench-hostile")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	maddr, err := freeAddr()
	if err != nil {
		return err
	}
	srv, addr, err := startServer(cfg.bin, dir, "PARLEY_METRICS_ADDR="+maddr)
	if err != nil {
		return err
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	pid, origin := srv.Process.Pid, "http://"+addr
	ctl, ctlOrigin, err := startControl()
	if err != nil {
		return err
	}
	defer func() { ctl.Process.Kill(); ctl.Wait() }()
	loadBefore := loadLine()

	// Accounts: the pair and the victim from 127.0.0.1, the slow readers
	// and the short-TTL senders each from its own flooding address.
	var a, b, victim *device
	for i, p := range []**device{&a, &b, &victim} {
		if *p, err = newAccount(origin, []string{"legita", "legitb", "victim"}[i]); err != nil {
			return fmt.Errorf("registering the legitimate devices: %w", err)
		}
	}
	// flooders: the slow readers, the short-TTL senders, then one loader
	// per slow reader (from its address) that queues its envelopes.
	flooders := make([]*device, 2*cfg.slow+ttlAddrs)
	if err := parallel(len(flooders), 8, func(i int) error {
		d, err := newAccountVia(clientFrom(floodAddr(i%(cfg.slow+ttlAddrs)), 0), origin, fmt.Sprintf("flood%03d", i))
		flooders[i] = d
		return err
	}); err != nil {
		return fmt.Errorf("registering the flooding accounts: %w", err)
	}
	ctx := context.Background()
	t0 := time.Now()
	if err := parallel(cfg.slow, 4, func(i int) error {
		return queueFor(ctx, origin, floodAddr(i), flooders[cfg.slow+ttlAddrs+i], flooders[i], cfg.queued)
	}); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "hostile: %d × %d KiB queued for the slow readers in %.1f s; RSS %d MiB\n",
		cfg.slow*cfg.queued, relay.MaxPayload>>10, time.Since(t0).Seconds(), statusKiB(pid, "VmRSS")>>10)

	ca, err := relayclient.Dial(ctx, origin, a.handle, a.dev)
	if err != nil {
		return err
	}
	defer ca.Close()
	cb, err := relayclient.Dial(ctx, origin, b.handle, b.dev)
	if err != nil {
		return err
	}
	defer cb.Close()

	// Samplers: /healthz, the metrics listener and the control server
	// from the -probe child, and the RSS from here.
	var hz, met, ctrl probes
	var peakFlood atomic.Int64
	prober, err := startProbes([]string{origin + "/healthz", "http://" + maddr + "/metrics", ctlOrigin + "/"}, []*probes{&hz, &met, &ctrl})
	if err != nil {
		return err
	}
	sctx, stopSampling := context.WithCancel(ctx)
	var swg sync.WaitGroup
	swg.Add(1)
	go func() {
		defer swg.Done()
		for t := time.NewTicker(sampleEvery); sctx.Err() == nil; <-t.C {
			if r := statusKiB(pid, "VmRSS") << 10; r > peakFlood.Load() {
				peakFlood.Store(r)
			}
		}
	}()

	// The flood.
	fctx, stopFlood := context.WithTimeout(ctx, cfg.dur)
	defer stopFlood()
	var small, big, pre, slow floodCounts
	var ttlOK, ttlFull atomic.Int64
	var fwg sync.WaitGroup
	spawn := func(f func()) {
		fwg.Add(1)
		go func() { defer fwg.Done(); f() }()
	}
	cpu0, self0, wait0, drops0, ft0 := cpuTicks(pid), cpuTicks(os.Getpid()), runDelay(pid), listenDrops(), time.Now()
	for i := 0; i < floodAddrs; i++ {
		ip := floodAddr(i)
		for k := 0; k < cfg.stalled; k++ {
			spawn(func() { stalledBody(fctx, addr, ip, false, &small) })
		}
		spawn(func() { stalledBody(fctx, addr, ip, true, &big) })
		if i >= floodAddrs/2 {
			for k := 0; k < cfg.preAuth; k++ {
				spawn(func() { preAuthFrame(fctx, addr, ip, &pre) })
			}
		}
		if i < cfg.slow {
			d := flooders[i]
			spawn(func() { slowReader(fctx, origin, ip, d, cfg.readRate, &slow) })
		}
	}
	to := relay.Addr{Handle: victim.handle, Device: victim.dev.ID}
	for j := 0; j < ttlAddrs; j++ {
		i := cfg.slow + j
		spawn(func() { ttlFlood(fctx, origin, floodAddr(i), flooders[i], to, cfg.ttlSends/ttlAddrs, &ttlOK, &ttlFull) })
	}
	var pair legitPair
	pairDone := make(chan struct{})
	go func() {
		pair.talk(fctx, ca, cb, relay.Addr{Handle: b.handle, Device: b.dev.ID})
		close(pairDone)
	}()
	next := 0
	for tick := time.NewTicker(5 * time.Second); fctx.Err() == nil; {
		select {
		case <-fctx.Done():
		case <-tick.C:
			var s string
			s, _, next = hz.since(next)
			fmt.Fprintf(os.Stderr, "hostile %3.0fs: RSS %d MiB; /healthz last 5 s: %s; pair %d/%d delivered; load %s\n",
				time.Since(ft0).Seconds(), statusKiB(pid, "VmRSS")>>10, s, pair.delivered.Load(), pair.sent.Load(), loadLine())
		}
	}
	_, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	finN, finBytes := finWait(port)
	fwg.Wait()
	fdur := time.Since(ft0)
	cpu := float64(cpuTicks(pid)-cpu0) / 100 / fdur.Seconds()
	self := float64(cpuTicks(os.Getpid())-self0) / 100 / fdur.Seconds()
	wait, drops := runDelay(pid)-wait0, listenDrops()-drops0
	<-pairDone
	prober.Process.Kill()
	prober.Wait()
	stopSampling()
	swg.Wait()
	loadAfter := loadLine()

	vs := victimCheck(ctx, origin, ca, victim)
	hzs, hzMax, _ := hz.since(0)
	mets, _, _ := met.since(0)
	ctls, _, _ := ctrl.since(0)
	hwm := statusKiB(pid, "VmHWM") << 10
	slowClosed := metric("http://"+maddr+"/metrics", "parley_relay_slow_readers_closed_total")
	verdict := func(ok bool) string {
		if ok {
			return "pass"
		}
		return "FAIL"
	}
	fmt.Printf("hostile flood against %s (default limits) from %d loopback addresses for %v, on %d cores; load average %s before, %s after\n",
		cfg.bin, floodAddrs, cfg.dur, runtime.NumCPU(), loadBefore, loadAfter)
	fmt.Printf("  stalled 1-byte link PUTs (%d per address)   %s\n", cfg.stalled, &small)
	fmt.Printf("  stalled 8 MiB blob PUTs (1 per address)     %s\n", &big)
	fmt.Printf("  pre-login sockets, 1 MiB frame begun (%d per address, %d addresses)   %s\n", cfg.preAuth, floodAddrs/2, &pre)
	fmt.Printf("  slow readers (%d, %d × %d KiB queued each, reading %d B/s)   %s (a client sees a close only after the kernel's backlog)\n",
		cfg.slow, cfg.queued, relay.MaxPayload>>10, cfg.readRate, &slow)
	fmt.Printf("    as the flood ended: %d relay sockets closed by the relay with %.1f MiB unsent left to the kernel (FIN-WAIT-1); closed by the drain timeout (metric): %s\n",
		finN, float64(finBytes)/(1<<20), slowClosed)
	fmt.Printf("  short-TTL sends into the victim (ttl_s=1, %d addresses)   %d accepted, %d mailbox_full\n", ttlAddrs, ttlOK.Load(), ttlFull.Load())
	fmt.Printf("  relay RSS peak (VmHWM) %d MiB, sampled peak during the flood %d MiB; bound %d MiB: %s\n",
		hwm>>20, peakFlood.Load()>>20, hostileRSSBound>>20, verdict(hwm < hostileRSSBound))
	fmt.Printf("  relay CPU during the flood               %.0f%% of one core (the flooding bench: %.0f%%); the relay's threads waited %.1f s for a CPU in %.0f s; %d connections dropped by full listen queues (machine-wide)\n",
		100*cpu, 100*self, wait.Seconds(), fdur.Seconds(), drops)
	fmt.Printf("  /healthz every %v, new connection each   %s; target every answer within %v: %s\n", sampleEvery, hzs, healthzTarget, verdict(hzMax <= float64(healthzTarget.Milliseconds())))
	fmt.Printf("  relay /metrics listener (same process, no store, no connection cap)   %s\n", mets)
	fmt.Printf("  control server (another process, same machine)   %s\n", ctls)
	fmt.Printf("  legitimate pair (20/s, 1 KiB)             %s: %s\n", &pair, verdict(pair.failed.Load() == 0 && pair.delivered.Load() == pair.sent.Load()))
	fmt.Printf("  victim after the flood                    %s\n", vs)
	return nil
}

// victimCheck is issue 14 item 3 after the flood. relay.MinTTL raised
// every ttl_s = 1 envelope to an hour, so while the victim is offline its
// mailbox may be full; the check is that a login takes the flood out (the
// victim acks it) and legitimate sends are then accepted and delivered.
func victimCheck(ctx context.Context, origin string, from *relayclient.Client, victim *device) string {
	to := []relay.Sealed{{To: relay.Addr{Handle: victim.handle, Device: victim.dev.ID}, Payload: stamped(64)}}
	offline := "accepted"
	if _, err := from.Send(ctx, randomID(), to); err != nil {
		offline = err.Error()
	}
	t0 := time.Now()
	cv, err := relayclient.Dial(ctx, origin, victim.handle, victim.dev)
	if err != nil {
		return "login failed: " + err.Error()
	}
	defer cv.Close()
	drained := 0
	for quiet := time.NewTimer(3 * time.Second); ; {
		select {
		case e := <-cv.Envelopes():
			drained++
			cv.Ack(ctx, e.Seq)
			quiet.Reset(3 * time.Second)
			continue
		case <-quiet.C:
		}
		break
	}
	took := time.Since(t0) - 3*time.Second
	ok := 0
	for i := 0; i < victimSends; i++ {
		if _, err := from.Send(ctx, randomID(), []relay.Sealed{{To: to[0].To, Payload: stamped(64)}}); err == nil {
			ok++
		}
	}
	got := 0
	for end := time.After(10 * time.Second); got < ok; {
		select {
		case e := <-cv.Envelopes():
			got++
			cv.Ack(ctx, e.Seq)
		case <-end:
			ok = -ok // stop
		}
	}
	return fmt.Sprintf("a send while it was offline: %s; its login took %d envelopes in %.1f s; then %d/%d sends accepted, %d delivered",
		offline, drained, took.Seconds(), abs(ok), victimSends, got)
}

func abs(n int) int { return max(n, -n) }
