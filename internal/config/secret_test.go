package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const canary = "s3cr3t-canary-41"

// However a Config is printed, logged or encoded, its password is not.
func TestSecretNeverPrinted(t *testing.T) {
	t.Setenv("RTB_CLICKHOUSE_PASSWORD", canary)
	c := FromEnv()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.ClickHousePassword.Reveal() != canary {
		t.Fatalf("the password is %q", c.ClickHousePassword.Reveal())
	}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "cfg", c, "password", c.ClickHousePassword)
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	for what, s := range map[string]string{
		"%v": fmt.Sprintf("%v", c), "%+v": fmt.Sprintf("%+v", c), "%#v": fmt.Sprintf("%#v", c),
		"%s of the secret": fmt.Sprintf("%s", c.ClickHousePassword), "an error": fmt.Errorf("connect with %v", c).Error(),
		"slog": logged.String(), "JSON": string(js),
	} {
		if strings.Contains(s, canary) {
			t.Errorf("%s shows the password: %s", what, s)
		}
	}
}

func TestSecretFromAFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pw")
	if err := os.WriteFile(file, []byte(canary+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RTB_CLICKHOUSE_PASSWORD_FILE", file)
	c := FromEnv()
	if err := c.Validate(); err != nil || c.ClickHousePassword.Reveal() != canary {
		t.Fatalf("from a file: %q, %v", c.ClickHousePassword.Reveal(), err)
	}

	t.Setenv("RTB_CLICKHOUSE_PASSWORD", "other")
	c = FromEnv()
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "both set") {
		t.Fatalf("password and password file both set: got %v", err)
	}

	t.Setenv("RTB_CLICKHOUSE_PASSWORD", "")
	t.Setenv("RTB_CLICKHOUSE_PASSWORD_FILE", filepath.Join(dir, "missing"))
	c = FromEnv()
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "RTB_CLICKHOUSE_PASSWORD_FILE") || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("a missing file: got %v, want an error naming the setting and the file", err)
	}
}

func TestKafkaSettingsErrorsNameTheSetting(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"RTB_KAFKA_TLS": "yes please"}, "RTB_KAFKA_TLS"},
		{map[string]string{"RTB_KAFKA_SASL_MECHANISM": "GSSAPI"}, "RTB_KAFKA_SASL_MECHANISM"},
		{map[string]string{"RTB_KAFKA_SASL_MECHANISM": "PLAIN", "RTB_KAFKA_SASL_USER": "u"}, "RTB_KAFKA_SASL_PASSWORD"},
		{map[string]string{"RTB_KAFKA_SASL_USER": "u", "RTB_KAFKA_SASL_PASSWORD": "p"}, "RTB_KAFKA_SASL_MECHANISM"},
		{map[string]string{"RTB_KAFKA_TLS_CA": filepath.Join(dir, "none.pem")}, "RTB_KAFKA_TLS_CA"},
		{map[string]string{"RTB_KAFKA_TLS_CERT": filepath.Join(dir, "c.pem")}, "RTB_KAFKA_TLS_KEY"},
	} {
		t.Run(c.want, func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			cfg := FromEnv()
			if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%v: got %v, want an error naming %s", c.env, err, c.want)
			}
		})
	}
	cfg := FromEnv()
	if err := cfg.Validate(); err != nil || cfg.KafkaTLS != nil || cfg.KafkaSASLMechanism != "" {
		t.Fatalf("no settings: %v, TLS %v, SASL %q; want plaintext", err, cfg.KafkaTLS, cfg.KafkaSASLMechanism)
	}
}
