package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rtbpipe/rtbpipe/internal/config"
	"github.com/rtbpipe/rtbpipe/internal/connect"
	"github.com/rtbpipe/rtbpipe/internal/manifest"
)

// run is the soak: set up, produce and inject faults, drain, verify, report.
func run(ctx context.Context, o options) (err error) {
	stamp := time.Now().UTC().Format("20060102t150405")
	s := &soak{o: o, stack: config.FromEnv(), db: "rtb_chaos_" + stamp, topic: "chaos-" + stamp, queue: "chaos-" + stamp,
		dir: filepath.Join(".local", "chaos", stamp)}
	s.bin = filepath.Join(s.dir, "bin")
	if err := s.stack.Validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(s.bin, 0o755); err != nil {
		return err
	}
	defer func() { // last: after the broker stopped
		if err == nil && !o.keep {
			_ = os.RemoveAll(s.dir)
		}
	}()
	for _, a := range []string{s.stack.ClickHouseAddr, s.stack.TemporalAddress} {
		if err := waitListening(ctx, a, 5*time.Second); err != nil {
			return fmt.Errorf("the local stack's ClickHouse and Temporal must run (make up-no-worker): %w", err)
		}
	}
	logf("chaos soak %s: %s at %d events/s, %d partitions, %d workers; logs in %s", stamp, o.duration, o.rate, o.partitions, o.workers, s.dir)
	if err := s.build(ctx); err != nil {
		return err
	}
	if s.proxies, err = newProxies(s); err != nil {
		return err
	}
	defer s.proxies.close()
	if err := s.startBroker(ctx); err != nil {
		return err
	}
	defer s.stopBroker()
	if _, err := s.starter(ctx, "migrate"); err != nil {
		return err
	}
	defer s.cleanup(&err)
	for i := range o.workers {
		if err := s.startWorker(i); err != nil {
			return err
		}
	}
	defer s.stopWorkers()
	if _, err := s.starter(ctx, "setup", "--partitions", strconv.Itoa(int(o.partitions))); err != nil {
		return err
	}
	prod, err := s.newProducer()
	if err != nil {
		return err
	}
	defer prod.close()

	start := time.Now()
	fs := &faults{}
	produced := make(chan error, 1)
	go func() { produced <- prod.run(ctx, start) }()
	injectErr := s.inject(ctx, start, fs)
	if err := <-produced; err != nil {
		return fmt.Errorf("producing the soak's events: %w", err)
	}
	if injectErr != nil {
		return injectErr
	}
	end := time.Now()
	m := prod.manifest(start, end)
	path := filepath.Join(s.dir, "manifest.json")
	if err := manifest.Write(path, m); err != nil {
		return err
	}
	logf("produced %d records (%d events, %d malformed) and %d aborted; faults over: waiting for the pipeline", m.Produced, m.Valid, m.Malformed, m.Aborted)
	if out, err := s.starter(ctx, "wait", "--timeout", o.drainTimeout.String()); err != nil {
		return fmt.Errorf("the pipeline did not process every record within %s: %w", o.drainTimeout, err)
	} else {
		logf("%s", strings.TrimSpace(out))
	}
	out, verr := s.starter(ctx, "verify", "--manifest", path)
	fmt.Println(strings.TrimSpace(out))
	diffs, perr := differences(out)
	if perr != nil {
		return errors.Join(perr, verr)
	}
	if err := s.report(ctx, fs, prod.tally, diffs); err != nil {
		return err
	}
	if diffs > 0 || verr != nil {
		return fmt.Errorf("%d differences (logs and data kept in %s)", diffs, s.dir)
	}
	return nil
}

var verifyLine = regexp.MustCompile(`verify: (\d+) differences`)

// differences reads starter verify's count of differences.
func differences(out string) (int, error) {
	m := verifyLine.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("starter verify said no count of differences")
	}
	return strconv.Atoi(m[1])
}

// report prints the table: each fault and how often, then the result.
func (s *soak) report(ctx context.Context, fs *faults, t *tally, diffs int) error {
	cfg := s.stack
	cfg.ClickHouseDatabase = s.db
	store, err := connect.ClickHouse(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	lt, err := store.LedgerTotals(ctx, s.topic)
	if err != nil {
		return err
	}
	moves, err := s.leaderMoves()
	if err != nil {
		return err
	}
	fmt.Printf("\nchaos soak: %s at %d events/s, %d partitions, %d workers, 3 brokers\n\n", s.o.duration, s.o.rate, s.o.partitions, s.o.workers)
	tw := tabwriter.NewWriter(os.Stdout, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "| fault\t| times\t|")
	fmt.Fprintln(tw, "|---\t|---\t|")
	fs.mu.Lock()
	for _, f := range fs.list {
		fmt.Fprintf(tw, "| %s\t| %d\t|\n", f.name, f.times)
	}
	fs.mu.Unlock()
	fmt.Fprintf(tw, "| partition leaders moved among 3 brokers\t| %d\t|\n", moves)
	t.mu.Lock()
	fmt.Fprintf(tw, "| transactions committed / aborted (20 records each)\t| %d / %d\t|\n", t.committedTxns, t.abortedTxns)
	t.mu.Unlock()
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Println()
	tw = tabwriter.NewWriter(os.Stdout, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "| offsets\t| events\t| dead letters\t| transaction markers\t| aborted (skipped)\t| differences\t|")
	fmt.Fprintln(tw, "|---\t|---\t|---\t|---\t|---\t|---\t|")
	fmt.Fprintf(tw, "| %d\t| %d\t| %d\t| %d\t| %d\t| %d\t|\n", lt.Offsets, lt.Events, lt.Dead, lt.Markers, lt.Skipped, diffs)
	return tw.Flush()
}

// leaderMoves counts the broker's leader moves in its log.
func (s *soak) leaderMoves() (int, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, "broker.log"))
	if err != nil {
		return 0, err
	}
	return strings.Count(string(b), "moved partition leaders"), nil
}

// cleanup deletes the soak's schedules and, unless --keep or the soak
// failed, its database.
func (s *soak) cleanup(err *error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, derr := s.starter(ctx, "schedule", "delete"); derr != nil {
		logf("cleanup: %v", derr)
	}
	if s.o.keep || *err != nil {
		logf("kept: database %s, logs and broker data in %s", s.db, s.dir)
		return
	}
	cfg := s.stack
	cfg.ClickHouseDatabase = s.db
	if store, cerr := connect.ClickHouse(ctx, cfg); cerr == nil {
		if derr := store.DropDatabase(ctx); derr != nil {
			logf("cleanup: %v", derr)
		}
		store.Close()
	}
}
