// Command generator is rtbpipe's load generator, the Go version of the
// prototype's ad_log_generator: it produces ad events (JSON) to Kafka at a
// given rate, optionally with late events and malformed records, and writes
// a manifest of exactly what Kafka acknowledged, per window and key, so that
// the pipeline's output can be verified against it.
//
//	go run ./generator --rate 80 --duration 3m --manifest run.json
//	go run ./generator --rate 0 --count 100000 --seed 1
//	go run ./generator --start 2026-11-24T00:00:00Z --rate 200 --duration 30m --late-fraction 0.05
package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/IBM/sarama"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rtbpipe/rtbpipe/generator/gen"
	"github.com/rtbpipe/rtbpipe/internal/config"
	"github.com/rtbpipe/rtbpipe/internal/kafka"
)

// options are the command's settings.
type options struct {
	brokers      []string
	topic        string
	rate         float64
	duration     time.Duration
	count        int64
	seed         uint64
	seedSet      bool
	partitions   int32
	late         float64
	maxLateness  time.Duration
	malformed    float64
	manifest     string
	start        string
	startTime    time.Time // parsed --start; zero in real-time mode
	batch        int
	linger       time.Duration
	compression  string
	codec        sarama.CompressionCodec
	progress     time.Duration
	drainTimeout time.Duration
	idempotent   bool
	conn         kafka.Conn // the brokers, TLS and SASL
	until        string
	untilTime    time.Time // parsed --until
	anomalySpec  string
	anomaly      *gen.Anomaly // parsed --anomaly
}

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		// Graceful stop in progress: a second signal kills the process.
		stop()
	}()
	runFn := func(ctx context.Context, o options) error {
		_, err := run(ctx, o, log)
		return err
	}
	if err := newCommand(runFn).ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "generator:", err)
		os.Exit(1)
	}
}

