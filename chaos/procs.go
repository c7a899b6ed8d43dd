package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rtbpipe/rtbpipe/internal/config"
	"github.com/rtbpipe/rtbpipe/internal/workerproc"
)

// soak holds the soak's processes: its broker, its workers, and the
// stack's ClickHouse and Temporal, which it restarts.
type soak struct {
	o                options
	dir, bin         string // the soak's folder (logs, broker data) and its binaries
	db, topic, queue string
	stack            config.Config // where the stack's ClickHouse and Temporal listen
	proxies          *proxies
	mu               sync.Mutex // guards what follows
	broker           *exec.Cmd
	workers          []*workerproc.Proc
}

// brokerAddrs are the addresses the brokers listen on, and those they
// announce to clients: the proxies in front of them.
func (s *soak) brokerAddrs() (listen, advertised []string) {
	for i := range 3 {
		listen = append(listen, "127.0.0.1:"+strconv.Itoa(s.o.kafkaPort+i))
		advertised = append(advertised, "127.0.0.1:"+strconv.Itoa(s.o.proxyPort+92+i))
	}
	return listen, advertised
}

// build compiles the binaries the soak runs, as users run them.
func (s *soak) build(ctx context.Context) error {
	for _, name := range []string{"worker", "starter", "localkafka"} {
		out, err := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(s.bin, name), "./"+name).CombinedOutput()
		if err != nil {
			return fmt.Errorf("build ./%s: %w\n%s", name, err, out)
		}
	}
	return nil
}

// env is the environment of the soak's own processes: its database, topic
// and task queue, and the servers at the given addresses.
func (s *soak) env(kafka, clickhouse, temporal string) []string {
	return append(os.Environ(),
		"RTB_KAFKA_BROKERS="+kafka, "RTB_CLICKHOUSE_ADDR="+clickhouse, "RTB_TEMPORAL_ADDRESS="+temporal,
		"RTB_CLICKHOUSE_DATABASE="+s.db, "RTB_KAFKA_TOPIC="+s.topic, "RTB_TASK_QUEUE="+s.queue)
}

// directEnv reaches every server without the fault proxies (the starter).
func (s *soak) directEnv() []string {
	listen, _ := s.brokerAddrs()
	return s.env(listen[0], s.stack.ClickHouseAddr, s.stack.TemporalAddress)
}

// workerEnv reaches every server through the fault proxies.
func (s *soak) workerEnv() []string {
	return s.env(s.proxies.kafkaAddr(), s.proxies.addr(proxyClickHouse), s.proxies.addr(proxyTemporal))
}

// starter runs the starter with args and returns its output.
func (s *soak) starter(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, "starter"), args...)
	cmd.Env = s.directEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("starter %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// startBroker runs the soak's 3-broker cluster on its data folder and waits
// until it listens.
func (s *soak) startBroker(ctx context.Context) error {
	listen, advertised := s.brokerAddrs()
	log, err := os.OpenFile(filepath.Join(s.dir, "broker.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command(filepath.Join(s.bin, "localkafka"), "--addr", listen[0], "--brokers", "3",
		"--advertised-addr", strings.Join(advertised, ","), "--data-dir", filepath.Join(s.dir, "kafka"),
		"--default-partitions", strconv.Itoa(int(s.o.partitions)), "--auto-create=false",
		// Every produced batch is synced: a kill -9 must not lose what was
		// acknowledged, or the manifest would hold records the log lost.
		"--sync-writes", "--move-leaders-every", s.o.moveEvery.String())
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the soak's broker: %w", err)
	}
	s.mu.Lock()
	s.broker = cmd
	s.mu.Unlock()
	for _, a := range listen {
		if err := waitListening(ctx, a, time.Minute); err != nil {
			return fmt.Errorf("the soak's broker: %w (log: %s)", err, log.Name())
		}
	}
	return nil
}

// killBroker ends the broker at once (SIGKILL), as a crash would. Every
// batch it acknowledged is on disk (--sync-writes).
func (s *soak) killBroker() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broker != nil {
		_ = s.broker.Process.Kill()
		_ = s.broker.Wait()
		s.broker = nil
	}
}

// stopBroker shuts the broker down cleanly (it flushes its state).
func (s *soak) stopBroker() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broker == nil {
		return
	}
	_ = s.broker.Process.Signal(syscall.SIGCONT) // in case it is stalled
	_ = s.broker.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.broker.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = s.broker.Process.Kill()
		<-done
	}
	s.broker = nil
}

// signalBroker sends sig (SIGSTOP, SIGCONT) to the broker.
func (s *soak) signalBroker(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broker == nil {
		return fmt.Errorf("the broker is not running")
	}
	return s.broker.Process.Signal(sig)
}

// startWorker starts worker i (again).
func (s *soak) startWorker(i int) error {
	log, err := os.OpenFile(filepath.Join(s.dir, fmt.Sprintf("worker-%d.log", i)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close() // the child keeps its own descriptor
	p, err := workerproc.Start(filepath.Join(s.bin, "worker"), append(s.workerEnv(), "RTB_PPROF_ADDR="), log)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.workers) <= i {
		s.workers = append(s.workers, nil)
	}
	s.workers[i] = p
	return nil
}

// killWorker ends worker i at once (SIGKILL).
func (s *soak) killWorker(i int) {
	s.mu.Lock()
	p := s.workers[i]
	s.mu.Unlock()
	if p != nil {
		p.Kill()
	}
}

// stopWorkers stops every worker (running activities finish).
func (s *soak) stopWorkers() {
	s.mu.Lock()
	ws := append([]*workerproc.Proc(nil), s.workers...)
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range ws {
		if p != nil {
			wg.Add(1)
			go func() { defer wg.Done(); p.Stop() }()
		}
	}
	wg.Wait()
}

// restartServer restarts one of the stack's servers (clickhouse, temporal)
// with the stack's own script, as an operator would.
func (s *soak) restartServer(ctx context.Context, name string) error {
	script := filepath.Join("scripts", "stack.sh")
	for _, verb := range []string{"down", "up"} {
		out, err := exec.CommandContext(ctx, "bash", script, verb, name).CombinedOutput()
		if err != nil {
			return fmt.Errorf("stack.sh %s %s: %w\n%s", verb, name, err, out)
		}
	}
	return nil
}

// waitListening waits (bounded) until addr accepts connections.
func waitListening(ctx context.Context, addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not accept connections after %s: %w", addr, within, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
