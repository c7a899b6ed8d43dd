// Package config holds rtbpipe's connection settings: environment variables
// (RTB_*) give the defaults, command-line flags override them.
package config

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
)

// Config is what every rtbpipe process needs to reach Kafka, ClickHouse and
// Temporal.
type Config struct {
	KafkaBrokers []string
	// Kafka security (internal/config/kafka.go), set by Validate: KafkaTLS
	// from RTB_KAFKA_TLS*, nil for plaintext; the SASL login from
	// RTB_KAFKA_SASL_MECHANISM, _USER and _PASSWORD (or _PASSWORD_FILE).
	KafkaTLS           *tls.Config
	KafkaSASLMechanism string
	KafkaSASLUser      string
	KafkaSASLPassword  Secret
	kafkaSec           kafkaSecurity

	Topic string
	// ClickHouseAddr is one native address host:port, or several separated
	// by commas: connections go to the first that answers.
	ClickHouseAddr     string
	ClickHouseDatabase string
	// ClickHouseCluster names the ClickHouse cluster (remote_servers) the
	// schema is laid out on; empty: a single server (README: ClickHouse cluster).
	ClickHouseCluster string
	ClickHouseUser    string
	// ClickHousePassword comes from RTB_CLICKHOUSE_PASSWORD, or from the
	// file named by RTB_CLICKHOUSE_PASSWORD_FILE or --clickhouse-password-file
	// (read by Validate).
	ClickHousePassword Secret
	chPassword         secretSource
	// ClickHouseTLS (nil: plaintext), set by Validate from RTB_CLICKHOUSE_TLS*:
	// the secure native port (9440 by default on ClickHouse).
	ClickHouseTLS     *tls.Config
	chTLS             tlsSettings
	TemporalAddress   string
	TemporalNamespace string
	// TemporalTLS (nil: plaintext) and TemporalAPIKey, set by Validate from
	// RTB_TEMPORAL_TLS* and RTB_TEMPORAL_API_KEY (or _FILE).
	TemporalTLS    *tls.Config
	TemporalAPIKey Secret
	temporalTLS    tlsSettings
	temporalAPIKey secretSource
	TaskQueue      string
}

// Defaults of the local stack (see README).
const (
	DefaultKafkaBrokers    = "127.0.0.1:9092"
	DefaultTopic           = "ad-events"
	DefaultClickHouseAddr  = "127.0.0.1:9000"
	DefaultDatabase        = "rtb"
	DefaultTemporalAddress = "127.0.0.1:7233"
	DefaultNamespace       = "default"
	DefaultTaskQueue       = "rtbpipe"
)

// The settings that give each server's address, and the topic, for errors
// that say what to fix.
const (
	KafkaBrokersSetting    = "RTB_KAFKA_BROKERS, --kafka-brokers"
	ClickHouseAddrSetting  = "RTB_CLICKHOUSE_ADDR, --clickhouse-addr"
	TemporalAddressSetting = "RTB_TEMPORAL_ADDRESS, --temporal-address"
	TopicSetting           = "RTB_KAFKA_TOPIC, --topic"
)

// FromEnv reads the RTB_* environment variables, with the defaults above.
func FromEnv() Config {
	return Config{
		KafkaBrokers:       SplitList(Env("RTB_KAFKA_BROKERS", DefaultKafkaBrokers)),
		KafkaSASLMechanism: Env("RTB_KAFKA_SASL_MECHANISM", ""),
		KafkaSASLUser:      Env("RTB_KAFKA_SASL_USER", ""),
		kafkaSec:           kafkaSecurityFromEnv(),
		Topic:              Env("RTB_KAFKA_TOPIC", DefaultTopic),
		ClickHouseAddr:     Env("RTB_CLICKHOUSE_ADDR", DefaultClickHouseAddr),
		ClickHouseDatabase: Env("RTB_CLICKHOUSE_DATABASE", DefaultDatabase),
		ClickHouseCluster:  Env("RTB_CLICKHOUSE_CLUSTER", ""),
		ClickHouseUser:     Env("RTB_CLICKHOUSE_USER", "default"),
		chPassword:         newSecretSource("RTB_CLICKHOUSE_PASSWORD"),
		chTLS:              tlsFromEnv("RTB_CLICKHOUSE", "clickhouse"),
		TemporalAddress:    Env("RTB_TEMPORAL_ADDRESS", DefaultTemporalAddress),
		temporalTLS:        tlsFromEnv("RTB_TEMPORAL", "temporal"),
		temporalAPIKey:     newSecretSource("RTB_TEMPORAL_API_KEY"),
		TemporalNamespace:  Env("RTB_TEMPORAL_NAMESPACE", DefaultNamespace),
		TaskQueue:          Env("RTB_TASK_QUEUE", DefaultTaskQueue),
	}
}

