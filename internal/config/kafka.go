package config

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"
)

// SASL mechanisms rtbpipe speaks to Kafka.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// kafkaSecurity are the Kafka TLS and SASL settings as given (files and
// names); Validate turns them into Config.KafkaTLS and the SASL fields.
type kafkaSecurity struct {
	tls          tlsSettings
	saslPassword secretSource
}

func kafkaSecurityFromEnv() kafkaSecurity {
	return kafkaSecurity{tls: tlsFromEnv("RTB_KAFKA", "kafka"), saslPassword: newSecretSource("RTB_KAFKA_SASL_PASSWORD")}
}

func (c *Config) bindKafkaSecurityFlags(fs *pflag.FlagSet) {
	k := &c.kafkaSec
	k.tls.bindFlags(fs, "Kafka")
	fs.StringVar(&c.KafkaSASLMechanism, "kafka-sasl-mechanism", c.KafkaSASLMechanism, "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (env RTB_KAFKA_SASL_MECHANISM; empty: no SASL)")
	fs.StringVar(&c.KafkaSASLUser, "kafka-sasl-user", c.KafkaSASLUser, "SASL user (env RTB_KAFKA_SASL_USER)")
	fs.StringVar(&k.saslPassword.file, "kafka-sasl-password-file", k.saslPassword.file,
		"file holding the SASL password (env RTB_KAFKA_SASL_PASSWORD_FILE; or the password itself in RTB_KAFKA_SASL_PASSWORD, never in a flag)")
}

// validateKafka checks the Kafka security settings, reads their files, and
// sets KafkaTLS and the SASL fields. Each error names the setting.
func (c *Config) validateKafka() error {
	k := c.kafkaSec
	var err error
	if c.KafkaTLS, err = k.tls.config(); err != nil {
		return err
	}
	m := strings.ToUpper(strings.TrimSpace(c.KafkaSASLMechanism))
	switch m {
	case "", SASLPlain, SASLScramSHA256, SASLScramSHA512:
	default:
		return fmt.Errorf("RTB_KAFKA_SASL_MECHANISM %q: unknown; want %s, %s or %s", c.KafkaSASLMechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512)
	}
	c.KafkaSASLMechanism = m
	if c.KafkaSASLPassword, err = k.saslPassword.load(); err != nil {
		return err
	}
	if m != "" && (c.KafkaSASLUser == "" || !c.KafkaSASLPassword.Set()) {
		return fmt.Errorf("RTB_KAFKA_SASL_MECHANISM %s needs RTB_KAFKA_SASL_USER and RTB_KAFKA_SASL_PASSWORD (or _FILE)", m)
	}
	if m == "" && (c.KafkaSASLUser != "" || c.KafkaSASLPassword.Set()) {
		return fmt.Errorf("RTB_KAFKA_SASL_USER or _PASSWORD is set but RTB_KAFKA_SASL_MECHANISM is not: set it (%s, %s or %s)", SASLPlain, SASLScramSHA256, SASLScramSHA512)
	}
	return nil
}
