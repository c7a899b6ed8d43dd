package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"go.yaml.in/yaml/v3"

	"github.com/rtbpipe/rtbpipe/internal/config"
	"github.com/rtbpipe/rtbpipe/internal/metrics"
)

// dashboard is what the tests read of a Grafana dashboard's JSON.
type dashboard struct {
	UID        string  `json:"uid"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string     `json:"name"`
			Query      string     `json:"query"`
			Datasource datasource `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	Title      string     `json:"title"`
	Type       string     `json:"type"`
	Datasource datasource `json:"datasource"`
	Panels     []panel    `json:"panels"`
	Targets    []struct {
		Datasource datasource `json:"datasource"`
		Expr       string     `json:"expr"`
		RawSQL     string     `json:"rawSql"`
	} `json:"targets"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// grafanaMacros expands what Grafana's ClickHouse data source expands
// (v4: $__fromTime and $__toTime are toDateTime(seconds)) and the topic.
func grafanaMacros(sql, topic string, from, to time.Time) string {
	return strings.NewReplacer("$__fromTime", fmt.Sprintf("toDateTime(%d)", from.Unix()),
		"$__toTime", fmt.Sprintf("toDateTime(%d)", to.Unix()), "${topic}", topic, "$topic", topic).Replace(sql)
}

// docker-compose's Grafana cannot run here. Its provisioning is checked
// instead: every panel uses a provisioned data source; every PromQL
// expression is valid to the stack's Prometheus and names metrics the
// worker exports; every SQL query runs on the stack's ClickHouse (18.16)
// over a topic the pipeline wrote, and the events panel adds up to the
// events the slots counted. Both Prometheus configurations pass promtool.
func TestGrafanaDashboard(t *testing.T) {
	e := getEnv(t)
	var provisioned struct {
		Datasources []struct {
			UID, Type, URL string
			JSONData       map[string]any `yaml:"jsonData"`
		} `yaml:"datasources"`
	}
	b, err := os.ReadFile("../deploy/grafana/provisioning/datasources/rtbpipe.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &provisioned); err != nil {
		t.Fatalf("datasources: %v", err)
	}
	uids := map[string]string{}
	for _, d := range provisioned.Datasources {
		uids[d.UID] = d.Type
	}
	var dash dashboard
	b, err = os.ReadFile("../deploy/grafana/dashboards/rtbpipe.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	var prov struct {
		Providers []struct {
			Options struct{ Path string } `yaml:"options"`
		} `yaml:"providers"`
	}
	if b, err = os.ReadFile("../deploy/grafana/provisioning/dashboards/rtbpipe.yml"); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &prov); err != nil || len(prov.Providers) != 1 {
		t.Fatalf("dashboard provider: %v %+v", err, prov)
	}
	compose, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(compose), "./deploy/grafana/dashboards:"+prov.Providers[0].Options.Path) {
		t.Errorf("docker-compose does not mount deploy/grafana/dashboards at the provider's path %s", prov.Providers[0].Options.Path)
	}

	// Data for the SQL panels: three slots of a fresh topic.
	e.startWorker(t)
	topic := e.newTopic(t, 2)
	base := pastBase(20)
	d := standard(131, 2, base, 2, 300)
	e.produce(t, topic, d.recs)
	var counted uint64
	for i := range 3 {
		counted += e.runSlot(t, topic, base.Add(time.Duration(i)*time.Minute)).Events
	}
	db, err := clickhouse.Open(&clickhouse.Options{Addr: []string{e.cfg.ClickHouseAddr}, Protocol: clickhouse.Native,
		Auth: clickhouse.Auth{Database: e.cfg.ClickHouseDatabase, Username: e.cfg.ClickHouseUser, Password: e.cfg.ClickHousePassword.Reveal()}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c, err := promapi.NewClient(promapi.Config{Address: config.Env("RTB_PROMETHEUS_URL", "http://127.0.0.1:9090")})
	if err != nil {
		t.Fatal(err)
	}
	prom := promv1.NewAPI(c)
	known := map[string]bool{}
	for _, m := range []string{metrics.Events, metrics.DeadLetters, metrics.Skipped, metrics.Markers, metrics.Findings, metrics.Repairs} {
		known[m+"_total"] = true
	}
	for _, m := range []string{metrics.BatchDuration, metrics.SlotLatency} {
		for _, s := range []string{"_bucket", "_sum", "_count"} {
			known[m+"_seconds"+s] = true
		}
	}
	known[metrics.Lag] = true

	from, to := base.Add(-48*time.Hour), time.Now().Add(time.Hour) // late events are hours late
	ctx := context.Background()
	run := func(where, sql string) [][]any {
		t.Helper()
		rows, err := db.Query(ctx, grafanaMacros(sql, topic, from, to))
		if err != nil {
			t.Errorf("%s: ClickHouse: %v\n%s", where, err, sql)
			return nil
		}
		defer rows.Close()
		var out [][]any
		cols := rows.ColumnTypes()
		for rows.Next() {
			vals := make([]any, len(cols))
			for i, ct := range cols {
				vals[i] = newOf(ct.ScanType())
			}
			if err := rows.Scan(vals...); err != nil {
				t.Errorf("%s: %v", where, err)
				return nil
			}
			out = append(out, vals)
		}
		return out
	}
	for _, v := range dash.Templating.List {
		if uids[v.Datasource.UID] == "" {
			t.Errorf("variable %s: data source %q is not provisioned", v.Name, v.Datasource.UID)
		}
		if got := run("variable "+v.Name, v.Query); !containsValue(got, topic) {
			t.Errorf("variable %s does not list the topic %s: %v", v.Name, topic, got)
		}
	}
	var sqlPanels, promPanels int
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if uids[p.Datasource.UID] == "" {
				t.Errorf("panel %q: data source %q is not provisioned", p.Title, p.Datasource.UID)
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, q := range p.Targets {
				switch typ := uids[q.Datasource.UID]; typ {
				case "prometheus":
					promPanels++
					for _, m := range regexp.MustCompile(`\brtb_[a-z_]+`).FindAllString(q.Expr, -1) {
						if !known[m] {
							t.Errorf("panel %q: %s is not a metric the worker exports", p.Title, m)
						}
					}
					qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					_, _, err := prom.Query(qctx, strings.ReplaceAll(q.Expr, "$topic", topic), time.Now())
					cancel()
					if err != nil {
						t.Errorf("panel %q: Prometheus refuses %s: %v", p.Title, q.Expr, err)
					}
				case "grafana-clickhouse-datasource":
					sqlPanels++
					rows := run(fmt.Sprintf("panel %q", p.Title), q.RawSQL)
					if strings.Contains(p.Title, "Events per minute") {
						var sum uint64
						for _, r := range rows {
							sum += *(r[2].(*uint64))
						}
						if sum != counted {
							t.Errorf("panel %q adds up to %d events, the slots counted %d", p.Title, sum, counted)
						}
					}
				default:
					t.Errorf("panel %q: query of data source %q (%s)", p.Title, q.Datasource.UID, typ)
				}
			}
		}
	}
	walk(dash.Panels)
	if sqlPanels < 5 || promPanels < 6 {
		t.Errorf("%d SQL and %d PromQL queries: the dashboard lost panels", sqlPanels, promPanels)
	}
	for _, f := range []string{"../deploy/prometheus/prometheus.yml", "../deploy/local/prometheus/prometheus.yml"} {
		if out, err := exec.Command("promtool", "check", "config", f).CombinedOutput(); err != nil {
			t.Errorf("promtool check config %s: %v\n%s", f, err, out)
		}
	}
}

// newOf is a pointer to a new value of type t, to scan into.
func newOf(t reflect.Type) any { return reflect.New(t).Interface() }

// containsValue says whether a row holds the string s.
func containsValue(rows [][]any, s string) bool {
	for _, r := range rows {
		for _, v := range r {
			if p, ok := v.(*string); ok && *p == s {
				return true
			}
		}
	}
	return false
}
