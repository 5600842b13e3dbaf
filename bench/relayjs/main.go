// Command relayjs is the baseline for bench/relaybench: the same workload on
// NATS JetStream with fsync on every write (sync_interval: always), which is
// what an operator would otherwise pick for durable per-device queues.
//
// One work-queue stream on file storage; each of -senders publishers keeps
// -window publishes in flight to its own receiver's subject; each receiver
// is a durable consumer with explicit acks, so a message is deleted once
// acked, as in the relay. The server runs in a child process, like the
// relay in relaybench. It lives in its own module so the server's
// dependencies stay out of Parley's go.mod.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func main() {
	serve := flag.Bool("serve", false, "run only the NATS server (child mode)")
	data := flag.String("data", "", "JetStream store directory (child mode)")
	senders := flag.Int("senders", 100, "publishers (each with its own receiver)")
	window := flag.Int("window", 8, "publishes in flight per sender")
	size := flag.Int("size", 1024, "payload bytes")
	dur := flag.Duration("duration", 5*time.Second, "measured time per phase")
	runs := flag.Int("runs", 3, "runs; figures are medians")
	jsonOut := flag.String("json", "", "also write the results as JSON to this file")
	flag.Parse()
	if *serve {
		if err := serveChild(*data); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	var rs []result
	for i := 0; i < *runs; i++ {
		r, err := oneRun(*senders, *window, *size, *dur)
		if err != nil {
			fmt.Fprintln(os.Stderr, "run failed:", err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "jetstream run %d: %.0f msg/s, delivery p50 %.2f p99 %.2f ms, publish ack (half load %.0f/s) p50 %.2f p99 %.2f ms\n",
			i+1, r.Throughput, r.DeliveryP50, r.DeliveryP99, r.HalfRate, r.AckP50, r.AckP99)
		rs = append(rs, r)
	}
	m := medians(rs)
	fmt.Printf("JetStream (nats-server v2.15.2, fsync always), %d senders/%d receivers, %d B, median of %d runs\n", *senders, *senders, *size, *runs)
	fmt.Printf("  end-to-end messages/s (full load)    %10.0f\n", m.Throughput)
	fmt.Printf("  delivery latency p50 / p99 (full)    %7.2f ms / %.2f ms\n", m.DeliveryP50, m.DeliveryP99)
	fmt.Printf("  publish ack p50 / p99 (half load)    %7.2f ms / %.2f ms\n", m.AckP50, m.AckP99)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(map[string]any{"runs": rs, "median": m}, "", "  ")
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
	}
}

func serveChild(dir string) error {
	opts := &server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir,
		SyncAlways: true, NoLog: true, NoSigs: true,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return err
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		return fmt.Errorf("nats server not ready")
	}
	fmt.Println("URL", s.ClientURL())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
	s.Shutdown()
	return nil
}

func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	sort.Float64s(v)
	return v[min(len(v)-1, int(float64(len(v))*p))]
}

func oneRun(senders, window, size int, dur time.Duration) (result, error) {
	var res result
	dir, err := os.MkdirTemp("", "relayjs")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	self, _ := os.Executable()
	child := exec.Command(self, "-serve", "-data", dir)
	child.Stderr = os.Stderr
	out, _ := child.StdoutPipe()
	if err := child.Start(); err != nil {
		return res, err
	}
	defer func() { child.Process.Signal(syscall.SIGTERM); child.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		return res, err
	}
	url := strings.TrimSpace(strings.TrimPrefix(line, "URL "))
	ctx := context.Background()

	// One connection per sender and per receiver, like one socket per device.
	conns := make([]*nats.Conn, 2*senders)
	for i := range conns {
		if conns[i], err = nats.Connect(url); err != nil {
			return res, err
		}
		defer conns[i].Close()
	}
	js0, _ := jetstream.New(conns[0])
	if _, err := js0.CreateStream(ctx, jetstream.StreamConfig{
		Name: "MAIL", Subjects: []string{"mail.>"}, Storage: jetstream.FileStorage,
		Retention: jetstream.WorkQueuePolicy,
	}); err != nil {
		return res, err
	}

	var received atomic.Int64
	var latMu sync.Mutex
	var lats []float64
	var recording atomic.Bool
	for i := 0; i < senders; i++ {
		js, _ := jetstream.New(conns[senders+i])
		cons, err := js.CreateOrUpdateConsumer(ctx, "MAIL", jetstream.ConsumerConfig{
			Durable: fmt.Sprintf("dev%d", i), FilterSubject: fmt.Sprintf("mail.%d", i),
			AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 512,
		})
		if err != nil {
			return res, err
		}
		cc, err := cons.Consume(func(m jetstream.Msg) {
			if d := m.Data(); len(d) >= 8 && recording.Load() {
				l := float64(time.Now().UnixNano()-int64(binary.BigEndian.Uint64(d))) / 1e6
				latMu.Lock()
				lats = append(lats, l)
				latMu.Unlock()
			}
			m.Ack()
			received.Add(1)
		})
		if err != nil {
			return res, err
		}
		defer cc.Stop()
	}
	payload := func() []byte {
		p := make([]byte, size)
		rand.Read(p[8:])
		binary.BigEndian.PutUint64(p, uint64(time.Now().UnixNano()))
		return p
	}

	// Full load: each sender keeps `window` synchronous publishes in flight.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < senders; i++ {
		js, _ := jetstream.New(conns[i])
		subj := fmt.Sprintf("mail.%d", i)
		for w := 0; w < window; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := js.Publish(ctx, subj, payload()); err != nil {
						return
					}
				}
			}()
		}
	}
	time.Sleep(time.Second)
	recording.Store(true)
	r0, t0 := received.Load(), time.Now()
	time.Sleep(dur)
	res.Throughput = float64(received.Load()-r0) / time.Since(t0).Seconds()
	recording.Store(false)
	close(stop)
	wg.Wait()
	latMu.Lock()
	res.DeliveryP50, res.DeliveryP99 = percentile(lats, 0.5), percentile(lats, 0.99)
	latMu.Unlock()
	time.Sleep(500 * time.Millisecond)

	// Half load: paced publishes, time to the server's durable ack.
	interval := time.Duration(float64(time.Second) / (res.Throughput / 2 / float64(senders)))
	stop = make(chan struct{})
	var ackMu sync.Mutex
	var acks []float64
	var sent atomic.Int64
	for i := 0; i < senders; i++ {
		js, _ := jetstream.New(conns[i])
		subj := fmt.Sprintf("mail.%d", i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * interval / time.Duration(senders))
			t := time.NewTicker(interval)
			defer t.Stop()
			inflight := make(chan struct{}, 64)
			for {
				select {
				case <-stop:
					return
				case <-t.C:
				}
				select {
				case inflight <- struct{}{}:
				default:
					continue
				}
				go func() {
					defer func() { <-inflight }()
					start := time.Now()
					if _, err := js.Publish(ctx, subj, payload()); err != nil {
						return
					}
					ackMu.Lock()
					acks = append(acks, float64(time.Since(start).Microseconds())/1000)
					ackMu.Unlock()
					sent.Add(1)
				}()
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	ackMu.Lock()
	acks = acks[:0]
	ackMu.Unlock()
	s0, t0 := sent.Load(), time.Now()
	time.Sleep(dur)
	res.HalfRate = float64(sent.Load()-s0) / time.Since(t0).Seconds()
	ackMu.Lock()
	res.AckP50, res.AckP99 = percentile(acks, 0.5), percentile(acks, 0.99)
	ackMu.Unlock()
	close(stop)
	wg.Wait()
	return res, nil
}
