// Command localkafka is a single-node, Kafka-protocol broker for local
// development, tests and the demo, built on franz-go's kfake. It is NOT a
// production Kafka: it keeps everything in one process, persists to a data
// directory (segments are synced on segment roll and on shutdown, like
// Kafka's default flush policy) and speaks the real wire protocol, so sarama
// and franz-go clients talk to it as to a Kafka broker (sarama needs
// Config.Version >= 0.11).
//
//	localkafka --addr 127.0.0.1:9092 --data-dir .local/kafka --default-partitions 4
//
// Topics are created by clients (CreateTopics, any partition count), or
// automatically on first use with --auto-create (--default-partitions).
// SIGINT/SIGTERM close the cluster cleanly, which flushes its state to disk.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kfake"
)

type options struct {
	addr          string
	advertised    string
	brokers       int
	moveEvery     time.Duration
	tlsCert       string // server certificate and key (PEM): every listener speaks TLS
	tlsKey        string
	saslUser      string // with a password: SASL is required (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)
	saslPassFile  string
	dataDir       string
	partitions    int
	seedTopics    []string
	brokerConfigs map[string]string
	syncWrites    bool
	autoCreate    bool
	logLevel      string
	kfakeLogLevel string
}

func main() {
	var o options
	cmd := &cobra.Command{
		Use:   "localkafka",
		Short: "Single-node Kafka-protocol broker (franz-go kfake) for local development and tests",
		Long: "localkafka runs a one-broker Kafka-protocol server in process (franz-go's kfake) with\n" +
			"persistence in --data-dir. For development, tests and the demo only.",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.addr, "addr", "127.0.0.1:9092", "host:port to listen on (only that host is bound)")
	f.StringVar(&o.advertised, "advertised-addr", "", "host:port announced to clients in metadata (default: the listen address); with --brokers N, N of them, comma-separated")
	f.IntVar(&o.brokers, "brokers", 1, "brokers in the cluster, on consecutive ports from --addr's (for tests of leader moves)")
	f.DurationVar(&o.moveEvery, "move-leaders-every", 0, "move every partition's leader to the next broker this often (0: never; for tests)")
	f.StringVar(&o.tlsCert, "tls-cert", "", "PEM file of the brokers' certificate: clients must connect over TLS (with --tls-key)")
	f.StringVar(&o.tlsKey, "tls-key", "", "PEM file of the certificate's key")
	f.StringVar(&o.saslUser, "sasl-user", "", "require SASL (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512) as this user (with --sasl-password-file)")
	f.StringVar(&o.saslPassFile, "sasl-password-file", "", "file holding the SASL user's password")
	f.StringVar(&o.dataDir, "data-dir", ".local/kafka", "directory for persisted topics, offsets and groups (empty: in memory only)")
	f.IntVar(&o.partitions, "default-partitions", 4, "partitions of auto-created topics and of CreateTopics with -1 partitions")
	f.StringSliceVar(&o.seedTopics, "seed-topic", nil, "topic to create at first start, as name or name:partitions (repeatable)")
	f.StringToStringVar(&o.brokerConfigs, "broker-config", nil, "broker config key=value, e.g. log.retention.ms=604800000 (repeatable)")
	f.BoolVar(&o.autoCreate, "auto-create", false, "create unknown topics on first use (metadata requests that allow it), with --default-partitions; off, as on most Kafka clusters: a misspelt topic is an error")
	f.BoolVar(&o.syncWrites, "sync-writes", false, "fsync every produced batch (slower, survives a crash of the machine)")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringVar(&o.kfakeLogLevel, "kfake-log-level", "warn", "log level of kfake's internal messages: none, error, warn, info, debug")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "localkafka:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	slog.SetDefault(log)

	kl, err := parseKfakeLevel(o.kfakeLogLevel)
	if err != nil {
		return err
	}

	host, portStr, err := net.SplitHostPort(o.addr)
	if err != nil {
		return fmt.Errorf("--addr %q: %w", o.addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 || port > 65535 {
		return fmt.Errorf("--addr %q: need an explicit port", o.addr)
	}
	if o.partitions < 1 {
		return fmt.Errorf("--default-partitions must be >= 1")
	}
	if o.brokers < 1 || port+o.brokers-1 > 65535 {
		return fmt.Errorf("--brokers must be at least 1, with ports from %d free", port)
	}
	if o.moveEvery < 0 || (o.moveEvery > 0 && o.brokers < 2) {
		return fmt.Errorf("--move-leaders-every needs --brokers 2 or more and a positive duration")
	}
	ports := make([]int, o.brokers)
	for i := range ports {
		ports[i] = port + i
	}

	// Brokers announce the address their listener reports. A wildcard host
	// would be announced as such, which clients cannot dial: require an
	// explicit --advertised-addr then.
	advertised := map[string]string{} // listen port -> announced address
	if o.advertised == "" {
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			return fmt.Errorf("--addr %q listens on all interfaces: set --advertised-addr to an address clients can reach", o.addr)
		}
	} else {
		addrs := strings.Split(o.advertised, ",")
		if len(addrs) != o.brokers {
			return fmt.Errorf("--advertised-addr %q: want %d addresses, one per broker", o.advertised, o.brokers)
		}
		for i, a := range addrs {
			if _, _, err := net.SplitHostPort(a); err != nil {
				return fmt.Errorf("--advertised-addr %q: %w", a, err)
			}
			advertised[strconv.Itoa(ports[i])] = a
		}
	}

	opts := []kfake.Opt{
		kfake.NumBrokers(o.brokers),
		kfake.Ports(ports...),
		// kfake always asks for 127.0.0.1:<port>; bind the host we were
		// told to (and only that host) instead.
		kfake.ListenFn(func(network, addr string) (net.Listener, error) {
			_, p, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			ln, err := net.Listen(network, net.JoinHostPort(host, p))
			if err != nil {
				return nil, err
			}
			if a, ok := advertised[p]; ok {
				return advertisedListener{ln, advertisedAddr(a)}, nil
			}
			return ln, nil
		}),
		kfake.ClusterID("rtbpipe-localkafka"),
		kfake.DefaultNumPartitions(o.partitions),
		kfake.WithLogger(slogLogger{log: log.With("component", "kfake"), level: kl}),
	}
	sec, err := o.security()
	if err != nil {
		return err
	}
	opts = append(opts, sec...)
	if o.dataDir != "" {
		if err := os.MkdirAll(o.dataDir, 0o755); err != nil {
			return fmt.Errorf("--data-dir: %w", err)
		}
		opts = append(opts, kfake.DataDir(o.dataDir))
	}
	if o.autoCreate {
		opts = append(opts, kfake.AllowAutoTopicCreation())
	}
	if o.syncWrites {
		opts = append(opts, kfake.SyncWrites())
	}
	if len(o.brokerConfigs) > 0 {
		opts = append(opts, kfake.BrokerConfigs(o.brokerConfigs))
	}
	for _, st := range o.seedTopics {
		name, parts, err := parseSeedTopic(st)
		if err != nil {
			return err
		}
		opts = append(opts, kfake.SeedTopics(parts, name))
	}

	start := time.Now()
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return fmt.Errorf("start broker on %s: %w", o.addr, err)
	}
	log.Info("localkafka ready",
		"listen", net.JoinHostPort(host, strconv.Itoa(port)),
		"advertised", c.ListenAddrs(),
		"data_dir", o.dataDir,
		"default_partitions", o.partitions,
		"auto_create", o.autoCreate,
		"startup", time.Since(start).Round(time.Millisecond))

	if o.moveEvery > 0 {
		go moveLeaders(ctx, c, o.moveEvery, log)
	}
	<-ctx.Done()
	if o.dataDir != "" {
		log.Info("shutting down, flushing state to disk", "data_dir", o.dataDir)
	} else {
		log.Info("shutting down (in-memory: data is discarded)")
	}

	// Close flushes the state; a second signal forces exit.
	done := make(chan struct{})
	go func() {
		c.Close()
		close(done)
	}()
	force := make(chan os.Signal, 1)
	signal.Notify(force, os.Interrupt, syscall.SIGTERM)
	select {
	case <-done:
		log.Info("stopped")
		return nil
	case <-force:
		return errors.New("forced exit before the state was flushed")
	}
}

