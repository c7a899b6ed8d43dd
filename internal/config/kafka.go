package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strconv"
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
	tls                          bool
	tlsErr                       error // RTB_KAFKA_TLS is not a boolean
	tlsCA, tlsCert, tlsKey, name string
	saslPassword                 secretSource
}

func kafkaSecurityFromEnv() kafkaSecurity {
	on, err := strconv.ParseBool(Env("RTB_KAFKA_TLS", "false"))
	if err != nil {
		err = fmt.Errorf("RTB_KAFKA_TLS %q: want true or false", Env("RTB_KAFKA_TLS", ""))
	}
	return kafkaSecurity{tls: on, tlsErr: err, tlsCA: Env("RTB_KAFKA_TLS_CA", ""), tlsCert: Env("RTB_KAFKA_TLS_CERT", ""),
		tlsKey: Env("RTB_KAFKA_TLS_KEY", ""), name: Env("RTB_KAFKA_TLS_SERVER_NAME", ""),
		saslPassword: newSecretSource("RTB_KAFKA_SASL_PASSWORD")}
}

func (c *Config) bindKafkaSecurityFlags(fs *pflag.FlagSet) {
	k := &c.kafkaSec
	fs.BoolVar(&k.tls, "kafka-tls", k.tls, "connect to Kafka over TLS (env RTB_KAFKA_TLS; implied by the CA or client certificate settings)")
	fs.StringVar(&k.tlsCA, "kafka-tls-ca", k.tlsCA, "PEM file of the CA that signed the brokers' certificates (env RTB_KAFKA_TLS_CA; default: the system's)")
	fs.StringVar(&k.tlsCert, "kafka-tls-cert", k.tlsCert, "PEM file of a client certificate, for brokers that require one (env RTB_KAFKA_TLS_CERT)")
	fs.StringVar(&k.tlsKey, "kafka-tls-key", k.tlsKey, "PEM file of the client certificate's key (env RTB_KAFKA_TLS_KEY)")
	fs.StringVar(&k.name, "kafka-tls-server-name", k.name, "name the brokers' certificates must carry, if not their host (env RTB_KAFKA_TLS_SERVER_NAME)")
	fs.StringVar(&c.KafkaSASLMechanism, "kafka-sasl-mechanism", c.KafkaSASLMechanism, "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (env RTB_KAFKA_SASL_MECHANISM; empty: no SASL)")
	fs.StringVar(&c.KafkaSASLUser, "kafka-sasl-user", c.KafkaSASLUser, "SASL user (env RTB_KAFKA_SASL_USER)")
	fs.StringVar(&k.saslPassword.file, "kafka-sasl-password-file", k.saslPassword.file,
		"file holding the SASL password (env RTB_KAFKA_SASL_PASSWORD_FILE; or the password itself in RTB_KAFKA_SASL_PASSWORD, never in a flag)")
}

// validateKafka checks the Kafka security settings, reads their files, and
// sets KafkaTLS and the SASL fields. Each error names the setting.
func (c *Config) validateKafka() error {
	k := c.kafkaSec
	if k.tlsErr != nil {
		return k.tlsErr
	}
	m := strings.ToUpper(strings.TrimSpace(c.KafkaSASLMechanism))
	switch m {
	case "", SASLPlain, SASLScramSHA256, SASLScramSHA512:
	default:
		return fmt.Errorf("RTB_KAFKA_SASL_MECHANISM %q: unknown; want %s, %s or %s", c.KafkaSASLMechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512)
	}
	c.KafkaSASLMechanism = m
	var err error
	if c.KafkaSASLPassword, err = k.saslPassword.load(); err != nil {
		return err
	}
	if m != "" && (c.KafkaSASLUser == "" || !c.KafkaSASLPassword.Set()) {
		return fmt.Errorf("RTB_KAFKA_SASL_MECHANISM %s needs RTB_KAFKA_SASL_USER and RTB_KAFKA_SASL_PASSWORD (or _FILE)", m)
	}
	if m == "" && (c.KafkaSASLUser != "" || c.KafkaSASLPassword.Set()) {
		return fmt.Errorf("RTB_KAFKA_SASL_USER or _PASSWORD is set but RTB_KAFKA_SASL_MECHANISM is not: set it (%s, %s or %s)", SASLPlain, SASLScramSHA256, SASLScramSHA512)
	}
	if !k.tls && k.tlsCA == "" && k.tlsCert == "" && k.tlsKey == "" && k.name == "" {
		c.KafkaTLS = nil
		return nil
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: k.name}
	if k.tlsCA != "" {
		pem, err := os.ReadFile(k.tlsCA)
		if err != nil {
			return fmt.Errorf("RTB_KAFKA_TLS_CA: cannot read %q: %w", k.tlsCA, unwrapPath(err))
		}
		t.RootCAs = x509.NewCertPool()
		if !t.RootCAs.AppendCertsFromPEM(pem) {
			return fmt.Errorf("RTB_KAFKA_TLS_CA: %q holds no PEM certificate", k.tlsCA)
		}
	}
	if (k.tlsCert == "") != (k.tlsKey == "") {
		return fmt.Errorf("RTB_KAFKA_TLS_CERT and RTB_KAFKA_TLS_KEY go together: set both or neither")
	}
	if k.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(k.tlsCert, k.tlsKey)
		if err != nil {
			return fmt.Errorf("RTB_KAFKA_TLS_CERT/RTB_KAFKA_TLS_KEY (%q, %q): %w", k.tlsCert, k.tlsKey, unwrapPath(err))
		}
		t.Certificates = []tls.Certificate{cert}
	}
	c.KafkaTLS = t
	return nil
}
