package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/rtbpipe/rtbpipe/internal/agg"
	"github.com/rtbpipe/rtbpipe/internal/config"
	"github.com/rtbpipe/rtbpipe/internal/connect"
	"github.com/rtbpipe/rtbpipe/internal/kafka"
)

// writeCerts writes a CA, a server certificate it signed for 127.0.0.1 and
// a client certificate, as PEM files in dir: ca.pem, cert.pem, key.pem,
// client.pem, client-key.pem.
func writeCerts(t *testing.T, dir string) {
	t.Helper()
	// issue makes a key and a certificate of tmpl signed by parent (itself
	// when nil), and writes them to certFile and keyFile (if not "").
	issue := func(tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, certFile, keyFile string) *ecdsa.PrivateKey {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if parent == nil {
			parent, parentKey = tmpl, key
		}
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		files := map[string]*pem.Block{certFile: {Type: "CERTIFICATE", Bytes: der}, keyFile: {Type: "EC PRIVATE KEY", Bytes: keyDER}}
		for name, block := range files {
			if name == "" {
				continue
			}
			if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return key
	}
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "rtbpipe test CA"},
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caKey := issue(ca, nil, nil, "ca.pem", "")
	issue(&x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localkafka"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localkafka.test"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		ca, caKey, "cert.pem", "key.pem")
	// A client certificate, for servers that require one (mTLS).
	issue(&x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "rtbpipe"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
		ca, caKey, "client.pem", "client-key.pem")
}

