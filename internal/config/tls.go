package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strconv"

	"github.com/spf13/pflag"
)

// tlsSettings are one server's TLS settings as given: RTB_<P>_TLS,
// RTB_<P>_TLS_CA, _CERT, _KEY and _SERVER_NAME, and their flags.
type tlsSettings struct {
	prefix, flag        string // e.g. RTB_KAFKA and kafka
	on                  bool
	onErr               error // RTB_<P>_TLS is not a boolean
	ca, cert, key, name string
}

func tlsFromEnv(prefix, flag string) tlsSettings {
	t := tlsSettings{prefix: prefix, flag: flag, ca: Env(prefix+"_TLS_CA", ""), cert: Env(prefix+"_TLS_CERT", ""),
		key: Env(prefix+"_TLS_KEY", ""), name: Env(prefix+"_TLS_SERVER_NAME", "")}
	var err error
	if t.on, err = strconv.ParseBool(Env(prefix+"_TLS", "false")); err != nil {
		t.onErr = fmt.Errorf("%s_TLS %q: want true or false (or set --%s-tls, which overrides it)", prefix, Env(prefix+"_TLS", ""), flag)
	}
	return t
}

func (t *tlsSettings) bindFlags(fs *pflag.FlagSet, server string) {
	p, f := t.prefix, t.flag
	fs.Var(tlsOn{t}, f+"-tls", fmt.Sprintf("connect to %s over TLS (env %s_TLS; implied by the CA or client certificate settings)", server, p))
	fs.Lookup(f + "-tls").NoOptDefVal = "true"
	fs.StringVar(&t.ca, f+"-tls-ca", t.ca, fmt.Sprintf("PEM file of the CA that signed %s's certificate (env %s_TLS_CA; default: the system's)", server, p))
	fs.StringVar(&t.cert, f+"-tls-cert", t.cert, fmt.Sprintf("PEM file of a client certificate, for a %s that requires one (env %s_TLS_CERT)", server, p))
	fs.StringVar(&t.key, f+"-tls-key", t.key, fmt.Sprintf("PEM file of the client certificate's key (env %s_TLS_KEY)", p))
	fs.StringVar(&t.name, f+"-tls-server-name", t.name, fmt.Sprintf("name %s's certificate must carry, if not its host (env %s_TLS_SERVER_NAME)", server, p))
}

// tlsOn is the --<server>-tls flag: set, it overrides RTB_<P>_TLS, even a
// malformed one.
type tlsOn struct{ t *tlsSettings }

func (v tlsOn) String() string {
	if v.t == nil {
		return "false"
	}
	return strconv.FormatBool(v.t.on)
}

func (v tlsOn) Set(s string) error {
	on, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("want true or false")
	}
	v.t.on, v.t.onErr = on, nil
	return nil
}

func (tlsOn) Type() string     { return "bool" }
func (tlsOn) IsBoolFlag() bool { return true }

// config returns the TLS configuration (nil: plaintext), reading the files;
// each error names the setting.
func (t tlsSettings) config() (*tls.Config, error) {
	p := t.prefix
	if t.onErr != nil {
		return nil, t.onErr
	}
	if !t.on && t.ca == "" && t.cert == "" && t.key == "" && t.name == "" {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.name}
	if t.ca != "" {
		pem, err := os.ReadFile(t.ca)
		if err != nil {
			return nil, fmt.Errorf("%s_TLS_CA: cannot read %q: %w", p, t.ca, unwrapPath(err))
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s_TLS_CA: %q holds no PEM certificate", p, t.ca)
		}
	}
	if (t.cert == "") != (t.key == "") {
		return nil, fmt.Errorf("%s_TLS_CERT and %s_TLS_KEY go together: set both or neither", p, p)
	}
	if t.cert != "" {
		cert, err := tls.LoadX509KeyPair(t.cert, t.key)
		if err != nil {
			return nil, fmt.Errorf("%s_TLS_CERT/%s_TLS_KEY (%q, %q): %w", p, p, t.cert, t.key, unwrapPath(err))
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}
