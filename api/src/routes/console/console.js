// The operator console: polls /metrics and the admin API every two seconds
// and draws what they say. Text goes in with textContent only, so no value
// (a read model's name, a repair's detail) can inject markup.
"use strict";

const REFRESH_MS = 2000;
const WINDOW = 90; // samples kept per time series (three minutes)
const COLOURS = ["#2f6fde", "#d6409f", "#12a594", "#e5484d", "#f76b15", "#8e4ec6", "#978365", "#0d74ce", "#3e9b4f"];
const SVG = "http://www.w3.org/2000/svg";

// Prometheus' text format: `name{label="value",...} number` per line.
function parseMetrics(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels = {};
    const labelPattern = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
    let label;
    while ((label = labelPattern.exec(match[3] || "")) !== null) {
      labels[label[1]] = label[2].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    }
    samples.push({ name: match[1], labels, value: Number(match[4]) });
  }
  return samples;
}

function sum(samples, name, keep = () => true) {
  return samples.filter((s) => s.name === name && keep(s.labels)).reduce((total, s) => total + s.value, 0);
}

function has(samples, name) {
  return samples.some((s) => s.name === name);
}

async function getJson(path) {
  const reply = await fetch(path, { credentials: "same-origin", headers: { accept: "application/json" } });
  if (reply.status === 401) {
    window.location.assign("/admin/console");
    throw new Error("signed out");
  }
  if (!reply.ok) throw new Error(`${path}: ${reply.status}`);
  return reply.json();
}

async function getText(path) {
  const reply = await fetch(path, { credentials: "same-origin" });
  if (!reply.ok) throw new Error(`${path}: ${reply.status}`);
  return reply.text();
}

// Time series: name → [{t, v}], oldest first.
const history = new Map();
function record(plot, series, t, v) {
  const key = `${plot}\u0000${series}`;
  const points = history.get(key) || [];
  points.push({ t, v });
  while (points.length > WINDOW) points.shift();
  history.set(key, points);
}
function seriesOf(plot) {
  const out = [];
  for (const [key, points] of history) {
    const [owner, name] = key.split("\u0000");
    if (owner === plot) out.push({ name, points });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

function element(name, attributes = {}, text) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function figure(plot) {
  return document.querySelector(`figure[data-plot="${plot}"]`);
}

function replaceBody(plot, ...nodes) {
  const fig = figure(plot);
  for (const old of fig.querySelectorAll(":scope > :not(figcaption)")) old.remove();
  for (const node of nodes) fig.appendChild(node);
  return fig;
}

function empty(plot, why) {
  const note = document.createElement("p");
  note.className = "empty";
  note.textContent = why;
  replaceBody(plot, note).dataset.points = "0";
}

// Drawn at the figure's own width, so text keeps its size.
function plotWidth(plot) {
  return Math.max(320, figure(plot).clientWidth - 24);
}

function formatNumber(v) {
  if (v >= 1000) return `${(v / 1000).toFixed(1)}k`;
  if (v >= 10 || Number.isInteger(v)) return v.toFixed(0);
  return v.toFixed(2);
}

function legend(names) {
  const box = document.createElement("div");
  box.className = "legend";
  names.forEach((name, i) => {
    const item = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.style.background = COLOURS[i % COLOURS.length];
    item.append(swatch, document.createTextNode(name));
    box.appendChild(item);
  });
  return box;
}

// A line chart of every series of `plot` over the last WINDOW samples.
function drawLines(plot, unit) {
  const series = seriesOf(plot).filter((s) => s.points.length > 0);
  if (series.length === 0) return empty(plot, "No data yet");
  const width = plotWidth(plot), height = 180, left = 44, bottom = 18;
  const now = Date.now();
  // The whole window once it is full; until then, what has been seen.
  const first = Math.min(...series.map((s) => s.points[0].t));
  const span = Math.min(WINDOW * REFRESH_MS, Math.max(20000, now - first));
  const max = Math.max(1, ...series.flatMap((s) => s.points.map((p) => p.v)));
  const svg = element("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": plot });
  svg.appendChild(element("line", { class: "axis", x1: left, y1: height - bottom, x2: width, y2: height - bottom }));
  svg.appendChild(element("line", { class: "axis", x1: left, y1: 4, x2: left, y2: height - bottom }));
  svg.appendChild(element("text", { x: 2, y: 14 }, `${formatNumber(max)}${unit}`));
  svg.appendChild(element("text", { x: 2, y: height - bottom }, "0"));
  svg.appendChild(element("text", { x: left, y: height - 4 }, `−${Math.round(span / 1000)} s`));
  svg.appendChild(element("text", { x: width - 30, y: height - 4 }, "now"));
  let points = 0;
  series.forEach((s, i) => {
    const path = s.points
      .map((p, j) => {
        const x = left + ((p.t - (now - span)) / span) * (width - left);
        const y = height - bottom - (p.v / max) * (height - bottom - 8);
        return `${j === 0 ? "M" : "L"}${Math.max(left, x).toFixed(1)},${y.toFixed(1)}`;
      })
      .join(" ");
    points += s.points.length;
    svg.appendChild(element("path", { class: "series", d: path, stroke: COLOURS[i % COLOURS.length] }));
  });
  replaceBody(plot, svg, legend(series.map((s) => `${s.name}: ${formatNumber(s.points[s.points.length - 1].v)}${unit}`))).dataset.points = String(points);
}

// A horizontal bar chart of [{name, value}].
function drawBars(plot, bars, format) {
  if (bars.length === 0) return empty(plot, "Nothing to show");
  const width = plotWidth(plot), row = 22, left = 150;
  const height = bars.length * row + 6;
  const max = Math.max(...bars.map((b) => b.value), 1e-9);
  const svg = element("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": plot });
  svg.style.height = `${height}px`;
  bars.forEach((bar, i) => {
    const y = i * row + 4;
    const w = Math.max(1, (bar.value / max) * (width - left - 90));
    svg.appendChild(element("text", { x: 0, y: y + 13 }, bar.name));
    svg.appendChild(element("rect", { x: left, y, width: w.toFixed(1), height: row - 6, rx: 3, fill: COLOURS[i % COLOURS.length] }));
    svg.appendChild(element("text", { x: left + w + 6, y: y + 13 }, format(bar.value)));
  });
  replaceBody(plot, svg).dataset.points = String(bars.length);
}

