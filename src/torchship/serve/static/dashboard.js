// torchship dashboard: polls /v1/summary and draws one card per model version. No dependencies.
"use strict";

const params = new URLSearchParams(location.search);
const INTERVAL_MS = 1000 * Math.max(0.5, Number(params.get("interval")) || 2);
const $ = (id) => document.getElementById(id);
const tokenInput = $("token");
tokenInput.value = sessionStorage.getItem("torchship-token") || "";
tokenInput.addEventListener("change", () => { sessionStorage.setItem("torchship-token", tokenInput.value); poll(); });
$("interval").textContent = INTERVAL_MS / 1000;

let last = null;          // the last summary that arrived
let lastOkAt = null;      // when it arrived
let management = false;

function esc(value) {
  return String(value).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
function num(value, digits = 1, unit = "") {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  const text = Math.abs(value) >= 1000 ? Math.round(value).toLocaleString("en-US") : Number(value).toFixed(digits);
  return unit ? `${text}<small> ${unit}</small>` : text;
}
function pct(value) { return value === null || value === undefined ? "–" : `${(100 * value).toFixed(1)}<small> %</small>`; }
function headers() {
  const token = tokenInput.value.trim();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

function stat(label, value, cls = "") {
  return `<div class="stat ${cls}"><div class="label">${label}</div><div class="value">${value}</div></div>`;
}

function batchBars(sizes, max) {
  const entries = Object.entries(sizes || {}).map(([k, v]) => [Number(k), v]);
  if (!entries.length) return '<p class="muted">no batches yet</p>';
  const top = Math.max(...entries.map(([, v]) => v));
  const cells = entries.map(([k, v]) => `<div title="${v} batches of ${k} rows" style="height:${Math.max(2, 100 * v / top)}%"></div>`);
  const labels = entries.map(([k]) => `<span>${k}</span>`);
  return `<div class="bars">${cells.join("")}</div><div class="bars-labels">${labels.join("")}</div>`;
}

function driftSection(d) {
  if (!d || d.status === "off") {
    return `<div class="section"><h3>drift <span class="badge off">off</span></h3><p class="muted">${esc(d ? d.reason : "")}</p></div>`;
  }
  const t = d.thresholds;
  const row = (name, value, limit, key) => {
    const over = d.drift.includes(key);
    const width = limit ? Math.min(100, 100 * (value || 0) / (2 * limit)) : 0;
    return `<tr class="${over ? "over" : ""}" data-score="${esc(key)}"><td>${esc(name)}</td>
      <td class="num">${num(value, 3)}</td><td class="num muted">${limit === null ? "" : "≤ " + limit}</td>
      <td>${limit === null ? "" : `<span class="meter"><i style="width:${width}%"></i></span>`}</td></tr>`;
  };
  const rows = Object.entries(d.input_psi).map(([g, v]) => row(`input PSI ${g}`, v, t.input_psi, `input_psi:${g}`));
  // a model without classes is watched on its outputs' values instead of predicted classes
  for (const [o, v] of Object.entries(d.output_psi || {})) rows.push(row(`output PSI ${o}`, v, t.prediction_psi, `output_psi:${o}`));
  if (d.prediction_psi !== null) {
    rows.push(row("prediction PSI", d.prediction_psi, t.prediction_psi, "prediction_psi"));
    rows.push(row("confidence drop", d.confidence_drop, t.confidence_drop, "confidence_drop"));
  }
  for (const [i, why] of Object.entries(d.skipped_inputs || {})) {
    rows.push(`<tr class="muted" data-score="skipped:${esc(i)}"><td>input ${esc(i)}</td><td colspan="3">skipped: ${esc(why)}</td></tr>`);
  }
  const conf = d.mean_confidence === null ? "" :
    `<p class="muted">mean confidence ${num(d.mean_confidence, 3)} (reference ${num(d.reference_mean_confidence, 3)}) over the last ${d.rows} rows</p>`;
  return `<div class="section drift-section"><h3>drift <span class="badge ${esc(d.status)}" data-drift-status>${esc(d.status)}</span>
    <span class="muted">${d.rows} rows${d.skipped_batches ? `, ${d.skipped_batches} batches sampled out` : ""}</span></h3>
    <table class="drift">${rows.join("")}</table>${conf}${d.note ? `<p class="muted">${esc(d.note)}</p>` : ""}</div>`;
}

function actions(m) {
  if (!management) return "";
  const loaded = m.state === "READY";
  return `<div class="actions">
    <button data-action="load" data-name="${esc(m.name)}">${loaded ? "Reload" : "Load"}</button>
    <button data-action="unload" data-name="${esc(m.name)}" ${loaded ? "" : "disabled"}>Unload</button></div>`;
}

function card(m) {
  const id = `data-model="${esc(m.name)}" data-version="${esc(m.version || "")}" data-state="${esc(m.state)}"`;
  const title = `<h2>${esc(m.name)} <span class="version">${m.version ? "v" + esc(m.version) : ""}</span>
    <span class="badge ${esc(m.state)}" data-field="state">${esc(m.state)}</span></h2>`;
  if (m.state !== "READY") {
    const why = m.reason || (m.state === "LOADING" ? "loading and warming up" : "not loaded");
    return `<section class="card" ${id}>${title}<p class="reason" data-field="reason">${esc(why)}</p>${actions(m)}</section>`;
  }
  const lat = m.latency_ms || {};
  const loadedAt = new Date(m.loaded_at * 1000).toLocaleTimeString();
  return `<section class="card" ${id}>${title}
    <div class="sub">${esc(m.runtime)} · ${m.instances} instance${m.instances > 1 ? "s" : ""} · loaded ${loadedAt} in ${num(m.load_s, 2)} s</div>
    <div class="stats">
      ${stat("throughput", num(m.requests_per_s, 1, "req/s"), "throughput")}
      ${stat("rows", num(m.rows_per_s, 1, "rows/s"), "rows-per-s")}
      ${stat("error rate", pct(m.error_rate), "error-rate")}
      ${stat("latency p50", num(lat.p50, 2, "ms"), "p50")}
      ${stat("p90", num(lat.p90, 2, "ms"), "p90")}
      ${stat("p99", num(lat.p99, 2, "ms"), "p99")}
      ${stat("queue depth", num(m.queue_depth, 0), "queue-depth")}
      ${stat("in flight", num(m.in_flight, 0), "in-flight")}
      ${stat("requests", `${num(m.requests.success, 0)}<small> ok / ${m.requests.fail} failed</small>`, "requests")}
    </div>
    <div class="section"><h3>batch sizes <span class="muted">mean ${num(m.mean_batch_rows, 2)} rows, recent ${num(m.recent_batch_rows, 2)}, max ${m.max_batch_size}</span></h3>
      ${batchBars(m.batch_sizes, m.max_batch_size)}</div>
    ${driftSection(m.drift)}
    ${m.restarts ? `<p class="reason">${m.restarts} instance restart(s)</p>` : ""}
    ${actions(m)}
  </section>`;
}

// two kinds of message: the connection's (cleared by the next good poll) and the last
// load/unload's (kept 15 s, so a poll right after the click does not wipe it)
const problems = { connection: "", action: "", actionUntil: 0 };
function showBanner() {
  const action = Date.now() < problems.actionUntil ? problems.action : "";
  const text = [problems.connection, action].filter(Boolean).join(" ");
  const banner = $("banner");
  banner.hidden = !text;
  banner.textContent = text;
}
function actionProblem(text) {
  problems.action = text;
  problems.actionUntil = text ? Date.now() + 15000 : 0;
  showBanner();
}

function render(summary) {
  const s = summary.server;
  management = s.management;
  $("server-version").textContent = s.version;
  const state = $("server-state");
  state.textContent = s.draining ? "draining" : s.ready ? "ready" : s.started ? "not ready" : "starting";
  state.title = s.not_ready_reason || "";
  state.className = `badge ${s.ready ? "ok" : s.started && !s.draining ? "bad" : "LOADING"}`;
  $("models").innerHTML = summary.models.length ? summary.models.map(card).join("")
    : '<p class="muted" id="empty">This server has no models.</p>';
  const log = s.request_log;
  $("request-log").textContent = log ? ` · request log ${log.path}: ${log.written} written, ${log.dropped} dropped` : "";
}

async function poll() {
  try {
    const response = await fetch("/v1/summary", { headers: headers(), cache: "no-store" });
    if (response.status === 401) throw new Error("this server needs a bearer token: type it in the field above");
    if (!response.ok) throw new Error(`/v1/summary answered ${response.status}`);
    last = await response.json();
    lastOkAt = new Date();
    render(last);
    $("models").classList.remove("stale");
    problems.connection = "";
    showBanner();
    $("updated").textContent = `updated ${lastOkAt.toLocaleTimeString()}`;
  } catch (error) {
    const reason = error instanceof TypeError ? "the server is unreachable" : error.message;
    problems.connection = `Cannot update: ${reason}.` + (lastOkAt ? ` Showing data from ${lastOkAt.toLocaleTimeString()}.` : "");
    showBanner();
    $("models").classList.add("stale");
    $("server-state").textContent = "unreachable";
    $("server-state").className = "badge bad";
    if (!last) $("models").innerHTML = '<p class="muted" id="empty">No data yet.</p>';
  }
}

$("models").addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  button.disabled = true;
  const { action, name } = button.dataset;
  actionProblem("");
  try {
    const response = await fetch(`/v2/repository/models/${encodeURIComponent(name)}/${action}`,
      { method: "POST", headers: { ...headers(), "Content-Type": "application/json" }, body: "{}" });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      actionProblem(`${action} ${name} failed: ${body.error || response.status}`);
    }
  } catch (error) {
    actionProblem(`${action} ${name} failed: the server is unreachable`);
  }
  poll();
});

poll();
setInterval(poll, INTERVAL_MS);