// configFrom reads the settings from env (KEY=value) as a command would,
// after clearing the variables of clear (empty is unset), so that only env
// counts for them.
func configFrom(t *testing.T, clear []string, env ...string) (config.Config, error) {
	t.Helper()
	for _, k := range clear {
		t.Setenv(k, "")
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	cfg := config.FromEnv()
	return cfg, cfg.Validate()
}

// secureConn reads the Kafka settings from env as a command would, and
// returns the connection they describe, or the settings' error.
func secureConn(t *testing.T, env ...string) (kafka.Conn, error) {
	t.Helper()
	cfg, err := configFrom(t, []string{"RTB_KAFKA_TLS", "RTB_KAFKA_TLS_CA", "RTB_KAFKA_TLS_CERT", "RTB_KAFKA_TLS_KEY",
		"RTB_KAFKA_TLS_SERVER_NAME", "RTB_KAFKA_SASL_MECHANISM", "RTB_KAFKA_SASL_USER", "RTB_KAFKA_SASL_PASSWORD",
		"RTB_KAFKA_SASL_PASSWORD_FILE"}, env...)
	if err != nil {
		return kafka.Conn{}, err
	}
	return kafka.ConnOf(cfg), nil
}

// Kafka over TLS with SASL: the local broker run with a certificate and a
// SASL user, and every Kafka client of rtbpipe configured by the same
// settings. The worker (sarama for planning, franz-go for reading) runs
// slots exactly with SCRAM-SHA-512; the clients log in with each mechanism;
// wrong settings fail with a line that names the setting or the server.
func TestKafkaOverTLSWithSASL(t *testing.T) {
	e := getEnv(t)
	dir := t.TempDir()
	writeCerts(t, dir)
	pass := filepath.Join(dir, "password")
	if err := os.WriteFile(pass, []byte("p4ss-w0rd\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := build(t, "localkafka")
	const addr = "127.0.0.1:29392"
	broker := exec.Command(bin, "--addr", addr, "--data-dir", filepath.Join(dir, "data"), "--auto-create=false",
		"--tls-cert", filepath.Join(dir, "cert.pem"), "--tls-key", filepath.Join(dir, "key.pem"),
		"--sasl-user", "rtb", "--sasl-password-file", pass)
	if err := broker.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = broker.Process.Kill(); _ = broker.Wait() })
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if i == 100 {
			t.Fatal("the secure broker did not listen in 10 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	settings := []string{"RTB_KAFKA_BROKERS=" + addr, "RTB_KAFKA_TLS_CA=" + filepath.Join(dir, "ca.pem"),
		"RTB_KAFKA_SASL_USER=rtb", "RTB_KAFKA_SASL_PASSWORD_FILE=" + pass}

	// Every mechanism logs in, with sarama (offsets, topics) and franz-go (reads).
	topic := "secure-" + sanitize(t.Name())
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "scram-sha-512"} {
		conn, err := secureConn(t, append(settings, "RTB_KAFKA_SASL_MECHANISM="+mech)...)
		if err != nil {
			t.Fatalf("%s: %v", mech, err)
		}
		cl, err := conn.Client(context.Background(), "rtbpipe-e2e-secure")
		if err != nil {
			t.Fatalf("%s: sarama client: %v", mech, err)
		}
		if _, err := kafka.EnsureTopic(cl, topic, 2); err != nil {
			t.Fatalf("%s: %v", mech, err)
		}
		cl.Close()
	}
	conn, err := secureConn(t, append(settings, "RTB_KAFKA_SASL_MECHANISM=SCRAM-SHA-512")...)
	if err != nil {
		t.Fatal(err)
	}
	base := pastBase(20)
	d := standard(71, 2, base, 2, 300)
	pc := conn.Config("rtbpipe-e2e-secure-producer")
	pc.Producer.Partitioner = sarama.NewManualPartitioner
	pc.Producer.Return.Successes = true
	prod, err := sarama.NewSyncProducer(conn.Brokers, pc)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range d.recs {
		if _, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: topic, Partition: r.partition, Timestamp: r.logTime, Value: sarama.ByteEncoder(r.value)}); err != nil {
			t.Fatal(err)
		}
	}
	prod.Close()

	e.startWorker(t, append(settings, "RTB_KAFKA_SASL_MECHANISM=SCRAM-SHA-512")...)
	e.runSlots(t, topic, base, 3)
	e.checkExact(t, topic, d.want)

	// Wrong settings: one clear line each.
	for _, c := range []struct {
		env  []string
		want string
	}{
		{[]string{"RTB_KAFKA_SASL_MECHANISM=GSSAPI"}, "RTB_KAFKA_SASL_MECHANISM"},
		{[]string{"RTB_KAFKA_SASL_MECHANISM=PLAIN", "RTB_KAFKA_TLS_CA=" + filepath.Join(dir, "nope.pem")}, "RTB_KAFKA_TLS_CA"},
		{[]string{"RTB_KAFKA_SASL_MECHANISM=PLAIN", "RTB_KAFKA_SASL_PASSWORD_FILE=" + filepath.Join(dir, "nope")}, "RTB_KAFKA_SASL_PASSWORD_FILE"},
		{[]string{"RTB_KAFKA_SASL_MECHANISM=PLAIN", "RTB_KAFKA_TLS_CERT=" + filepath.Join(dir, "cert.pem")}, "RTB_KAFKA_TLS_KEY"},
	} {
		_, err := secureConn(t, append(settings, c.env...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("settings %v: got %v, want an error naming %s", c.env, err, c.want)
		}
	}
	wrong := filepath.Join(dir, "wrong")
	if err := os.WriteFile(wrong, []byte("wrong"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		env  []string
		want string
	}{
		{[]string{"RTB_KAFKA_SASL_MECHANISM=SCRAM-SHA-256", "RTB_KAFKA_SASL_PASSWORD_FILE=" + wrong}, addr},
		{[]string{"RTB_KAFKA_SASL_MECHANISM=PLAIN", "RTB_KAFKA_TLS_CA=", "RTB_KAFKA_TLS=true"}, addr}, // the system's CAs do not know the test CA
	} {
		conn, err := secureConn(t, append(settings, c.env...)...)
		if err != nil {
			t.Fatal(err)
		}
		cl, err := conn.Client(context.Background(), "rtbpipe-e2e-wrong")
		if err == nil {
			cl.Close()
			t.Errorf("settings %v: connected", c.env)
		} else if !strings.Contains(err.Error(), c.want) {
			t.Errorf("settings %v: %v, want an error naming the broker %s", c.env, err, c.want)
		}
	}
}

// tlsProxy terminates mutual TLS (the server certificate of dir, client
// certificates signed by its CA) in front of upstream, as a load balancer in
// front of Temporal would; it counts the clients that presented a valid
// certificate.
func tlsProxy(t *testing.T, dir, upstream string) (addr string, verified *atomic.Int64) {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert, NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	verified = &atomic.Int64{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed
			}
			go func() {
				defer c.Close()
				tc := c.(*tls.Conn)
				if err := tc.Handshake(); err != nil {
					return
				}
				verified.Add(1)
				up, err := net.Dial("tcp", upstream)
				if err != nil {
					return
				}
				defer up.Close()
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(up, tc); done <- struct{}{} }()
				go func() { _, _ = io.Copy(tc, up); done <- struct{}{} }()
				<-done
			}()
		}
	}()
	return ln.Addr().String(), verified
}

