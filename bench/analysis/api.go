package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"slices"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/rtbpipe/rtbpipe/internal/cache"
	"github.com/rtbpipe/rtbpipe/internal/chstore"
	"github.com/rtbpipe/rtbpipe/internal/dashboard"
)

// apiLatency measures the dashboard API over the history: p50 and p99 of
// GET /api/minutes (the events chart) and /api/rates (CTR and eCPM by
// format) over the last hour and the last day, with 1 and 50 concurrent
// clients, without a cache, with the in-process cache and, when Debian's
// redis-server is there, with Redis.
func apiLatency(ctx context.Context, tw *tabwriter.Writer, store *chstore.Store, end time.Time, requests int) error {
	caches := []struct {
		name  string
		store func() (cache.Store, func(), error)
	}{
		{"none", func() (cache.Store, func(), error) { return nil, func() {}, nil }},
		{"in-process", func() (cache.Store, func(), error) { return cache.NewMemory(10_000), func() {}, nil }},
	}
	if bin, err := exec.LookPath("redis-server"); err == nil {
		caches = append(caches, struct {
			name  string
			store func() (cache.Store, func(), error)
		}{"redis", func() (cache.Store, func(), error) { return startRedis(ctx, bin) }})
	}
	fmt.Fprintln(tw, "\ndashboard API\trange\tclients\tcache\trequests\tp50\tp99\t")
	for _, c := range caches {
		cs, stop, err := c.store()
		if err != nil {
			return err
		}
		srv := httptest.NewServer((&dashboard.Server{Read: store, Cache: cs}).Handler())
		for _, rng := range []struct {
			name string
			d    time.Duration
		}{{"last hour", time.Hour}, {"last day", 24 * time.Hour}} {
			for _, clients := range []int{1, 50} {
				q := url.Values{"topic": {topic}, "from": {end.Add(-rng.d).Format(time.RFC3339)}, "to": {end.Format(time.RFC3339)}}
				urls := []string{srv.URL + "/api/minutes?" + q.Encode(), srv.URL + "/api/rates?by=ad_format&" + q.Encode()}
				d, err := load(ctx, urls, clients, requests)
				if err != nil {
					srv.Close()
					stop()
					return fmt.Errorf("%s, %s, %d clients: %w", c.name, rng.name, clients, err)
				}
				fmt.Fprintf(tw, "minutes + rates\t%s\t%d\t%s\t%d\t%s\t%s\t\n", rng.name, clients, c.name, len(d), ms(d[len(d)/2]), ms(d[len(d)*99/100]))
			}
		}
		srv.Close()
		stop()
	}
	return nil
}

// load sends n requests (in turn to each url) from clients goroutines at
// once and returns their latencies, sorted.
func load(ctx context.Context, urls []string, clients, n int) ([]time.Duration, error) {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}, Timeout: time.Minute}
	var mu sync.Mutex
	var out []time.Duration
	var firstErr error
	var wg sync.WaitGroup
	next := make(chan int)
	go func() {
		defer close(next)
		for i := range n {
			select {
			case next <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				start := time.Now()
				resp, err := hc.Get(urls[i%len(urls)])
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				out = append(out, time.Since(start))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	slices.Sort(out)
	return out, nil
}

// startRedis runs redis-server on a free local port for the measurement.
func startRedis(ctx context.Context, bin string) (cache.Store, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	addr := ln.Addr().(*net.TCPAddr)
	ln.Close()
	cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", fmt.Sprint(addr.Port), "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start redis-server: %w", err)
	}
	stop := func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	var rc *cache.Redis
	for i := 0; ; i++ {
		if rc, err = cache.NewRedis(ctx, addr.String()); err == nil {
			break
		}
		if i == 50 {
			stop()
			return nil, nil, err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return rc, func() { rc.Close(); stop() }, nil
}
