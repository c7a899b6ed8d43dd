package config

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
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

// A malformed RTB_*_TLS is an error only when no flag overrides it: flags
// win over the environment, for this setting as for the others.
func TestTLSFlagOverridesAMalformedVariable(t *testing.T) {
	for _, server := range []string{"CLICKHOUSE", "KAFKA", "TEMPORAL"} {
		t.Run(server, func(t *testing.T) { tlsFlagOverrides(t, server) })
	}
}

func tlsFlagOverrides(t *testing.T, server string) {
	flag := "--" + strings.ToLower(server) + "-tls"
	{
		for _, c := range []struct {
			args []string
			err  bool
			on   bool
		}{
			{nil, true, false},
			{[]string{flag + "=false"}, false, false},
			{[]string{flag}, false, true},
		} {
			t.Setenv("RTB_"+server+"_TLS", "yes please")
			cfg := FromEnv()
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			cfg.BindFlags(fs)
			if err := fs.Parse(c.args); err != nil {
				t.Fatalf("%s %q: %v", server, c.args, err)
			}
			err := cfg.Validate()
			if (err != nil) != c.err {
				t.Errorf("RTB_%s_TLS malformed, flags %q: error %v, want one: %v", server, c.args, err, c.err)
				continue
			}
			if err != nil {
				if !strings.Contains(err.Error(), "RTB_"+server+"_TLS") || !strings.Contains(err.Error(), flag) {
					t.Errorf("error %q names neither the variable nor %s", err, flag)
				}
				continue
			}
			on := map[string]bool{"CLICKHOUSE": cfg.ClickHouseTLS != nil, "KAFKA": cfg.KafkaTLS != nil, "TEMPORAL": cfg.TemporalTLS != nil}[server]
			if on != c.on {
				t.Errorf("RTB_%s_TLS malformed, flags %q: TLS %v, want %v", server, c.args, on, c.on)
			}
		}
	}
}

// A topic name Kafka would refuse is an error naming the setting, before
// any server is asked.
func TestTopicNames(t *testing.T) {
	for _, c := range []struct {
		topic string
		ok    bool
	}{
		{"ad-events", true},
		{"ad_events.v2", true},
		{strings.Repeat("a", 249), true},
		{strings.Repeat("a", 250), false},
		{"ad events", false},
		{"ad-events/eu", false},
		{"événements", false},
		{".", false},
		{"..", false},
	} {
		cfg := FromEnv()
		cfg.Topic = c.topic
		err := cfg.Validate()
		if c.ok != (err == nil) {
			t.Errorf("topic %q: error %v, want ok %v", c.topic, err, c.ok)
		}
		if err != nil && (!strings.Contains(err.Error(), "RTB_KAFKA_TOPIC") || !strings.Contains(err.Error(), "--topic")) {
			t.Errorf("topic %q: error %q does not name the setting", c.topic, err)
		}
	}
}