// security returns kfake's options for --tls-cert/--tls-key and --sasl-user.
func (o options) security() ([]kfake.Opt, error) {
	var opts []kfake.Opt
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return nil, fmt.Errorf("--tls-cert and --tls-key go together")
	}
	if o.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		opts = append(opts, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
	}
	if (o.saslUser == "") != (o.saslPassFile == "") {
		return nil, fmt.Errorf("--sasl-user and --sasl-password-file go together")
	}
	if o.saslUser != "" {
		b, err := os.ReadFile(o.saslPassFile)
		if err != nil {
			return nil, fmt.Errorf("--sasl-password-file: %w", err)
		}
		pass := strings.TrimRight(string(b), "\r\n")
		opts = append(opts, kfake.EnableSASL())
		for _, m := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
			opts = append(opts, kfake.Superuser(m, o.saslUser, pass))
		}
	}
	return opts, nil
}

// moveLeaders moves the partitions' leaders among the brokers every
// interval, as a cluster does when brokers restart or rebalance: clients
// reading a partition get NOT_LEADER and must follow the new leader.
func moveLeaders(ctx context.Context, c *kfake.Cluster, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.ShufflePartitionLeaders()
		log.Info("moved partition leaders")
	}
}

func parseKfakeLevel(s string) (kfake.LogLevel, error) {
	switch strings.ToLower(s) {
	case "none", "off":
		return kfake.LogLevelNone, nil
	case "error":
		return kfake.LogLevelError, nil
	case "warn", "warning":
		return kfake.LogLevelWarn, nil
	case "info":
		return kfake.LogLevelInfo, nil
	case "debug":
		return kfake.LogLevelDebug, nil
	}
	return 0, fmt.Errorf("--kfake-log-level %q: want none, error, warn, info or debug", s)
}