function badge(id, text, tone) {
  const node = document.getElementById(id);
  node.className = `badge ${tone}`;
  node.querySelector(".value").textContent = text;
}

const usd = (micro) => `$${(micro / 1e6).toFixed(micro < 1e6 ? 4 : 2)}`;
let previous = null;

async function refresh() {
  const t = Date.now();
  const [metricsText, relay, readModels, costs] = await Promise.all([
    getText("/metrics"),
    getJson("/admin/relay"),
    getJson("/admin/read-models"),
    getJson("/admin/enrichment-costs?top=8"),
  ]);
  const metrics = parseMetrics(metricsText);
  const counters = {
    requests: sum(metrics, "vcintel_http_requests_total"),
    errors: sum(metrics, "vcintel_http_requests_total", (l) => l.status === "5xx"),
    published: sum(metrics, "vcintel_events_published_total"),
  };
  if (previous) {
    const seconds = Math.max(0.001, (t - previous.t) / 1000);
    const rate = (now, before) => Math.max(0, now - before) / seconds;
    record("throughput", "requests", t, rate(counters.requests, previous.requests));
    record("throughput", "5xx", t, rate(counters.errors, previous.errors));
    if (has(metrics, "vcintel_events_published_total")) {
      record("published", "events", t, rate(counters.published, previous.published));
    }
  }
  previous = { t, ...counters };
  record("relay-lag", "relay", t, relay.lag);
  for (const model of readModels) record("read-model-lag", model.name, t, model.lag);

  drawLines("throughput", "/s");
  if (has(metrics, "vcintel_events_published_total") || seriesOf("published").length > 0) drawLines("published", "/s");
  else empty("published", "The relay runs in another process: see its /metrics");
  drawLines("relay-lag", "");
  drawLines("read-model-lag", "");
  drawBars("dead-letters", readModels.map((m) => ({ name: m.name, value: m.dead_letters })), (v) => String(v));
  drawBars("cost-by-month", costs.by_month.map((m) => ({ name: m.month, value: m.cost_micro_usd })), usd);
  drawBars("cost-by-workspace", costs.top_workspaces.map((w) => ({ name: w.workspace_id.slice(0, 8) + "…", value: w.cost_micro_usd })), usd);

  if (relay.halted) badge("relay-badge", "halted", "bad");
  else if (!relay.leader) badge("relay-badge", "no leader", "bad");
  else badge("relay-badge", relay.lag > 1000 ? `lag ${relay.lag}` : "publishing", relay.lag > 1000 ? "warn" : "ok");
  if (has(metrics, "vcintel_model_breaker_open")) {
    const open = sum(metrics, "vcintel_model_breaker_open") > 0;
    badge("breaker-badge", open ? "open" : "closed", open ? "bad" : "ok");
  } else {
    badge("breaker-badge", "no model here", "");
  }
  const dead = readModels.reduce((total, m) => total + m.dead_letters, 0);
  badge("dead-badge", String(dead), dead > 0 ? "warn" : "ok");
  const up = sum(metrics, "vcintel_database_up") > 0;
  badge("database-badge", up ? "up" : "down", up ? "ok" : "bad");
  document.body.dataset.ready = "true";
}

async function loop() {
  const status = document.getElementById("status");
  try {
    await refresh();
    status.textContent = `Updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    status.textContent = `Could not refresh: ${error.message}`;
  }
  setTimeout(loop, REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", loop);