// Temporal over mutual TLS, with an API key: the worker and the starter's
// connection reach Temporal through a proxy that terminates TLS and requires
// a client certificate (the dev server speaks plaintext only; it ignores API
// keys, so only that the key does not break the connection is tested). A
// client without its certificate is refused, with an error naming the
// address.
func TestTemporalOverMutualTLS(t *testing.T) {
	e := getEnv(t)
	dir := t.TempDir()
	writeCerts(t, dir)
	addr, verified := tlsProxy(t, dir, e.cfg.TemporalAddress)
	settings := []string{"RTB_TEMPORAL_ADDRESS=" + addr, "RTB_TEMPORAL_TLS_CA=" + filepath.Join(dir, "ca.pem"),
		"RTB_TEMPORAL_TLS_CERT=" + filepath.Join(dir, "client.pem"), "RTB_TEMPORAL_TLS_KEY=" + filepath.Join(dir, "client-key.pem"),
		"RTB_TEMPORAL_API_KEY=test-api-key"}

	e.startWorker(t, settings...)
	topic := e.newTopic(t, 1)
	base := pastBase(20)
	d := standard(81, 1, base, 1, 200)
	e.produce(t, topic, d.recs)
	e.runSlots(t, topic, base, 2)
	e.checkExact(t, topic, d.want)
	if verified.Load() == 0 {
		t.Fatal("the worker did not connect through the mutual-TLS proxy")
	}

	cfg, err := configFrom(t, nil, "RTB_TEMPORAL_ADDRESS="+addr, "RTB_TEMPORAL_TLS_CA="+filepath.Join(dir, "ca.pem"),
		"RTB_TEMPORAL_API_KEY=test-api-key")
	if err != nil {
		t.Fatal(err)
	}
	if c, err := connect.Temporal(context.Background(), cfg, slog.New(slog.DiscardHandler)); err == nil {
		c.Close()
		t.Fatal("connected to a server that requires a client certificate without one")
	} else if !strings.Contains(err.Error(), addr) {
		t.Fatalf("without a client certificate: %v, want an error naming %s", err, addr)
	}
	if cfg, err = configFrom(t, nil, "RTB_TEMPORAL_TLS_CERT="+filepath.Join(dir, "client.pem"),
		"RTB_TEMPORAL_TLS_KEY="+filepath.Join(dir, "client-key.pem")); err != nil {
		t.Fatal(err)
	}
	c, err := connect.Temporal(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("with the client certificate: %v", err)
	}
	c.Close()
}

