package connect

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/rtbpipe/rtbpipe/internal/config"
)

// closedPort is a local address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// A server that cannot be reached is an error that names the address and
// the settings that give it, and says why (a host that does not resolve in
// words, not gRPC's "no children to pick from").
func TestConnectionErrorsNameTheSetting(t *testing.T) {
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, c := range []struct {
		name    string
		set     func(*config.Config, string)
		connect func(config.Config) error
		want    []string
	}{
		{"Temporal, nothing listening", func(c *config.Config, a string) { c.TemporalAddress = a },
			func(c config.Config) error { _, err := Temporal(ctx, c, logger); return err },
			[]string{"RTB_TEMPORAL_ADDRESS", "--temporal-address", "connection refused"}},
		{"Temporal, unknown host", func(c *config.Config, _ string) { c.TemporalAddress = "nosuchhost.invalid:7233" },
			func(c config.Config) error { _, err := Temporal(ctx, c, logger); return err },
			[]string{"RTB_TEMPORAL_ADDRESS", "--temporal-address", `"nosuchhost.invalid" does not resolve`}},
		{"ClickHouse, nothing listening", func(c *config.Config, a string) { c.ClickHouseAddr = a },
			func(c config.Config) error { _, err := ClickHouse(ctx, c); return err },
			[]string{"RTB_CLICKHOUSE_ADDR", "--clickhouse-addr", "connection refused"}},
		{"Kafka, nothing listening", func(c *config.Config, a string) { c.KafkaBrokers = []string{a} },
			func(c config.Config) error { _, err := Kafka(ctx, c, "test"); return err },
			[]string{"RTB_KAFKA_BROKERS", "--kafka-brokers", "connection refused"}},
	} {
		cfg := config.FromEnv()
		c.set(&cfg, closedPort(t))
		if err := cfg.Validate(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		err := c.connect(cfg)
		if err == nil {
			t.Errorf("%s: connected", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", c.name, err, w)
			}
		}
	}
}
