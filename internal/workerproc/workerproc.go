// Package workerproc runs the worker binary as its own process, as users run
// it, for the end-to-end tests and the benchmark: start, graceful stop,
// kill, and what /proc says of its CPU and memory.
package workerproc

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Proc is a running worker process.
type Proc struct{ cmd *exec.Cmd }

// Start runs bin with the current environment plus env ("KEY=value"),
// its output to out.
func Start(bin string, env []string, out io.Writer) (*Proc, error) {
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start worker: %w", err)
	}
	return &Proc{cmd: cmd}, nil
}

// Stop asks the worker to stop (SIGINT: running activities finish) and
// kills it if it has not stopped after 40 s. Stopping twice is harmless.
func (p *Proc) Stop() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(40 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// Pid is the worker's process ID (its Temporal identity begins "<pid>@").
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Kill ends the worker at once (SIGKILL), as a crash would.
func (p *Proc) Kill() {
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
}

// CPUSeconds is the process's user + system CPU time so far.
func (p *Proc) CPUSeconds() (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("worker cpu: %w", err)
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(fields[11], 64)
	st, _ := strconv.ParseFloat(fields[12], 64)
	return (ut + st) / 100, nil // USER_HZ is 100 on Linux
}

// PeakRSSMiB is the process's high-water resident set (VmHWM).
func (p *Proc) PeakRSSMiB() (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("worker rss: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			kb, err := strconv.ParseFloat(strings.Fields(line)[1], 64)
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("worker rss: no VmHWM")
}
