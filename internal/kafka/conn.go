package kafka

import (
	"context"
	"crypto/tls"
	"fmt"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/rtbpipe/rtbpipe/internal/config"
)

// Conn is how every Kafka client of rtbpipe reaches the brokers: sarama's
// (Config, Client) and franz-go's (the partition readers) alike, from the
// same settings.
type Conn struct {
	Brokers []string
	TLS     *tls.Config // nil: plaintext
	SASL    SASL        // Mechanism "": none
}

// SASL is a SASL login.
type SASL struct {
	Mechanism string // config.SASLPlain, config.SASLScramSHA256, config.SASLScramSHA512, or ""
	User      string
	Password  config.Secret
}

// ConnOf is the connection the settings describe.
func ConnOf(cfg config.Config) Conn {
	return Conn{Brokers: cfg.KafkaBrokers, TLS: cfg.KafkaTLS,
		SASL: SASL{Mechanism: cfg.KafkaSASLMechanism, User: cfg.KafkaSASLUser, Password: cfg.KafkaSASLPassword}}
}

// Config is rtbpipe's sarama configuration (NewConfig) with the
// connection's TLS and SASL.
func (c Conn) Config(clientID string) *sarama.Config {
	sc := NewConfig(clientID)
	if c.TLS != nil {
		sc.Net.TLS.Enable, sc.Net.TLS.Config = true, c.TLS
	}
	if c.SASL.Mechanism == "" {
		return sc
	}
	sc.Net.SASL.Enable, sc.Net.SASL.Handshake = true, true
	sc.Net.SASL.User, sc.Net.SASL.Password = c.SASL.User, c.SASL.Password.Reveal()
	switch c.SASL.Mechanism {
	case config.SASLPlain:
		sc.Net.SASL.Mechanism = sarama.SASLTypePlaintext
	case config.SASLScramSHA256, config.SASLScramSHA512:
		sc.Net.SASL.Mechanism = sarama.SASLMechanism(c.SASL.Mechanism)
		mech := c.SASL.mechanism()
		sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{mech: mech} }
	}
	return sc
}

// Client connects a sarama client.
func (c Conn) Client(ctx context.Context, clientID string) (sarama.Client, error) {
	return NewClient(ctx, c.Brokers, c.Config(clientID))
}

// opts are franz-go's options for the connection.
func (c Conn) opts() []kgo.Opt {
	opts := []kgo.Opt{kgo.SeedBrokers(c.Brokers...)}
	if c.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(c.TLS.Clone()))
	}
	if m := c.SASL.mechanism(); m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	return opts
}

// mechanism is the login as franz-go's mechanism (nil: none).
func (s SASL) mechanism() sasl.Mechanism {
	switch s.Mechanism {
	case config.SASLPlain:
		return plain.Auth{User: s.User, Pass: s.Password.Reveal()}.AsMechanism()
	case config.SASLScramSHA256:
		return scram.Auth{User: s.User, Pass: s.Password.Reveal()}.AsSha256Mechanism()
	case config.SASLScramSHA512:
		return scram.Auth{User: s.User, Pass: s.Password.Reveal()}.AsSha512Mechanism()
	}
	return nil
}

// scramClient is sarama's SCRAM client on franz-go's SCRAM implementation.
type scramClient struct {
	mech sasl.Mechanism
	sess sasl.Session
	done bool
}

func (s *scramClient) Begin(_, _, _ string) error { return nil } // the mechanism holds the login

func (s *scramClient) Step(challenge string) (string, error) {
	if s.sess == nil {
		sess, first, err := s.mech.Authenticate(context.Background(), "")
		if err != nil {
			return "", fmt.Errorf("SCRAM: %w", err)
		}
		s.sess = sess
		return string(first), nil
	}
	done, next, err := s.sess.Challenge([]byte(challenge))
	if err != nil {
		return "", fmt.Errorf("SCRAM: %w", err)
	}
	s.done = done
	return string(next), nil
}

func (s *scramClient) Done() bool { return s.done }