func parseSeedTopic(s string) (string, int32, error) {
	name, ps, ok := strings.Cut(s, ":")
	if name == "" {
		return "", 0, fmt.Errorf("--seed-topic %q: empty topic name", s)
	}
	if !ok {
		return name, -1, nil // -1: --default-partitions
	}
	p, err := strconv.ParseInt(ps, 10, 32)
	if err != nil || p < 1 {
		return "", 0, fmt.Errorf("--seed-topic %q: partitions must be a positive integer", s)
	}
	return name, int32(p), nil
}

// slogLogger adapts kfake's printf logger to slog, filtered at level.
type slogLogger struct {
	log   *slog.Logger
	level kfake.LogLevel
}

func (l slogLogger) Logf(level kfake.LogLevel, msg string, args ...any) {
	if level > l.level || level == kfake.LogLevelNone {
		return
	}
	var sl slog.Level
	switch level {
	case kfake.LogLevelError:
		sl = slog.LevelError
	case kfake.LogLevelWarn:
		sl = slog.LevelWarn
	case kfake.LogLevelInfo:
		sl = slog.LevelInfo
	default:
		sl = slog.LevelDebug
	}
	l.log.Log(context.Background(), sl, fmt.Sprintf(msg, args...))
}

// advertisedListener reports a different address than the one it is bound
// to, because kfake announces its listener's Addr() to clients.
type advertisedListener struct {
	net.Listener
	addr net.Addr
}

func (l advertisedListener) Addr() net.Addr { return l.addr }

type advertisedAddr string

func (advertisedAddr) Network() string  { return "tcp" }
func (a advertisedAddr) String() string { return string(a) }
