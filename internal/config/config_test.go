package config

import (
	"strings"
	"testing"
)

// The ClickHouse address may list several servers; a malformed one, or a
// cluster name ClickHouse could not take, is an error naming the setting.
func TestClickHouseAddressesAndCluster(t *testing.T) {
	for _, c := range []struct {
		addr, cluster, err string
	}{
		{"127.0.0.1:9000", "", ""},
		{"ch1:9000, ch2:9000", "rtbpipe", ""},
		{"127.0.0.1", "", "ClickHouse address \"127.0.0.1\""},
		{"ch1:9000,ch2", "rtbpipe", "ClickHouse address \"ch2\""},
		{"ch1:9000", "rtb-pipe", "ClickHouse cluster \"rtb-pipe\""},
	} {
		cfg := FromEnv()
		cfg.ClickHouseAddr, cfg.ClickHouseCluster = c.addr, c.cluster
		err := cfg.Validate()
		if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("address %q, cluster %q: error %v, want %q", c.addr, c.cluster, err, c.err)
		}
	}
}

// An address list that holds no address (",", as "${A},${B}" with both
// unset gives) is an error, not the driver's default server; brokers from
// the flag are trimmed as from the environment, and each broker and the
// Temporal address need a port.
func TestAddressListsAndPorts(t *testing.T) {
	for _, c := range []struct {
		clickhouse string
		brokers    []string
		temporal   string
		err        string
	}{
		{"127.0.0.1:9000", []string{"127.0.0.1:9092"}, "127.0.0.1:7233", ""},
		{",", []string{"127.0.0.1:9092"}, "127.0.0.1:7233", `ClickHouse address ","`},
		{" , ", []string{"127.0.0.1:9092"}, "127.0.0.1:7233", `ClickHouse address " , "`},
		{"127.0.0.1:9000", []string{"127.0.0.1:9092", " 127.0.0.1:9093"}, "127.0.0.1:7233", ""},
		{"127.0.0.1:9000", []string{"", " "}, "127.0.0.1:7233", "no Kafka brokers"},
		{"127.0.0.1:9000", []string{"kafka1"}, "127.0.0.1:7233", `Kafka broker "kafka1"`},
		{"127.0.0.1:9000", []string{"127.0.0.1:9092"}, "127.0.0.1", `Temporal address "127.0.0.1"`},
	} {
		cfg := FromEnv()
		cfg.ClickHouseAddr, cfg.KafkaBrokers, cfg.TemporalAddress = c.clickhouse, c.brokers, c.temporal
		err := cfg.Validate()
		if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("ClickHouse %q, brokers %q, Temporal %q: error %v, want %q", c.clickhouse, c.brokers, c.temporal, err, c.err)
		}
		if err == nil {
			for _, b := range cfg.KafkaBrokers {
				if b != strings.TrimSpace(b) {
					t.Errorf("broker %q kept its spaces", b)
				}
			}
		}
	}
}
