package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Names of the fault proxies: one per server the workers reach.
const (
	proxyClickHouse = "clickhouse"
	proxyTemporal   = "temporal"
	proxyKafka      = "kafka" // kafka-0, kafka-1, kafka-2: one per broker
)

// proxies are toxiproxy proxies between the workers and every server, run
// in this process: faults are toxics added to them for a while.
type proxies struct {
	byName map[string]*toxiproxy.Proxy
	kafka  []string // names of the brokers' proxies
}

func newProxies(s *soak) (*proxies, error) {
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	ps := &proxies{byName: map[string]*toxiproxy.Proxy{}}
	listen, advertised := s.brokerAddrs()
	type route struct{ name, listen, upstream string }
	routes := []route{
		{proxyClickHouse, "127.0.0.1:" + strconv.Itoa(s.o.proxyPort), s.stack.ClickHouseAddr},
		{proxyTemporal, "127.0.0.1:" + strconv.Itoa(s.o.proxyPort+1), s.stack.TemporalAddress},
	}
	for i := range listen {
		name := fmt.Sprintf("%s-%d", proxyKafka, i)
		routes = append(routes, route{name, advertised[i], listen[i]})
		ps.kafka = append(ps.kafka, name)
	}
	for _, r := range routes {
		p := toxiproxy.NewProxy(srv, r.name, r.listen, r.upstream)
		if err := srv.Collection.Add(p, true); err != nil {
			ps.close()
			return nil, fmt.Errorf("fault proxy %s on %s: %w", r.name, r.listen, err)
		}
		ps.byName[r.name] = p
	}
	return ps, nil
}

func (ps *proxies) addr(name string) string { return ps.byName[name].Listen }

// kafkaAddr is the bootstrap address of the brokers through the proxies.
func (ps *proxies) kafkaAddr() string { return ps.addr(ps.kafka[0]) }

func (ps *proxies) close() {
	for _, p := range ps.byName {
		p.Stop()
	}
}

// toxic is a toxiproxy toxic, as its JSON API describes it.
type toxic struct {
	kind  string         // latency, bandwidth, reset_peer, timeout
	attrs map[string]int // its attributes
}

// add puts t on both directions of the named proxies.
func (ps *proxies) add(t toxic, names []string) ([]func(), error) {
	var undo []func()
	for _, name := range names {
		p := ps.byName[name]
		for _, stream := range []string{"upstream", "downstream"} {
			var attrs []string
			for k, v := range t.attrs {
				attrs = append(attrs, fmt.Sprintf("%q:%d", k, v))
			}
			id := fmt.Sprintf("%s-%s-%d", t.kind, stream, time.Now().UnixNano())
			js := fmt.Sprintf(`{"name":%q,"type":%q,"stream":%q,"toxicity":1,"attributes":{%s}}`,
				id, t.kind, stream, strings.Join(attrs, ","))
			if _, err := p.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
				for _, u := range undo {
					u()
				}
				return nil, fmt.Errorf("toxic %s on %s: %w", t.kind, name, err)
			}
			undo = append(undo, func() { _ = p.Toxics.RemoveToxic(context.Background(), id) })
		}
	}
	return undo, nil
}

// fault is one kind of fault of the soak, and how often it happened.
type fault struct {
	name  string
	times int
}

// faults counts the faults injected, in the order of their first time.
type faults struct {
	mu   sync.Mutex
	list []*fault
}

func (f *faults) count(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, x := range f.list {
		if x.name == name {
			x.times++
			return
		}
	}
	f.list = append(f.list, &fault{name, 1})
}

// step is a fault at a point of the soak (a fraction of its duration).
type step struct {
	at   float64
	name string
	do   func(ctx context.Context) error
}

