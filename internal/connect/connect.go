// Package connect opens rtbpipe's connections to Temporal, Kafka and
// ClickHouse from a config, with errors that say which server failed.
package connect

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/IBM/sarama"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/rtbpipe/rtbpipe/internal/chstore"
	"github.com/rtbpipe/rtbpipe/internal/config"
	"github.com/rtbpipe/rtbpipe/internal/kafka"
)

// Temporal dials the Temporal frontend and checks that it answers.
func Temporal(ctx context.Context, cfg config.Config, logger *slog.Logger) (client.Client, error) {
	return TemporalWithMetrics(ctx, cfg, logger, nil)
}

// TemporalWithMetrics is Temporal with a metrics handler (nil: none), for
// the worker, whose workflows and activities record through it.
func TemporalWithMetrics(ctx context.Context, cfg config.Config, logger *slog.Logger, metrics client.MetricsHandler) (client.Client, error) {
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	opts := client.Options{
		HostPort:          cfg.TemporalAddress,
		Namespace:         cfg.TemporalNamespace,
		Logger:            tlog.NewStructuredLogger(logger),
		ConnectionOptions: client.ConnectionOptions{TLS: cfg.TemporalTLS},
		MetricsHandler:    metrics,
	}
	if cfg.TemporalAPIKey.Set() {
		opts.Credentials = client.NewAPIKeyStaticCredentials(cfg.TemporalAPIKey.Reveal())
	}
	c, err := client.DialContext(dctx, opts)
	if err != nil {
		if host, _, herr := net.SplitHostPort(cfg.TemporalAddress); herr == nil {
			if _, lerr := net.DefaultResolver.LookupHost(dctx, host); lerr != nil {
				err = fmt.Errorf("host %q does not resolve: %w", host, lerr) // gRPC says "no children to pick from"
			}
		}
		return nil, fmt.Errorf("connect to Temporal at %s (%s; namespace %s): %w", cfg.TemporalAddress, config.TemporalAddressSetting, cfg.TemporalNamespace, err)
	}
	return c, nil
}

// Kafka connects a sarama client to the configured brokers.
func Kafka(ctx context.Context, cfg config.Config, clientID string) (sarama.Client, error) {
	return kafka.ConnOf(cfg).Client(ctx, clientID)
}

// ClickHouse opens the store.
func ClickHouse(ctx context.Context, cfg config.Config) (*chstore.Store, error) {
	return chstore.Open(ctx, cfg)
}