// BindFlags registers one flag per setting on fs, defaulting to the values
// already in c (normally from FromEnv), so that flags win over the environment.
func (c *Config) BindFlags(fs *pflag.FlagSet) {
	fs.StringSliceVar(&c.KafkaBrokers, "kafka-brokers", c.KafkaBrokers, "Kafka bootstrap brokers (env RTB_KAFKA_BROKERS)")
	c.bindKafkaSecurityFlags(fs)
	fs.StringVar(&c.Topic, "topic", c.Topic, "Kafka topic of the ad events (env RTB_KAFKA_TOPIC)")
	fs.StringVar(&c.ClickHouseAddr, "clickhouse-addr", c.ClickHouseAddr, "ClickHouse native address host:port, or several separated by commas (env RTB_CLICKHOUSE_ADDR)")
	fs.StringVar(&c.ClickHouseCluster, "clickhouse-cluster", c.ClickHouseCluster, "ClickHouse cluster the tables are laid out on, empty for a single server (env RTB_CLICKHOUSE_CLUSTER)")
	fs.StringVar(&c.ClickHouseDatabase, "clickhouse-database", c.ClickHouseDatabase, "ClickHouse database (env RTB_CLICKHOUSE_DATABASE)")
	fs.StringVar(&c.ClickHouseUser, "clickhouse-user", c.ClickHouseUser, "ClickHouse user (env RTB_CLICKHOUSE_USER)")
	c.chTLS.bindFlags(fs, "ClickHouse")
	fs.StringVar(&c.chPassword.file, "clickhouse-password-file", c.chPassword.file,
		"file holding the ClickHouse password (env RTB_CLICKHOUSE_PASSWORD_FILE; or the password itself in RTB_CLICKHOUSE_PASSWORD, never in a flag)")
	fs.StringVar(&c.TemporalAddress, "temporal-address", c.TemporalAddress, "Temporal frontend host:port (env RTB_TEMPORAL_ADDRESS)")
	c.temporalTLS.bindFlags(fs, "Temporal")
	fs.StringVar(&c.temporalAPIKey.file, "temporal-api-key-file", c.temporalAPIKey.file,
		"file holding a Temporal API key (env RTB_TEMPORAL_API_KEY_FILE; or the key itself in RTB_TEMPORAL_API_KEY, never in a flag)")
	fs.StringVar(&c.TemporalNamespace, "temporal-namespace", c.TemporalNamespace, "Temporal namespace (env RTB_TEMPORAL_NAMESPACE)")
	fs.StringVar(&c.TaskQueue, "task-queue", c.TaskQueue, "Temporal task queue (env RTB_TASK_QUEUE)")
}

// Validate reports settings that cannot work, and reads the secrets (from
// their environment variables or files).
func (c *Config) Validate() error {
	var err error
	if c.ClickHousePassword, err = c.chPassword.load(); err != nil {
		return err
	}
	if c.ClickHouseTLS, err = c.chTLS.config(); err != nil {
		return err
	}
	if err := c.validateKafka(); err != nil {
		return err
	}
	if c.TemporalTLS, err = c.temporalTLS.config(); err != nil {
		return err
	}
	if c.TemporalAPIKey, err = c.temporalAPIKey.load(); err != nil {
		return err
	}
	c.KafkaBrokers = SplitList(strings.Join(c.KafkaBrokers, ",")) // --kafka-brokers is not trimmed
	if len(c.KafkaBrokers) == 0 {
		return fmt.Errorf("no Kafka brokers (%s)", KafkaBrokersSetting)
	}
	if err := hostPorts("Kafka broker", KafkaBrokersSetting, c.KafkaBrokers); err != nil {
		return err
	}
	if _, _, err := net.SplitHostPort(c.TemporalAddress); c.TemporalAddress != "" && err != nil {
		return fmt.Errorf("Temporal address %q: want host:port (%s): %w", c.TemporalAddress, TemporalAddressSetting, err)
	}
	c.Topic = strings.TrimSpace(c.Topic)
	if err := CheckTopic(c.Topic); err != nil {
		return fmt.Errorf("%w (%s)", err, TopicSetting)
	}
	if !validName(c.ClickHouseDatabase) {
		return fmt.Errorf("ClickHouse database %q: only letters, digits and _ are allowed", c.ClickHouseDatabase)
	}
	if c.ClickHouseCluster != "" && !validName(c.ClickHouseCluster) {
		return fmt.Errorf("ClickHouse cluster %q: only letters, digits and _ are allowed", c.ClickHouseCluster)
	}
	chAddrs := SplitList(c.ClickHouseAddr)
	if c.ClickHouseAddr != "" && len(chAddrs) == 0 {
		return fmt.Errorf("ClickHouse address %q: want host:port[,host:port...] (%s)", c.ClickHouseAddr, ClickHouseAddrSetting)
	}
	if err := hostPorts("ClickHouse address", ClickHouseAddrSetting, chAddrs); err != nil {
		return err
	}
	for name, v := range map[string]string{"ClickHouse address": c.ClickHouseAddr,
		"Temporal address": c.TemporalAddress, "Temporal namespace": c.TemporalNamespace, "task queue": c.TaskQueue} {
		if v == "" {
			return fmt.Errorf("%s is empty", name)
		}
	}
	return nil
}

// CheckTopic refuses a name Kafka does not allow for a topic: up to 249
// letters, digits, '.', '_' and '-', other than "." and "..".
func CheckTopic(name string) error {
	if name == "" {
		return fmt.Errorf("topic is empty")
	}
	for _, c := range name {
		if !(c == '.' || c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return fmt.Errorf("topic %q: Kafka allows only letters, digits, '.', '_' and '-' in a topic's name", name)
		}
	}
	if len(name) > 249 || name == "." || name == ".." {
		return fmt.Errorf("topic %q: Kafka allows names of 1 to 249 characters, other than \".\" and \"..\"", name)
	}
	return nil
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// Env returns the environment variable key, or def when it is unset or empty.
func Env(key, def string) string {
	if v := strings.TrimSpace(os.Getenv(key)); v != "" {
		return v
	}
	return def
}

// SplitList splits a comma-separated list, dropping empty items.
func SplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// hostPorts refuses an address of addrs (a list, set by settings) that is
// not host:port.
func hostPorts(what, settings string, addrs []string) error {
	for _, a := range addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("%s %q: want host:port[,host:port...] (%s): %w", what, a, settings, err)
		}
	}
	return nil
}

// CheckListenAddr says whether addr is a host:port a server can listen on
// (an empty host: every interface).
func CheckListenAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want host:port: %w", err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q: want a number in [0, 65535]", port)
	}
	return nil
}
