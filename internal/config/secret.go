package config

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
)

// Secret is a password or key. It prints, logs and encodes as "[redacted]",
// so that it never reaches --help, a log line, an error message or a
// workflow's input; Reveal gives it to the client that needs it.
type Secret struct{ v string }

const redacted = "[redacted]"

// Reveal returns the secret itself.
func (s Secret) Reveal() string { return s.v }

// Set says whether the secret is not empty.
func (s Secret) Set() bool { return s.v != "" }

func (s Secret) String() string {
	if s.v == "" {
		return ""
	}
	return redacted
}

// GoString keeps %#v from printing it.
func (s Secret) GoString() string { return s.String() }

// LogValue keeps log/slog from printing it.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText keeps encoders (JSON, YAML) from writing it.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// secretSource is where a secret comes from: an environment variable, or a
// file named by <name>_FILE (or by a flag), never a flag's value (which the
// process list and --help would show).
type secretSource struct {
	env  string // e.g. RTB_CLICKHOUSE_PASSWORD; the file's variable is env + "_FILE"
	file string // the file to read, from env + "_FILE" or a flag
}

func newSecretSource(env string) secretSource {
	return secretSource{env: env, file: strings.TrimSpace(os.Getenv(env + "_FILE"))}
}

// load reads the secret: from its file if one is named, else from its
// environment variable. Errors name the setting and the file, never the
// secret.
func (s secretSource) load() (Secret, error) {
	v := os.Getenv(s.env)
	if s.file == "" {
		return Secret{v}, nil
	}
	if v != "" {
		return Secret{}, fmt.Errorf("%s and %s_FILE are both set: set one", s.env, s.env)
	}
	b, err := os.ReadFile(s.file)
	if err != nil {
		return Secret{}, fmt.Errorf("%s_FILE: cannot read the file %q: %w", s.env, s.file, unwrapPath(err))
	}
	return Secret{strings.TrimRight(string(b), "\r\n")}, nil
}

// unwrapPath drops the path from an *os.PathError, which the message names
// already.
func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