// plan is the soak's schedule of faults besides the worker kills and the
// leader moves, which run all along.
func (s *soak) plan() []step {
	d := s.o.duration
	net := func(kind string, attrs map[string]int, names []string, hold time.Duration) func(context.Context) error {
		return func(ctx context.Context) error {
			undo, err := s.proxies.add(toxic{kind, attrs}, names)
			if err != nil {
				return err
			}
			defer func() {
				for _, u := range undo {
					u()
				}
			}()
			return sleep(ctx, hold)
		}
	}
	all := append([]string{proxyClickHouse, proxyTemporal}, s.proxies.kafka...)
	hold := min(15*time.Second, d/12)
	return []step{
		{0.08, "network: 300±100 ms latency, workers to every server", net("latency", map[string]int{"latency": 300, "jitter": 100}, all, hold)},
		{0.15, "network: Kafka bandwidth 64 KB/s", net("bandwidth", map[string]int{"rate": 64}, s.proxies.kafka, hold)},
		{0.22, "ClickHouse restart", func(ctx context.Context) error { return s.restartServer(ctx, "clickhouse") }},
		{0.30, "network: ClickHouse connections reset", net("reset_peer", map[string]int{"timeout": 0}, []string{proxyClickHouse}, 5*time.Second)},
		{0.36, "network: Kafka black hole", net("timeout", map[string]int{"timeout": 0}, s.proxies.kafka, hold)},
		{0.44, "Temporal restart", func(ctx context.Context) error { return s.restartServer(ctx, "temporal") }},
		{0.52, "network: Temporal connections reset", net("reset_peer", map[string]int{"timeout": 0}, []string{proxyTemporal}, 5*time.Second)},
		{0.57, "broker kill -9 and restart (3 brokers at once)", func(ctx context.Context) error {
			s.killBroker()
			if err := sleep(ctx, 2*time.Second); err != nil {
				return err
			}
			return s.startBroker(ctx)
		}},
		{0.66, fmt.Sprintf("broker stalled (SIGSTOP %s)", s.o.stall), func(ctx context.Context) error {
			if err := s.signalBroker(syscall.SIGSTOP); err != nil {
				return err
			}
			defer func() { _ = s.signalBroker(syscall.SIGCONT) }()
			return sleep(ctx, s.o.stall)
		}},
		{0.82, "network: ClickHouse black hole", net("timeout", map[string]int{"timeout": 0}, []string{proxyClickHouse}, hold)},
		{0.90, "network: 500 ms latency to Temporal", net("latency", map[string]int{"latency": 500}, []string{proxyTemporal}, hold)},
	}
}

// inject runs the fault plan and the worker kills from start until the
// soak's duration has passed, and returns the first fault that could not
// be injected (a server that did not come back).
func (s *soak) inject(ctx context.Context, start time.Time, fs *faults) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 2)
	go func() { errs <- s.killWorkers(ctx, start, fs) }()
	go func() {
		for _, st := range s.plan() {
			if err := sleep(ctx, time.Until(start.Add(time.Duration(st.at*float64(s.o.duration))))); err != nil {
				errs <- nil
				return
			}
			logf("fault: %s", st.name)
			if err := st.do(ctx); err != nil && ctx.Err() == nil {
				errs <- fmt.Errorf("fault %q: %w", st.name, err)
				return
			}
			fs.count(st.name)
		}
		errs <- nil
	}()
	var first error
	for range 2 {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	return first
}

// killWorkers kills a worker every --kill-every, in turn, and starts it
// again 2 s later, until the soak's duration has passed.
func (s *soak) killWorkers(ctx context.Context, start time.Time, fs *faults) error {
	end := start.Add(s.o.duration)
	for i := 0; ; i++ {
		if err := sleep(ctx, s.o.killEvery); err != nil || time.Now().Add(s.o.killEvery/2).After(end) {
			return nil
		}
		w := i % s.o.workers
		s.killWorker(w)
		if err := sleep(ctx, 2*time.Second); err != nil {
			return nil
		}
		if err := s.startWorker(w); err != nil {
			return err
		}
		fs.count("worker kill -9 (started again 2 s later)")
	}
}

// sleep waits d, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