// newCommand returns the command; runFn runs it with validated options.
func newCommand(runFn func(context.Context, options) error) *cobra.Command {
	var o options
	env := config.FromEnv()
	cmd := &cobra.Command{
		Use:   "generator",
		Short: "Produce synthetic ad events to Kafka and record what was acknowledged",
		Long: `generator produces ad events (JSON, one per record) to a Kafka topic: the prototype's
ad_log_generator (countries US, JP, CA, UK, KR, DE, FR by weight; a click happens with the
CTR of its format: ~25% rewarded_video, ~12% interstitial, ~5% banner; US has the highest
revenue per click). Each record's Kafka timestamp is its log time: the wall clock, or with
--start a synthetic clock that starts at --start and advances by 1/rate s per event without
sleeping (to produce past minutes quickly, e.g. for backfills and benchmarks).

The manifest (--manifest) counts only records Kafka acknowledged: per 1-minute window of
event time and (event_type, country, ad_format) the events and exact revenue in micro-units.
A record Kafka does not acknowledge is counted as failed, and the command then exits non-zero.
SIGINT/SIGTERM stop producing, drain the producer and still write the manifest.

Note: with --start, log times are synthetic; a broker may delete records older than its
retention soon after, and Kafka 4 rejects timestamps more than an hour in the future.`,
		Example: `  generator --rate 80 --duration 3m --manifest run.json
  generator --rate 0 --count 100000 --seed 1 --partitions 4
  generator --start 2026-11-24T00:00:00Z --rate 200 --duration 30m --late-fraction 0.05 --malformed-fraction 0.01`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, w := range config.UnknownVariables(os.Environ()) {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
			}
			if err := env.Validate(); err != nil { // reads the Kafka TLS and SASL settings
				return err
			}
			o.brokers, o.topic, o.conn = env.KafkaBrokers, env.Topic, kafka.ConnOf(env) // bound by env.BindFlags below
			o.seedSet = cmd.Flags().Changed("seed")
			if err := o.validate(); err != nil {
				return err
			}
			return runFn(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.SortFlags = false
	// Only the Kafka settings of the shared configuration concern the generator.
	shared := pflag.NewFlagSet("shared", pflag.ContinueOnError)
	env.BindFlags(shared)
	for _, name := range []string{"kafka-brokers", "topic", "kafka-tls", "kafka-tls-ca", "kafka-tls-cert", "kafka-tls-key",
		"kafka-tls-server-name", "kafka-sasl-mechanism", "kafka-sasl-user", "kafka-sasl-password-file"} {
		f.AddFlag(shared.Lookup(name))
	}

	f.Float64Var(&o.rate, "rate", 80, "events per second (0 = as fast as possible); with --start, the synthetic clock's rate")
	f.DurationVar(&o.duration, "duration", 0, "how long to produce, e.g. 3m (of synthetic time with --start); 0 = until stopped")
	f.Int64Var(&o.count, "count", 0, "number of records to produce (wins over --duration); 0 = no limit")
	f.Uint64Var(&o.seed, "seed", 0, "random seed: the same seed gives the same events (default: a random seed, logged)")
	f.Int32Var(&o.partitions, "partitions", 4, "partitions of the topic if it has to be created")
	f.Float64Var(&o.late, "late-fraction", 0, "fraction of events whose event time precedes their log time (by up to --max-lateness)")
	f.DurationVar(&o.maxLateness, "max-lateness", 5*time.Minute, "largest lateness of a late event")
	f.Float64Var(&o.malformed, "malformed-fraction", 0, "fraction of records that are malformed (broken JSON, missing field, bad values...)")
	f.StringVar(&o.manifest, "manifest", "", "write the manifest of acknowledged records to this file")
	f.StringVar(&o.start, "start", "", "synthetic time mode: log times start at this RFC 3339 time and advance by 1/rate s per event, without sleeping")
	f.IntVar(&o.batch, "batch", 1000, "producer: flush a partition's batch at this many records (Flush.Messages)")
	f.DurationVar(&o.linger, "linger", 5*time.Millisecond, "producer: flush a batch at the latest after this long (Flush.Frequency)")
	f.StringVar(&o.compression, "compression", "none", "producer compression: none, lz4, snappy, gzip or zstd")
	f.DurationVar(&o.progress, "progress", 10*time.Second, "interval of progress logs")
	f.BoolVar(&o.idempotent, "idempotent", false, "producer: idempotent (retries after a lost acknowledgement write nothing twice; the manifest then matches the log even under network faults)")
	f.DurationVar(&o.drainTimeout, "drain-timeout", 30*time.Second, "at the end, how long to wait for Kafka to acknowledge the records in flight; the rest count as failed")
	f.StringVar(&o.until, "until", "", "real-time mode: stop before this RFC 3339 time (no record is logged at or after it; e.g. a whole minute)")
	f.StringVar(&o.anomalySpec, "anomaly", "", "inject an anomaly: 'country=US,clicks=0.1,after=2m,for=2m' (US clicks drop 90% for 2 minutes of event time, "+
		"2 minutes after the start) or 'ad_format=banner,clicks=3,...' (the format's CTR triples)")
	return cmd
}

// validate checks the flags and derives the parsed values.
func (o *options) validate() error {
	if math.IsNaN(o.rate) || math.IsInf(o.rate, 0) || o.rate < 0 {
		return fmt.Errorf("--rate %v: must be a number >= 0 (0 = as fast as possible)", o.rate)
	}
	if o.duration < 0 {
		return fmt.Errorf("--duration %v: must not be negative", o.duration)
	}
	if o.count < 0 {
		return fmt.Errorf("--count %d: must not be negative", o.count)
	}
	if o.partitions < 1 {
		return fmt.Errorf("--partitions %d: must be at least 1", o.partitions)
	}
	for _, fr := range []struct {
		name string
		v    float64
	}{{"--late-fraction", o.late}, {"--malformed-fraction", o.malformed}} {
		if !(fr.v >= 0 && fr.v <= 1) {
			return fmt.Errorf("%s %v: must be in [0, 1]", fr.name, fr.v)
		}
	}
	if o.maxLateness < 0 {
		return fmt.Errorf("--max-lateness %v: must not be negative", o.maxLateness)
	}
	if o.late > 0 && o.maxLateness < time.Microsecond {
		return fmt.Errorf("--late-fraction %v needs a --max-lateness of at least 1µs", o.late)
	}
	if o.start != "" {
		t, err := time.Parse(time.RFC3339Nano, o.start)
		if err != nil {
			return fmt.Errorf("--start %q: not an RFC 3339 time like 2026-11-24T21:00:00Z", o.start)
		}
		if t.Before(time.Unix(0, 0)) || t.Year() > 2100 {
			return fmt.Errorf("--start %q: outside 1970..2100", o.start)
		}
		if o.rate == 0 {
			return fmt.Errorf("--start needs --rate > 0: the synthetic clock advances by 1/rate s per event")
		}
		o.startTime = t.UTC()
	}
	if o.batch < 1 {
		return fmt.Errorf("--batch %d: must be at least 1", o.batch)
	}
	if o.linger < 0 {
		return fmt.Errorf("--linger %v: must not be negative", o.linger)
	}
	if o.drainTimeout <= 0 {
		return fmt.Errorf("--drain-timeout %v: must be positive", o.drainTimeout)
	}
	if o.progress <= 0 {
		return fmt.Errorf("--progress %v: must be positive", o.progress)
	}
	codecs := map[string]sarama.CompressionCodec{"none": sarama.CompressionNone, "lz4": sarama.CompressionLZ4,
		"snappy": sarama.CompressionSnappy, "gzip": sarama.CompressionGZIP, "zstd": sarama.CompressionZSTD}
	c, ok := codecs[strings.ToLower(o.compression)]
	if !ok {
		return fmt.Errorf("--compression %q: want none, lz4, snappy, gzip or zstd", o.compression)
	}
	o.codec = c
	if o.until != "" {
		t, err := time.Parse(time.RFC3339Nano, o.until)
		if err != nil {
			return fmt.Errorf("--until %q: not an RFC 3339 time like 2026-11-24T21:03:00Z", o.until)
		}
		if !o.startTime.IsZero() {
			return fmt.Errorf("--until is for the real-time mode; with --start, use --duration")
		}
		o.untilTime = t.UTC()
	}
	if o.manifest != "" { // written at the end: a path it cannot take would leave the records without it
		if fi, err := os.Stat(o.manifest); err == nil && fi.IsDir() {
			return fmt.Errorf("--manifest %s: is a directory", o.manifest)
		}
		f, err := os.CreateTemp(filepath.Dir(o.manifest), ".manifest-check-*")
		if err != nil {
			return fmt.Errorf("--manifest %s: cannot write there: %w", o.manifest, err)
		}
		f.Close()
		os.Remove(f.Name())
	}
	if o.anomalySpec != "" {
		start := o.startTime
		if start.IsZero() {
			start = time.Now().UTC()
		}
		a, err := parseAnomaly(o.anomalySpec, start)
		if err != nil {
			return fmt.Errorf("--anomaly %q: %w", o.anomalySpec, err)
		}
		o.anomaly = a
	}
	return nil
}

// parseAnomaly reads "country=US,clicks=0.1,after=2m,for=2m" (or ad_format=
// instead of country=); after counts from start.
func parseAnomaly(spec string, start time.Time) (*gen.Anomaly, error) {
	a := &gen.Anomaly{}
	var after, span time.Duration = 0, -1
	for _, kv := range strings.Split(spec, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return nil, fmt.Errorf("%q is not key=value", kv)
		}
		var err error
		switch k {
		case "country":
			a.Country = v
		case "ad_format":
			a.AdFormat = v
		case "clicks":
			a.Clicks, err = strconv.ParseFloat(v, 64)
		case "after":
			after, err = time.ParseDuration(v)
		case "for":
			span, err = time.ParseDuration(v)
		default:
			return nil, fmt.Errorf("unknown key %q: want country or ad_format, clicks, after, for", k)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
	}
	if span <= 0 || after < 0 {
		return nil, fmt.Errorf("want for > 0 and after >= 0 (e.g. after=2m,for=2m)")
	}
	a.From = start.Add(after)
	a.To = a.From.Add(span)
	if err := (gen.Config{Anomaly: a}).Validate(); err != nil {
		return nil, err
	}
	return a, nil
}