// secureClickHouse starts a ClickHouse server of its own that speaks only
// TLS on its native port (a certificate of dir) and knows one user, rtb,
// with a password (in dir/password); it returns the server's address.
func secureClickHouse(t *testing.T, dir string) string {
	t.Helper()
	bin, err := exec.LookPath("clickhouse-server")
	if err != nil {
		bin = "/usr/sbin/clickhouse-server" // Debian's package; not on every PATH
	}
	if err := os.WriteFile(filepath.Join(dir, "password"), []byte("p4ss-w0rd\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const addr, httpPort = "127.0.0.1:29440", "28123"
	config := `<?xml version="1.0"?>
<yandex>
    <logger><level>warning</level><log>DIR/server.log</log><errorlog>DIR/server.err.log</errorlog></logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>` + httpPort + `</http_port>
    <tcp_port_secure>29440</tcp_port_secure>
    <openSSL><server>
        <certificateFile>DIR/cert.pem</certificateFile><privateKeyFile>DIR/key.pem</privateKeyFile>
        <verificationMode>none</verificationMode><loadDefaultCAFile>false</loadDefaultCAFile>
        <disableProtocols>sslv2,sslv3</disableProtocols>
    </server></openSSL>
    <path>DIR/data/</path><tmp_path>DIR/tmp/</tmp_path>
    <user_files_path>DIR/user_files/</user_files_path><format_schema_path>DIR/format_schemas/</format_schema_path>
    <users_config>users.xml</users_config><default_profile>default</default_profile><default_database>default</default_database>
    <timezone>UTC</timezone><mark_cache_size>268435456</mark_cache_size>
</yandex>`
	users := `<?xml version="1.0"?>
<yandex>
    <profiles><default></default></profiles>
    <users><rtb><password>p4ss-w0rd</password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></rtb></users>
    <quotas><default></default></quotas>
</yandex>`
	if err := os.WriteFile(filepath.Join(dir, "config.xml"), []byte(strings.ReplaceAll(config, "DIR", dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "users.xml"), []byte(users), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := exec.Command(bin, "--config-file="+filepath.Join(dir, "config.xml"))
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = srv.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = srv.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = srv.Process.Kill()
			<-done
		}
	})
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
		if i == 300 {
			b, _ := os.ReadFile(filepath.Join(dir, "server.err.log"))
			t.Fatalf("the TLS ClickHouse did not listen in 30 s:\n%s", tail(b, 2000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ClickHouse over TLS on its secure native port, as a user with a password
// (from a file): the worker writes a slot's windows exactly; a wrong
// password, or a CA that does not know the server, fails with an error
// naming the server.
func TestClickHouseOverTLSWithPassword(t *testing.T) {
	e := getEnv(t)
	dir := t.TempDir()
	writeCerts(t, dir)
	addr := secureClickHouse(t, dir)
	settings := []string{"RTB_CLICKHOUSE_ADDR=" + addr, "RTB_CLICKHOUSE_TLS_CA=" + filepath.Join(dir, "ca.pem"),
		"RTB_CLICKHOUSE_USER=rtb", "RTB_CLICKHOUSE_PASSWORD_FILE=" + filepath.Join(dir, "password"),
		"RTB_CLICKHOUSE_DATABASE=rtb_secure"}
	load := func(env ...string) (config.Config, error) {
		return configFrom(t, []string{"RTB_CLICKHOUSE_TLS", "RTB_CLICKHOUSE_TLS_CA", "RTB_CLICKHOUSE_PASSWORD",
			"RTB_CLICKHOUSE_PASSWORD_FILE"}, env...)
	}
	cfg, err := load(settings...)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	store, err := connect.ClickHouse(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}

	e.startWorker(t, settings...)
	topic := e.newTopic(t, 1)
	base := pastBase(20)
	d := standard(91, 1, base, 1, 200)
	e.produce(t, topic, d.recs)
	e.runSlots(t, topic, base, 2)
	got, err := store.TopicWindows(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if diffs := agg.Diff(d.want, got); len(diffs) > 0 {
		t.Fatalf("windows over TLS differ: %v", diffs)
	}

	wrong := filepath.Join(dir, "wrong")
	if err := os.WriteFile(wrong, []byte("wrong"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, env := range [][]string{
		append(slices.Clone(settings), "RTB_CLICKHOUSE_PASSWORD_FILE="+wrong),
		append(slices.Clone(settings), "RTB_CLICKHOUSE_TLS_CA=", "RTB_CLICKHOUSE_TLS=true"), // the system's CAs do not know the test CA
	} {
		cfg, err := load(env...)
		if err != nil {
			t.Fatal(err)
		}
		if s, err := connect.ClickHouse(ctx, cfg); err == nil {
			s.Close()
			t.Errorf("%v: connected", env[len(env)-1])
		} else if !strings.Contains(err.Error(), addr) {
			t.Errorf("%v: %v, want an error naming %s", env[len(env)-1], err, addr)
		}
	}
}
