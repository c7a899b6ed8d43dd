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
