package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startDashboard builds the starter and serves its dashboard on addr over
// the test database; it stops with the test.
func (e *env) startDashboard(t *testing.T, addr string, args ...string) {
	t.Helper()
	bin := build(t, "starter")
	cmd := e.starterCmd(bin, e.cfg.TaskQueue, append([]string{"dashboard", "--addr", addr}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.Contains(line, "dashboard: http://"+addr) {
		t.Fatalf("starter dashboard said %q, %v", line, err)
	}
	go func() { _, _ = bufio.NewReader(out).WriteTo(os.Stderr) }()
}

// chromium runs Debian's headless Chromium on url: --dump-dom after the
// page's scripts ran for a while, or a screenshot.
func chromium(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed (make test installs Debian's package)")
	}
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--user-data-dir=" + t.TempDir(), "--virtual-time-budget=20000", "--window-size=1400,1600"}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, append(base, args...)...).Output()
	if err != nil {
		t.Fatalf("chromium %v: %v", args, err)
	}
	return string(out)
}

// The dashboard in a real browser: the page loads, its four charts render,
// and the numbers it shows equal what ClickHouse holds for the same range.
func TestDashboardInABrowser(t *testing.T) {
	e := getEnv(t)
	e.startWorker(t)
	topic := e.newTopic(t, 2)
	base := pastBase(20)
	d := standard(151, 2, base, 3, 400)
	e.produce(t, topic, d.recs)
	e.runSlots(t, topic, base, 4)
	const addr = "127.0.0.1:28080"
	e.startDashboard(t, addr)
	if resp, err := http.Get("http://" + addr + "/api/windows?topic=" + topic); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/windows: %v %v", resp, err)
	}

	dom := chromium(t, "--dump-dom", "http://"+addr+"/?topic="+topic)
	attr := func(re string) string {
		m := regexp.MustCompile(re).FindStringSubmatch(dom)
		if m == nil {
			t.Fatalf("the page lacks %s:\n%.3000s", re, dom)
		}
		return m[1]
	}
	attr(`<body[^>]* data-rendered="(\d+)"`)
	if n := strings.Count(dom, "<canvas"); n < 4 {
		t.Errorf("%d charts drawn (canvas), want 4", n)
	}
	from, err := time.Parse(time.RFC3339, attr(`data-from="([^"]+)"`))
	if err != nil {
		t.Fatal(err)
	}
	to, err := time.Parse(time.RFC3339, attr(`data-to="([^"]+)"`))
	if err != nil {
		t.Fatal(err)
	}
	// The events of the range, as the page shows them and as ClickHouse has them.
	shown, _ := strconv.ParseUint(attr(`id="total-events"[^>]* data-value="(\d+)"`), 10, 64)
	exact, err := e.store.TopicWindows(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	var want uint64
	var wantRevenue float64
	for k, v := range exact {
		if w := time.Unix(k.Window, 0); !w.Before(from) && w.Before(to) {
			want += uint64(v.Count)
			wantRevenue += float64(v.RevenueMicros) / 1e6
		}
	}
	if shown != want || want == 0 {
		t.Errorf("the page shows %d events for [%s, %s), ClickHouse's exact windows hold %d", shown, from, to, want)
	}
	revenue, _ := strconv.ParseFloat(attr(`id="total-revenue"[^>]* data-value="([0-9.]+)"`), 64)
	if math.Abs(revenue-wantRevenue) > 1e-6 {
		t.Errorf("the page shows revenue %.6f, ClickHouse %.6f", revenue, wantRevenue)
	}
	countries, err := e.store.Countries(context.Background(), topic, from, to)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range countries {
		re := fmt.Sprintf(`data-country="%s" data-revenue="([0-9.]+)" data-events="(\d+)"`, regexp.QuoteMeta(c.Country))
		m := regexp.MustCompile(re).FindStringSubmatch(dom)
		if m == nil {
			t.Errorf("country %s is not on the page", c.Country)
			continue
		}
		r, _ := strconv.ParseFloat(m[1], 64)
		if n, _ := strconv.ParseUint(m[2], 10, 64); n != c.Events || math.Abs(r-c.Revenue) > 1e-6 {
			t.Errorf("country %s: page %s events $%s, ClickHouse %d $%.6f", c.Country, m[2], m[1], c.Events, c.Revenue)
		}
	}
	if !strings.Contains(dom, "/workflows/slot-"+topic+"-") {
		t.Error("the health panel does not link the slots' runs")
	}
	png := filepath.Join(t.TempDir(), "dashboard.png")
	chromium(t, "--screenshot="+png, "http://"+addr+"/?topic="+topic)
	if st, err := os.Stat(png); err != nil || st.Size() < 20_000 {
		t.Errorf("screenshot: %v %v", st, err)
	}
}

// startRedis runs Debian's redis-server on addr for the test.
func startRedis(t *testing.T, addr string) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server is not installed (make test installs Debian's package)")
	}
	host, port, _ := strings.Cut(addr, ":")
	cmd := exec.Command(bin, "--bind", host, "--port", port, "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		if i == 100 {
			t.Fatalf("redis-server not listening on %s after 10 s", addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// getCached requests url and returns the X-Cache header and the body.
func getCached(t *testing.T, url string) (string, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s %v", url, resp.StatusCode, b, err)
	}
	return resp.Header.Get("X-Cache"), string(b)
}

// Two API replicas share Redis: what one computed the other serves; a run
// that changes a window of the range (late events) makes both compute it
// again, never serving the old figures.
func TestDashboardCacheInRedisIsNeverStale(t *testing.T) {
	e := getEnv(t)
	e.startWorker(t)
	const redisAddr = "127.0.0.1:26379"
	startRedis(t, redisAddr)
	e.startDashboard(t, "127.0.0.1:28081", "--cache", "redis", "--redis-addr", redisAddr)
	e.startDashboard(t, "127.0.0.1:28082", "--cache", "redis", "--redis-addr", redisAddr)
	topic := e.newTopic(t, 1)
	base := pastBase(30)
	var recs []record
	event := func(i int, ev time.Time, log time.Time) record {
		return record{logTime: log, value: fmt.Appendf(nil, `{"event_id":"e-%d","timestamp":"%s","user_id":"u1","campaign_id":"c1",`+
			`"ad_format":"banner","country":"US","device":"ios","event_type":"impression","revenue":0}`, i, ev.Format(time.RFC3339Nano))}
	}
	for i := range 100 {
		recs = append(recs, event(i, base.Add(time.Duration(i)*100*time.Millisecond), base.Add(time.Duration(i)*100*time.Millisecond)))
	}
	recs = append(recs, event(1000, base.Add(time.Minute), base.Add(time.Minute)))
	e.produce(t, topic, recs)
	e.runSlot(t, topic, base)
	q := fmt.Sprintf("/api/minutes?topic=%s&from=%s&to=%s", topic, base.Format(time.RFC3339), base.Add(time.Minute).Format(time.RFC3339))
	c1, b1 := getCached(t, "http://127.0.0.1:28081"+q)
	c2, b2 := getCached(t, "http://127.0.0.1:28082"+q)
	if c1 != "miss" || c2 != "hit" || b1 != b2 || !strings.Contains(b1, `"impression":100`) {
		t.Fatalf("replica 1: %s %s; replica 2: %s %s", c1, b1, c2, b2)
	}
	// 20 late events of the same window, in the next slot.
	var late []record
	for i := range 20 {
		late = append(late, event(2000+i, base.Add(30*time.Second), base.Add(time.Minute+time.Duration(i)*time.Millisecond)))
	}
	late = append(late, event(3000, base.Add(2*time.Minute), base.Add(2*time.Minute)))
	e.produce(t, topic, late)
	e.runSlot(t, topic, base.Add(time.Minute))
	c2, b2 = getCached(t, "http://127.0.0.1:28082"+q)
	c1, b1 = getCached(t, "http://127.0.0.1:28081"+q)
	if c2 != "miss" || !strings.Contains(b2, `"impression":120`) || c1 != "hit" || b1 != b2 {
		t.Fatalf("after the late events: replica 2: %s %s; replica 1: %s %s", c2, b2, c1, b1)
	}
}
