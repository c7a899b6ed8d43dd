// rtbpipe's dashboard: reads the JSON API of the server that serves it and
// draws the charts with uPlot. It refreshes itself when a new minute is
// closed (polls /api/health every 5 s).
"use strict";

const $ = (s) => document.querySelector(s);
const palette = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#ff9da6", "#9d755d"];
const state = { topic: "", range: 3600, lastClosed: null, charts: {} };
const nf = new Intl.NumberFormat("en-US");
const money = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
const esc = (v) => String(v).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

async function get(path, params) {
  const u = new URL(path, location.href);
  for (const [k, v] of Object.entries(params || {})) u.searchParams.set(k, v);
  const r = await fetch(u);
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function setStatus(text, error) {
  const el = $("#status");
  el.textContent = text;
  el.className = error ? "error" : "muted";
}

// flagBands draws the anomaly flags' minutes as red bands on a chart.
function flagBands(minutes) {
  return {
    hooks: {
      draw: [(u) => {
        const ctx = u.ctx;
        ctx.save();
        ctx.fillStyle = "rgba(176, 0, 32, 0.18)";
        for (const t of minutes) {
          const x0 = u.valToPos(t, "x", true), x1 = u.valToPos(t + 60, "x", true);
          if (x1 < u.bbox.left || x0 > u.bbox.left + u.bbox.width) continue;
          ctx.fillRect(x0, u.bbox.top, Math.max(x1 - x0, 2), u.bbox.height);
        }
        ctx.restore();
      }],
    },
  };
}

// chart draws (or redraws) one uPlot chart of series over the times xs.
function chart(id, xs, series, fmt) {
  const el = document.getElementById(id);
  if (state.charts[id]) state.charts[id].destroy();
  el.innerHTML = "";
  const opts = {
    width: Math.max(el.clientWidth, 320),
    height: 240,
    scales: { x: { time: true } },
    series: [{}].concat(series.map((s, i) => ({
      label: s.label, stroke: palette[i % palette.length], width: 1.5, spanGaps: false,
      value: (u, v) => v == null ? "–" : fmt(v),
    }))),
    axes: [{}, { values: (u, vs) => vs.map(fmt), size: 70 }],
    plugins: [flagBands(state.flagMinutes || [])],
  };
  state.charts[id] = new uPlot(opts, [xs].concat(series.map((s) => s.values)), el);
  el.dataset.points = String(xs.length);
}

// pivot turns rows of (time, key, value) into aligned series.
function pivot(rows, keyOf, valueOf) {
  const times = [...new Set(rows.map((r) => Date.parse(r.time) / 1000))].sort((a, b) => a - b);
  const at = new Map(times.map((t, i) => [t, i]));
  const keys = [...new Set(rows.map(keyOf))].sort();
  const series = keys.map((k) => ({ label: k, values: times.map(() => null) }));
  const idx = new Map(keys.map((k, i) => [k, i]));
  for (const r of rows) series[idx.get(keyOf(r))].values[at.get(Date.parse(r.time) / 1000)] = valueOf(r);
  return { xs: times, series };
}

// range is the last state.range seconds up to the next whole minute: the
// same requests within a minute, which the API's cache answers.
function range() {
  const to = new Date(Math.ceil(Date.now() / 60000) * 60000);
  const from = new Date(to.getTime() - state.range * 1000);
  return { topic: state.topic, from: from.toISOString().replace(/\.\d+Z$/, "Z"), to: to.toISOString().replace(/\.\d+Z$/, "Z") };
}

async function refreshCharts() {
  const q = range();
  const [minutes, rates, countries, flags] = await Promise.all([
    get("/api/minutes", q), get("/api/rates", Object.assign({ by: "ad_format", step: "minute" }, q)), get("/api/countries", q),
    get("/api/anomalies", q)]);
  state.flagMinutes = [...new Set(flags.map((f) => Date.parse(f.minute) / 1000))];
  renderFlags(flags);
  // Events per minute by type, and revenue.
  const types = [...new Set(minutes.flatMap((m) => Object.keys(m.events)))].sort();
  const xs = minutes.map((m) => Date.parse(m.time) / 1000);
  chart("chart-events", xs, types.map((t) => ({ label: t, values: minutes.map((m) => m.events[t] || 0) })), (v) => nf.format(Math.round(v)));
  chart("chart-revenue", xs, [{ label: "revenue", values: minutes.map((m) => m.revenue) }], (v) => money.format(v));
  const byFormat = (valueOf) => pivot(rates, (r) => r.key, valueOf);
  const ctr = byFormat((r) => r.impressions ? r.ctr * 100 : null);
  chart("chart-ctr", ctr.xs, ctr.series, (v) => v.toFixed(2) + "%");
  const ecpm = byFormat((r) => r.impressions ? r.ecpm : null);
  chart("chart-ecpm", ecpm.xs, ecpm.series, (v) => money.format(v));
  // Totals of the range: sums first, then ratios.
  let events = 0, revenue = 0, imps = 0, clicks = 0, rrev = 0;
  for (const m of minutes) { for (const t of types) events += m.events[t] || 0; revenue += m.revenue; }
  for (const r of rates) { imps += r.impressions; clicks += r.clicks; rrev += r.revenue; }
  $("#total-events").textContent = nf.format(events);
  $("#total-events").dataset.value = String(events);
  $("#total-revenue").textContent = money.format(revenue);
  $("#total-revenue").dataset.value = revenue.toFixed(6);
  $("#total-ctr").textContent = imps ? (clicks / imps * 100).toFixed(2) + "%" : "–";
  $("#total-ecpm").textContent = imps ? money.format(rrev * 1000 / imps) : "–";
  // Revenue by country, with bars.
  const top = countries.length ? countries[0].revenue : 0;
  $("#countries tbody").innerHTML = countries.map((c) =>
    `<tr data-country="${esc(c.country)}" data-revenue="${c.revenue.toFixed(6)}" data-events="${c.events}"><td>${esc(c.country)}</td>` +
    `<td>${nf.format(c.events)}</td><td>${nf.format(c.clicks)}</td><td>${money.format(c.revenue)}</td>` +
    `<td class="bar"><span style="width:${top ? Math.round(c.revenue / top * 120) : 0}px"></span></td></tr>`).join("");
  document.body.dataset.rendered = String(Date.now());
  document.body.dataset.from = q.from;
  document.body.dataset.to = q.to;
}

function renderFlags(flags) {
  const pct = (m, v) => m === "ctr" ? (v * 100).toFixed(2) + "%" : m === "ecpm" ? money.format(v) : nf.format(Math.round(v));
  $("#anomalies tbody").innerHTML = flags.length ? flags.map((f) =>
    `<tr class="anomaly" data-scope="${esc(f.scope)}" data-metric="${esc(f.metric)}"><td>${f.minute.slice(0, 16).replace("T", " ")}Z</td>` +
    `<td>${esc(f.scope)}</td><td>${esc(f.metric)}</td><td>${pct(f.metric, f.value)}</td><td>${pct(f.metric, f.baseline)}</td>` +
    `<td>${f.score.toFixed(1)}</td><td>${f.threshold}</td><td>${f.first_flagged.slice(11, 19)}Z</td></tr>`).join("") :
    `<tr><td colspan="8" class="muted">no anomaly in the range</td></tr>`;
  $("#anomalies").dataset.flags = String(flags.length);
}

function renderHealth(h) {
  const lag = h.lag ? Object.values(h.lag).reduce((a, b) => a + b, 0) : null;
  const rec = h.last_reconciliation;
  const items = [
    ["consumer lag", h.lag_error ? `<span class="error">${esc(h.lag_error)}</span>` :
      lag == null ? "–" : `${nf.format(lag)} offsets (${Object.entries(h.lag).map(([p, v]) => `p${p}: ${nf.format(v)}`).join(", ")})`],
    ["dead letters, last hour", nf.format(h.dead_letters_last_hour)],
    ["last reconciliation", rec ? `<a href="${esc(h.reconciliation_url)}">${new Date(rec.finished).toISOString().slice(0, 16)}Z</a>: ` +
      `${rec.findings} findings, ${rec.repaired_slots} slots repaired, ${rec.remaining} remaining` : "none yet"],
  ];
  $("#health").innerHTML = items.map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join("");
  $("#slots tbody").innerHTML = h.slots.map((s) =>
    `<tr><td>${s.slot.slice(0, 16).replace("T", " ")}Z</td><td class="state-${s.state}">${s.state}</td><td>${s.partitions}</td>` +
    `<td>${nf.format(s.events)}</td><td>${nf.format(s.late)}</td><td>${nf.format(s.dead_letters)}</td>` +
    `<td>${s.url ? `<a href="${esc(s.url)}">Temporal UI</a>` : ""}</td></tr>`).join("");
  $("#last-closed").textContent = h.last_closed ? h.last_closed.slice(11, 16) + "Z" : "–";
}

async function poll() {
  if (!state.topic) return;
  try {
    const h = await get("/api/health", { topic: state.topic });
    renderHealth(h);
    if (h.last_closed !== state.lastClosed) {
      state.lastClosed = h.last_closed;
      await refreshCharts();
    }
    setStatus("updated " + new Date().toISOString().slice(11, 19) + "Z");
  } catch (e) {
    setStatus(e.message, true);
  }
}

async function init() {
  const params = new URLSearchParams(location.search);
  state.range = Number(params.get("range")) || 3600;
  $("#range").value = String(state.range);
  try {
    const topics = await get("/api/topics");
    $("#topic").innerHTML = topics.map((t) => `<option>${esc(t)}</option>`).join("");
    state.topic = params.get("topic") || topics[0] || "";
    $("#topic").value = state.topic;
    if (!state.topic) { setStatus("no topic has run yet"); return; }
  } catch (e) {
    setStatus(e.message, true);
    return;
  }
  const reload = () => { state.lastClosed = undefined; poll(); };
  $("#topic").addEventListener("change", (e) => { state.topic = e.target.value; reload(); });
  $("#range").addEventListener("change", (e) => { state.range = Number(e.target.value); reload(); });
  await poll();
  setInterval(poll, 5000);
}

init();
