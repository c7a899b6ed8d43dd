// Command chaos is rtbpipe's chaos soak (make chaos): the live pipeline (the
// tailing schedule, two workers) runs while events are produced at a steady
// rate, and faults are injected the whole time:
//
//   - worker processes killed (-9) every --kill-every, and started again;
//   - ClickHouse and Temporal restarted (scripts/stack.sh);
//   - the Kafka broker (localkafka, run here as a cluster of 3 brokers whose
//     partition leaders move every --move-leaders-every) killed -9 and
//     started again, and stalled with SIGSTOP for --stall;
//   - network faults between the workers and every server, through
//     toxiproxy proxies run in this process: latency, a bandwidth limit,
//     connection resets, black holes.
//
// Transactions are produced too, some committed, some aborted. Then it waits
// until every record is processed, verifies ClickHouse against the manifest
// of what Kafka acknowledged (starter verify) and prints a table: each fault,
// how often, and the result. It exits non-zero on any difference.
//
// It needs the local stack's ClickHouse and Temporal (make up-no-worker); it
// runs its own broker, workers and database (rtb_chaos_<time>), so it does
// not touch the stack's topic or data.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

type options struct {
	duration     time.Duration
	rate         int
	partitions   int32
	workers      int
	killEvery    time.Duration
	moveEvery    time.Duration
	stall        time.Duration
	drainTimeout time.Duration
	kafkaPort    int
	proxyPort    int
	keep         bool
	seed         uint64
}

func main() {
	var o options
	cmd := newCommand(&o)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
}

// newCommand is the chaos command, its flags bound to o.
func newCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "chaos",
		Short: "Run the live pipeline under injected faults, verify it exactly, and print what happened",
		Long: "chaos runs the tailing schedule with two workers while it produces events at --rate for\n" +
			"--duration, and injects faults: worker kills, ClickHouse, Temporal and broker restarts, broker\n" +
			"stalls (SIGSTOP), partition leaders moving among 3 brokers, and network faults (latency,\n" +
			"bandwidth, resets, black holes) between the workers and each server through toxiproxy.\n" +
			"Then it waits, verifies against the manifest and prints the table. Exit 1 on any difference.\n" +
			"Needs the local stack's ClickHouse and Temporal (make up-no-worker).",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			return run(cmd.Context(), *o)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&o.duration, "duration", 6*time.Minute, "how long events are produced and faults injected")
	f.IntVar(&o.rate, "rate", 3000, "events per second")
	f.Int32Var(&o.partitions, "partitions", 4, "partitions of the soak's topic")
	f.IntVar(&o.workers, "workers", 2, "worker processes on the task queue")
	f.DurationVar(&o.killEvery, "kill-every", 25*time.Second, "kill -9 a worker this often (each is started again 2 s later)")
	f.DurationVar(&o.moveEvery, "move-leaders-every", 30*time.Second, "move the partitions' leaders among the 3 brokers this often")
	f.DurationVar(&o.stall, "stall", 40*time.Second, "how long the broker is stopped (SIGSTOP): longer than any idle timeout of the pipeline")
	f.DurationVar(&o.drainTimeout, "drain-timeout", 10*time.Minute, "after the faults, how long to wait for every record to be processed")
	f.IntVar(&o.kafkaPort, "kafka-port", 29092, "first port of the soak's 3 brokers")
	f.IntVar(&o.proxyPort, "proxy-port", 23000, "first port of the fault proxies (ClickHouse, Temporal, then one per broker from +92)")
	f.BoolVar(&o.keep, "keep", false, "keep the soak's database, topic data and logs")
	f.Uint64Var(&o.seed, "seed", 1, "seed of the generated events")
	return cmd
}

func (o options) validate() error {
	switch {
	case o.duration < time.Minute:
		return fmt.Errorf("--duration must be at least 1m, got %s", o.duration)
	case o.rate < 1 || o.rate > 50_000:
		return fmt.Errorf("--rate must be in [1, 50000], got %d", o.rate)
	case o.partitions < 1 || o.partitions > 64:
		return fmt.Errorf("--partitions must be in [1, 64], got %d", o.partitions)
	case o.workers < 1 || o.workers > 4:
		return fmt.Errorf("--workers must be in [1, 4], got %d", o.workers)
	case o.killEvery < 5*time.Second:
		return fmt.Errorf("--kill-every must be at least 5s, got %s", o.killEvery)
	case o.moveEvery < time.Second:
		return fmt.Errorf("--move-leaders-every must be at least 1s, got %s", o.moveEvery)
	case o.stall < time.Second || o.stall > o.duration/2:
		return fmt.Errorf("--stall must be in [1s, duration/2], got %s", o.stall)
	case o.drainTimeout < time.Minute:
		return fmt.Errorf("--drain-timeout must be at least 1m, got %s", o.drainTimeout)
	case o.kafkaPort < 1024 || o.kafkaPort > 65000 || o.proxyPort < 1024 || o.proxyPort > 64900:
		return fmt.Errorf("--kafka-port and --proxy-port must leave room for their ports")
	}
	if lo, hi, err := ephemeralPorts(); err == nil {
		return o.portsOutside(lo, hi)
	}
	return nil
}

// ports are the ports the soak listens on: its brokers and its proxies
// (see brokerAddrs and newProxies).
func (o options) ports() []int {
	return []int{o.kafkaPort, o.kafkaPort + 1, o.kafkaPort + 2,
		o.proxyPort, o.proxyPort + 1, o.proxyPort + 92, o.proxyPort + 93, o.proxyPort + 94}
}

// portsOutside refuses listening ports in [lo, hi], the kernel's range for
// the local ports of outgoing connections: any connection on the machine
// may hold one of them, and the soak's listener would then fail to bind
// ("address already in use") at random.
func (o options) portsOutside(lo, hi int) error {
	for _, p := range o.ports() {
		if p >= lo && p <= hi {
			return fmt.Errorf("--kafka-port %d and --proxy-port %d listen on port %d, inside the kernel's range for outgoing connections' ports (%d-%d, net.ipv4.ip_local_port_range), where any connection may hold it: choose ports below %d or above %d",
				o.kafkaPort, o.proxyPort, p, lo, hi, lo, hi)
		}
	}
	return nil
}

// ephemeralPorts reads the kernel's range of local ports for outgoing
// connections (Linux).
func ephemeralPorts() (lo, hi int, err error) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0, fmt.Errorf("read the ephemeral port range: %w", err)
	}
	if _, err := fmt.Sscan(string(b), &lo, &hi); err != nil {
		return 0, 0, fmt.Errorf("parse the ephemeral port range %q: %w", b, err)
	}
	return lo, hi, nil
}

func logf(format string, args ...any) {
	fmt.Printf("%s  %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
}
