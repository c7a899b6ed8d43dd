package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/spf13/cobra"

	"github.com/rtbpipe/rtbpipe/internal/cache"
	"github.com/rtbpipe/rtbpipe/internal/chstore"
	"github.com/rtbpipe/rtbpipe/internal/config"
	"github.com/rtbpipe/rtbpipe/internal/connect"
	"github.com/rtbpipe/rtbpipe/internal/dashboard"
	"github.com/rtbpipe/rtbpipe/internal/kafka"
)

func (a *app) dashboardCmd() *cobra.Command {
	addr := config.Env("RTB_DASHBOARD_ADDR", "127.0.0.1:8080")
	redisAddr := config.Env("RTB_REDIS_ADDR", "")
	cacheKind := "memory"
	cmd := &cobra.Command{
		Use:   "dashboard [--addr 127.0.0.1:8080]",
		Short: "Serve the dashboard (web page and JSON API) of the exact windows and the pipeline's health",
		Long: "Serves a web page per topic: events and revenue per minute, CTR and eCPM by format, revenue by\n" +
			"country, and the pipeline's health (recent slots with links to their runs, consumer lag, dead\n" +
			"letters, last reconciliation); it refreshes itself when a minute is closed. Its JSON API:\n" +
			"  GET /api/windows?topic=T&from=RFC3339&to=RFC3339   the prototype's table's rows\n" +
			"  GET /api/minutes, /api/countries, /api/rates?by=ad_format|country|none&step=minute|hour, /api/health?topic=T\n" +
			"from/to default to the last hour; a range is at most 7 days.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cacheKind, err := dashboardCache(cacheKind, cmd.Flags().Changed("cache"), redisAddr)
			if err != nil {
				return err
			}
			if err := config.CheckListenAddr(addr); err != nil {
				return fmt.Errorf("dashboard on %q (--addr, RTB_DASHBOARD_ADDR): %w", addr, err)
			}
			return a.withStore(cmd, func(store *chstore.Store) error {
				kc := &lazyKafka{connect: func(ctx context.Context) (sarama.Client, error) {
					return connect.Kafka(ctx, a.cfg, "rtbpipe-dashboard")
				}, now: time.Now}
				defer kc.close()
				if _, err := kc.client(cmd.Context()); err != nil {
					a.logger.Warn("dashboard: Kafka cannot be reached; it serves without the consumer lag, and tries again", "err", err)
				}
				srv := &dashboard.Server{Read: store, Lag: lagOf(store, kc), TemporalUI: a.uiURL, Namespace: a.cfg.TemporalNamespace, Log: a.logger}
				switch cacheKind {
				case "memory":
					srv.Cache = cache.NewMemory(10_000)
				case "redis":
					rc, err := cache.NewRedis(cmd.Context(), redisAddr)
					if err != nil {
						return err
					}
					defer rc.Close()
					srv.Cache = rc
				}
				return serve(cmd.Context(), cmd, addr, "cache: "+cacheKind, srv.Handler())
			})
		},
	}
	cmd.Flags().StringVar(&addr, "addr", addr, "host:port to serve on (env RTB_DASHBOARD_ADDR)")
	cmd.Flags().StringVar(&cacheKind, "cache", cacheKind, "API response cache: memory (this process), redis (shared by replicas) or off")
	cmd.Flags().StringVar(&redisAddr, "redis-addr", redisAddr, "Redis host:port for --cache redis (env RTB_REDIS_ADDR; setting it makes redis the default)")
	return cmd
}

// dashboardCache is the API cache to use: kind as --cache gives it, except
// that a Redis address (--redis-addr, RTB_REDIS_ADDR) makes redis the
// default when --cache is not set.
func dashboardCache(kind string, kindSet bool, redisAddr string) (string, error) {
	if !kindSet && redisAddr != "" {
		kind = "redis"
	}
	switch kind {
	case "memory", "off":
	case "redis":
		if redisAddr == "" {
			return "", fmt.Errorf("--cache redis needs --redis-addr (RTB_REDIS_ADDR)")
		}
	default:
		return "", fmt.Errorf("--cache %q: want memory, redis or off", kind)
	}
	return kind, nil
}

// lagOf returns each partition's consumer lag: its high watermark minus the
// end of its latest plan.
func lagOf(store *chstore.Store, lk *lazyKafka) func(context.Context, string) (map[int32]int64, error) {
	return func(ctx context.Context, topic string) (map[int32]int64, error) {
		kc, err := lk.client(ctx)
		if err != nil {
			return nil, err
		}
		parts, err := kafka.Partitions(kc, topic)
		if err != nil {
			return nil, err
		}
		highs, err := kafka.ListOffsets(kc, topic, parts, sarama.OffsetNewest)
		if err != nil {
			return nil, err
		}
		plans, err := store.LatestPlans(ctx, topic)
		if err != nil {
			return nil, err
		}
		lag := make(map[int32]int64, len(parts))
		for _, p := range parts {
			lag[p] = max(highs[p]-plans[p].End, 0)
		}
		return lag, nil
	}
}

// lazyKafka is the dashboard's Kafka client, connected on first use and,
// after a failure, again at most every kafkaRetry: the dashboard serves
// without Kafka, which only the consumer lag of /api/health needs.
type lazyKafka struct {
	connect func(context.Context) (sarama.Client, error)
	now     func() time.Time
	mu      sync.Mutex
	kc      sarama.Client
	err     error
	tried   time.Time
}

const kafkaRetry = 30 * time.Second

func (l *lazyKafka) client(ctx context.Context) (sarama.Client, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.kc != nil {
		return l.kc, nil
	}
	if l.err != nil && l.now().Sub(l.tried) < kafkaRetry {
		return nil, l.err
	}
	l.tried = l.now()
	l.kc, l.err = l.connect(ctx)
	return l.kc, l.err
}

func (l *lazyKafka) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.kc != nil {
		l.kc.Close()
	}
}

// serve serves h on addr until ctx ends.
func serve(ctx context.Context, cmd *cobra.Command, addr, note string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("dashboard on %s (--addr, RTB_DASHBOARD_ADDR): %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	fmt.Fprintf(cmd.OutOrStdout(), "dashboard: http://%s/ (%s)\n", ln.Addr(), note)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		err := srv.Shutdown(sctx)
		if serr := <-done; !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
		return err
	}
}
