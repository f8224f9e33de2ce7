// hrkernel dashboard: renders the snapshot pushed by /api/events (server-sent events, read with
// fetch so the token can travel in a header). No framework, no network beyond this origin.
"use strict";

const state = { snapshot: null, lastUpdate: 0, staleAfter: 5, backoff: 500, trends: {} };

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const pill = (text, cls) => h("span", { class: `pill ${cls || text}` }, text);
const fmtNum = (v, digits = 2) => (v === null || v === undefined || v === "" ? "—" : Number(v).toFixed(digits));
const fmtMs = (s) => (s === null || s === undefined ? "—" : `${(s * 1000).toFixed(1)} ms`);
const fmtTime = (t) => (t ? new Date(t * 1000).toLocaleTimeString() : "—");

function table(headers, rows) {
  // Wrapped so a wide table scrolls inside its panel (with a hint) instead of being cut off.
  return h("div", { class: "table-wrap" },
    h("table", {}, h("thead", {}, h("tr", {}, headers.map((x) => h("th", {}, x)))), h("tbody", {}, rows)));
}

// Decimal strings as people write them: "0.010000000000000000" -> "0.01", "0E-18" -> "0".
function fmtAmount(v) {
  if (v === null || v === undefined) return "—";
  const s = String(v);
  if (/^-?\d+(\.\d+)?E[+-]?\d+$/i.test(s)) {
    const n = Number(s);
    return n === 0 ? "0" : s;
  }
  if (/^-?\d+\.\d+$/.test(s)) return s.replace(/0+$/, "").replace(/\.$/, "");
  return s;
}

function setPanel(name, content) {
  const body = document.querySelector(`#panel-${name} .body`);
  body.replaceChildren(...[content].flat().filter((c) => c !== null && c !== undefined));
}

function notConfigured(name, area) {
  if (area && area.error) {
    setPanel(name, h("p", { class: "read-error" }, `could not read this area: ${area.error}`));
    return true;
  }
  setPanel(name, h("p", { class: "not-configured" }, "not configured in this kernel"));
  return !area || !area.configured;
}

function token() { return document.getElementById("token").value.trim(); }

function authHeaders() {
  const t = token();
  return t ? { Authorization: `Bearer ${t}` } : {};
}

function showResult(text, isError) {
  const el = document.getElementById("action-result");
  el.textContent = text;
  el.className = `banner ${isError ? "error" : "info"}`;
  el.hidden = false;
}

async function act(label, method, path, body) {
  if (!window.confirm(`${label}?\n\nThis is written to the audit log.`)) {
    showResult(`${label}: cancelled`, false);
    return;
  }
  try {
    const res = await fetch(path, {
      method, headers: { "Content-Type": "application/json", ...authHeaders() }, body: JSON.stringify(body || {}),
    });
    const data = await res.json().catch(() => ({}));
    if (res.ok) showResult(`${label}: done`, false);
    else if (res.status === 401) showResult(`${label}: refused (401), enter the dashboard token first`, true);
    else if (res.status === 403) showResult(`${label}: refused (403), ${data.detail || "wrong token"}`, true);
    else showResult(`${label}: failed (${res.status}), ${data.detail || res.statusText}`, true);
  } catch (err) {
    showResult(`${label}: the kernel did not answer (${err})`, true);
  }
  refreshOnce();
}

// ---------------------------------------------------------------------------------- panels

function renderHeader(s) {
  document.getElementById("instance").textContent = s.status.instance_id;
  // One overall state (hrkernel.web.status): the same word `hrkernel status` and /readyz show.
  const st = s.status.overall;
  const why = s.status.why || [];
  const overall = document.getElementById("overall");
  overall.textContent = why.length && st !== "trading" ? `${st}: ${why[0]}` : st;
  overall.className = `pill state-${st}`;
  overall.title = why.join("\n") || st;
  const banner = document.getElementById("status-banner");
  const bad = ["down", "halted", "degraded"].includes(st);
  banner.hidden = !bad;
  banner.className = `banner state-${st}`;
  if (bad) {
    banner.replaceChildren(h("strong", {}, `${st.toUpperCase()}`), " — ",
      h("ul", {}, why.map((w) => h("li", {}, w))));
  }
  state.staleAfter = s.status.stale_after || 5;
}

function renderComponents(s) {
  const rows = s.components.map((c) => h("tr", { "data-component": c.name },
    h("td", {}, c.name), h("td", {}, c.kind || ""),
    h("td", {}, pill(c.running ? "running" : "stopped", c.running ? "yes" : "no")),
    h("td", {}, c.health ? pill(c.health) : h("span", { class: "muted" }, "—")),
    h("td", { class: "detail" }, c.detail || "")));
  const checks = s.health.configured ? Object.entries(s.health.data.checks) : [];
  const checkRows = checks.map(([name, c]) => h("tr", { "data-check": name },
    h("td", {}, name), h("td", {}, `check (${c.plugin})`), h("td", {}, ""),
    h("td", {}, pill(c.status)), h("td", { class: "detail" }, c.detail || "")));
  const groups = s.failovers.configured ? Object.entries(s.failovers.data.groups) : [];
  const groupRows = groups.map(([name, g]) => {
    const unhealthy = Object.entries(g.members).filter(([, m]) => !m.healthy).map(([id, m]) => `${id}: ${m.detail || "unhealthy"}`);
    return h("tr", { "data-group": name }, h("td", {}, name), h("td", {}, `failover group (${g.mode})`), h("td", {}, ""),
      h("td", {}, pill(g.healthy === false ? "unhealthy" : unhealthy.length ? "degraded" : "healthy")),
      h("td", { class: "detail" }, `active: ${g.serving.join(", ") || "none"}${unhealthy.length ? "; " + unhealthy.join("; ") : ""}`));
  });
  setPanel("components", table(["name", "kind", "state", "health", "detail / why degraded"], [...s.components.length ? rows : [], ...checkRows, ...groupRows]));
}

function renderBreakers(s) {
  if (!s.breakers.length) { setPanel("breakers", h("p", { class: "muted" }, "no circuit breakers registered")); return; }
  setPanel("breakers", table(["breaker", "state", "failure rate", "calls", "rejected", "next retry"],
    s.breakers.map((b) => h("tr", { class: `state-${b.state}`, "data-breaker": b.name },
      h("td", {}, b.name), h("td", {}, pill(b.state)), h("td", {}, `${(b.failure_rate * 100).toFixed(0)}%`),
      h("td", {}, b.calls), h("td", {}, b.rejected),
      h("td", {}, b.retry_in === null ? "—" : `in ${b.retry_in.toFixed(1)} s`),
      h("td", {}, h("button", { onclick: () => act(`Reset breaker ${b.name}`, "POST", `/api/breakers/${encodeURIComponent(b.name)}/reset`, {}) }, "reset"))))));
}

function statsTable(name, area, columns) {
  if (notConfigured(name, area)) return;
  if (!area.data.length) { setPanel(name, h("p", { class: "muted" }, "none registered")); return; }
  setPanel(name, table(["name", ...columns], area.data.map((row) => h("tr", {}, h("td", {}, row.name),
    columns.map((c) => h("td", {}, row[c] === undefined ? "—" : String(row[c])))))));
}

function replicationLag(r) {
  if (r == null) return "—";
  if (typeof r !== "object") return String(r);
  if (r.mode === "rebuild") return pill("rebuild: history lost, rebuilt from the exchange when leading", "unhealthy");
  const secs = r.seconds == null ? "—" : `${fmtNum(r.seconds, 3)} s`;
  const recent = r.p50 == null ? "" : ` · recent p50 ${fmtNum(r.p50 * 1000, 0)} ms, max ${fmtNum(r.max * 1000, 0)} ms`;
  const role = r.mode === "lead" ? "publishing" : `${r.entries ?? 0} entries behind`;
  return `${secs} (${role}; seq ${r.seq}, tx ${r.tx})${recent}`;
}

function renderLeadership(s) {
  if (notConfigured("leadership", s.leadership)) return;
  const d = s.leadership.data;
  const items = [["role", pill(d.role || "?", d.role)], ["leader", d.leader || "none"], ["fencing token", d.token ?? "—"],
    ["lease expires in", d.lease_expires_in == null ? "—" : `${fmtNum(d.lease_expires_in, 1)} s`],
    ["backend", d.backend || "—"], ["trading", pill(d.trading ? "yes" : "no")],
    ["replication lag", replicationLag(d.replication_lag)],
    ["last error", d.last_error || "—"]];
  setPanel("leadership", [h("dl", { class: "kv" }, items.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
    h("div", { class: "actions-row" }, h("button", { class: "danger", id: "step-down",
      onclick: () => act("Step down from leadership", "POST", "/api/leadership/step-down", { reason: "dashboard" }) }, "step down"))]);
}

const STATUS_Y = { healthy: 0, degraded: 1, unhealthy: 2 };
const STATUS_COLOR = { healthy: "#1a7f37", degraded: "#b7791f", unhealthy: "#c62828" };

function chart(name, points) {
  const W = 300, H = 90, pad = 4;
  const svgNS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${name}: latency and status over time`);
  if (points.length) {
    const t0 = points[0].at, t1 = Math.max(points[points.length - 1].at, t0 + 1);
    const lat = points.map((p) => p.latency || 0);
    const maxLat = Math.max(...lat, 1e-6);
    const x = (t) => pad + ((t - t0) / (t1 - t0)) * (W - 2 * pad);
    const y = (v) => H - 14 - (v / maxLat) * (H - 24);
    points.forEach((p) => {  // status band along the bottom
      const r = document.createElementNS(svgNS, "rect");
      r.setAttribute("x", x(p.at)); r.setAttribute("y", H - 8); r.setAttribute("width", Math.max(2, (W - 2 * pad) / points.length));
      r.setAttribute("height", 8); r.setAttribute("fill", STATUS_COLOR[p.status] || "#999");
      svg.append(r);
    });
    const line = document.createElementNS(svgNS, "polyline");
    line.setAttribute("points", points.map((p, i) => `${x(p.at).toFixed(1)},${y(lat[i]).toFixed(1)}`).join(" "));
    line.setAttribute("fill", "none"); line.setAttribute("stroke", "#1f5fb7"); line.setAttribute("stroke-width", "1.5");
    svg.append(line);
  }
  const last = points[points.length - 1];
  return h("div", { class: "chart", "data-chart": name },
    h("div", { class: "title" }, h("strong", {}, name),
      h("span", {}, last ? [pill(last.status), " ", fmtMs(last.latency)] : "no data yet")),
    svg,
    h("div", { class: "muted" }, points.length ? `${fmtTime(points[0].at)} – ${fmtTime(last.at)}, ${points.length} runs; line: latency, band: status` : ""));
}

function trendChart(name, rows) {
  // rows: per time bucket from the DuckDB history: share healthy and mean latency (ms).
  const points = rows.map((r) => ({
    at: Date.parse(r.bucket + "Z") / 1000,
    latency: (r.latency_ms_mean || 0) / 1000,
    status: r.healthy_share >= 1 ? "healthy" : r.healthy_share >= 0.5 ? "degraded" : "unhealthy",
  }));
  const el = chart(name, points);
  el.setAttribute("data-trend", name);
  el.removeAttribute("data-chart");
  el.lastChild.textContent = points.length
    ? `${fmtTime(points[0].at)} – ${fmtTime(points[points.length - 1].at)}, ${points.length} buckets; line: mean latency, band: share healthy`
    : "";
  return el;
}

function renderHealth(s) {
  if (notConfigured("health", s.health_history)) return;
  const entries = Object.entries(s.health_history.data);
  if (!entries.length) { setPanel("health", h("p", { class: "muted" }, "no health checks registered")); return; }
  const parts = [h("h3", {}, "Recent runs"), h("div", { class: "charts" }, entries.map(([name, points]) => chart(name, points)))];
  const trends = Object.entries(state.trends || {}).filter(([, rows]) => rows.length);
  if (trends.length) parts.push(h("h3", {}, "Last hours (per minute, from the DuckDB history)"), h("div", { class: "charts" }, trends.map(([name, rows]) => trendChart(name, rows))));
  setPanel("health", parts);
}

async function refreshTrends() {
  try {
    const res = await fetch("/api/health/trend?bucket=60&limit=360", { headers: authHeaders() });
    if (!res.ok) return;
    const body = await res.json();
    state.trends = body.configured ? body.data : {};
    if (state.snapshot) renderHealth(state.snapshot);
  } catch (err) { /* the stream reports connection trouble */ }
}

function renderAlerts(s) {
  if (notConfigured("alerts", s.alerts)) return;
  const alerts = s.alerts.data.alerts;
  if (!alerts.length) { setPanel("alerts", h("p", { class: "muted" }, "no open alerts")); return; }
  setPanel("alerts", table(["level", "title", "source", "count", "last seen", "status", ""], alerts.map((a) => h("tr", { "data-alert": a.id },
    h("td", {}, pill(a.level, a.level === "critical" || a.level === "error" ? "unhealthy" : a.level === "warning" ? "degraded" : "")),
    h("td", { class: "detail" }, h("strong", {}, a.title), h("div", { class: "muted" }, a.message || "")),
    h("td", {}, a.source), h("td", {}, a.count), h("td", {}, fmtTime(a.last_seen)),
    h("td", {}, pill(a.status), a.suppressed ? h("div", { class: "muted" }, `suppressed: ${a.suppressed}`) : null),
    h("td", {}, a.acknowledged_by
      ? h("span", { class: "acked" }, `acknowledged by ${a.acknowledged_by}`)
      : h("button", { class: "ack", onclick: () => act(`Acknowledge alert "${a.title}"`, "POST", `/api/alerts/${encodeURIComponent(a.id)}/ack`, { note: "from the dashboard" }) }, "acknowledge"))))));
}

// One bar per failover (oldest left): its duration, red past the target (dashed line).
function failoverChart(history, stats) {
  const svgNS = "http://www.w3.org/2000/svg";
  const W = 600, H = 120;
  const targets = Object.values(stats || {}).map((st) => Number(st.target)).filter((t) => t > 0);
  const target = targets.length ? Math.min(...targets) : null;
  const items = history.slice().reverse().slice(-60);
  const top = Math.max(target || 0, ...items.map((r) => Number(r.duration || 0)), 0.001) * 1.15;
  const svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("class", "failover-chart");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "failover durations against the target");
  const bw = W / Math.max(items.length, 1);
  items.forEach((r, i) => {
    const d = Number(r.duration || 0);
    const bh = Math.max(2, (d / top) * (H - 4));
    const rect = document.createElementNS(svgNS, "rect");
    rect.setAttribute("x", String(i * bw + 1));
    rect.setAttribute("y", String(H - bh));
    rect.setAttribute("width", String(Math.max(1, bw - 2)));
    rect.setAttribute("height", String(bh));
    rect.setAttribute("class", target != null && d > target ? "slow" : "ok");
    const title = document.createElementNS(svgNS, "title");
    title.textContent = `${fmtTime(r.at)} ${r.kind || "group"} ${r.from_member || "—"} → ${r.to_member || "—"}: ${fmtNum(d, 3)} s (${r.cause})`;
    rect.append(title);
    svg.append(rect);
  });
  if (target != null) {
    const y = H - (target / top) * (H - 4);
    const line = document.createElementNS(svgNS, "line");
    line.setAttribute("x1", "0"); line.setAttribute("x2", String(W));
    line.setAttribute("y1", String(y)); line.setAttribute("y2", String(y));
    line.setAttribute("class", "target");
    svg.append(line);
  }
  return h("div", { class: "chart-wrap", "data-chart": "failovers" }, svg);
}

function renderFailovers(s) {
  if (notConfigured("failovers", s.failovers)) return;
  const { groups, history, stats } = s.failovers.data;
  const groupRows = Object.entries(groups).map(([name, g]) => h("tr", { "data-group": name },
    h("td", {}, name), h("td", {}, g.mode === "cluster" ? `cluster: ${g.active} serve, ${g.min_active} needed` : g.mode,
      g.balance && g.mode !== "active_passive" ? h("div", { class: "muted" }, g.balance) : null,
      g.healthy === false ? h("div", {}, pill("unhealthy")) : null), h("td", { class: "serving" }, g.serving.join(", ") || "none"),
    h("td", { class: "detail" }, Object.entries(g.members).map(([id, m]) => h("div", {}, pill(m.healthy ? "healthy" : "unhealthy"), ` ${id}${m.primary ? " (primary)" : ""} ${m.detail || ""}`))),
    h("td", {}, g.mode === "active_active" ? "" : h("button", { class: "danger failover", onclick: () => act(`Fail over group ${name}`, "POST", `/api/failovers/${encodeURIComponent(name)}/failover`, { reason: "dashboard" }) }, "fail over"))));
  const histRows = history.map((r) => h("tr", {}, h("td", {}, fmtTime(r.at)), h("td", {}, r.change ? `${r.kind} ${r.change}` : r.kind || "group"), h("td", {}, r.group || "—"),
    h("td", {}, `${r.from_member || "—"} → ${r.to_member || "—"}`), h("td", {}, r.duration == null ? "—" : `${fmtNum(r.duration, 3)} s`),
    h("td", { class: "detail" }, r.cause)));
  const statLine = stats ? Object.values(stats).map((st) => `${st.kind}: ${st.count} failovers, p95 ${st.p95 == null ? "—" : fmtNum(st.p95, 3) + " s"} (target ${st.target} s)`).join(" · ") : "";
  setPanel("failovers", [
    groupRows.length ? table(["group", "mode", "active", "members", ""], groupRows) : h("p", { class: "muted" }, "no failover groups configured"),
    h("h3", {}, "History"), h("p", { class: "muted" }, statLine),
    history.length ? failoverChart(history, stats) : null,
    histRows.length ? table(["at", "kind", "group", "switch", "duration", "cause"], histRows) : h("p", { class: "muted" }, "no failovers yet")]);
}

const ORDER_COLUMNS = ["created_at", "client_order_id", "exchange", "symbol", "side", "type", "amount", "price", "filled_amount", "state", "reason"];

function renderOrders(s) {
  if (notConfigured("orders", s.orders)) return;
  const d = s.orders.data;
  const counts = Object.entries(d.counts || {}).map(([state, n]) => [pill(`${state}: ${n}`, state === "REJECTED" || state === "UNKNOWN" ? "degraded" : ""), " "]);
  const rows = (d.orders || []).map((o) => h("tr", { "data-order": o.client_order_id || "" },
    ORDER_COLUMNS.map((c) => h("td", c === "reason" ? { class: "detail" } : {}, c === "state" ? pill(String(o.state)) : o[c] == null ? "—" : fmtAmount(o[c])))));
  setPanel("orders", [h("p", {}, counts.length ? counts : h("span", { class: "muted" }, "no orders yet")),
    rows.length ? table(ORDER_COLUMNS.map((c) => c.replace(/_/g, " ")), rows) : null]);
}

function renderLedger(s) {
  if (notConfigured("ledger", s.ledger)) return;
  const d = s.ledger.data;
  const parts = [];
  for (const key of ["balances", "positions", "drift", "reconciliations"]) {
    let rows = d[key];
    if (rows && !Array.isArray(rows) && typeof rows === "object") rows = Object.entries(rows).map(([k, v]) => (typeof v === "object" && v !== null ? { asset: k, ...v } : { asset: k, value: v }));
    parts.push(h("h3", {}, key));
    if (!rows || !rows.length) { parts.push(h("p", { class: "muted" }, "none")); continue; }
    const cols = Object.keys(rows[0]).slice(0, 8);
    parts.push(table(cols, rows.map((r) => h("tr", {}, cols.map((c) => h("td", {}, r[c] == null ? "—" : typeof r[c] === "object" ? JSON.stringify(r[c]) : fmtAmount(r[c])))))));
  }
  setPanel("ledger", parts);
}

function renderPositions(s) {
  if (notConfigured("positions", s.positions)) return;
  const rows = (s.positions.data || []).map((p) => {
    const pnl = p.pnl == null ? null : Number(p.pnl);
    return h("tr", { "data-position": `${p.exchange}:${p.strategy}:${p.symbol}` },
      h("td", {}, p.strategy), h("td", {}, `${p.exchange}:${p.symbol}`), h("td", {}, `${fmtAmount(p.amount)} ${p.base}`),
      h("td", {}, p.mid == null ? "—" : fmtAmount(p.mid)),
      h("td", {}, p.value == null ? "—" : `${fmtAmount(p.value)} ${p.quote}`),
      h("td", { class: pnl == null ? "" : pnl < 0 ? "pnl-loss" : "pnl-gain" }, p.pnl == null ? "—" : `${fmtAmount(p.pnl)} ${p.quote}`),
      h("td", {}, p.orders));
  });
  setPanel("positions", rows.length ? table(["strategy", "market", "position", "mid", "value", "P&L", "orders"], rows)
    : h("p", { class: "muted" }, "no strategy holds anything yet"));
}

function renderSignals(s) {
  if (notConfigured("signals", s.signals)) return;
  const rows = (s.signals.data || []).map((x) => h("tr", { "data-signal": x.signal_id, class: `outcome-${x.status}` },
    h("td", {}, fmtTime(x.received_at)), h("td", {}, x.signal_id), h("td", {}, `${x.action} ${x.symbol}`),
    h("td", {}, x.amount ? fmtAmount(x.amount) : x.percent ? `${fmtAmount(x.percent)}%` : "all"),
    h("td", {}, x.strategy || "—"),
    h("td", {}, pill(x.status, x.status === "refused" ? "unhealthy" : x.status === "ordered" ? "healthy" : "")),
    h("td", { class: "detail" }, x.status === "refused" ? x.reason : x.client_order_id || "")));
  setPanel("signals", rows.length ? table(["received", "signal", "action", "size", "strategy", "outcome", "order / why refused"], rows)
    : h("p", { class: "muted" }, "no signals yet"));
}

function renderWebhooks(s) {
  if (notConfigured("webhooks", s.webhooks)) return;
  setPanel("webhooks", h("dl", { class: "kv" }, Object.entries(s.webhooks.data).map(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v))])));
}

function renderActions(s) {
  const halted = s.orders.configured ? s.orders.data.halted : null;
  const rows = [];
  if (s.orders.configured) {
    rows.push(h("p", {}, "New orders: ", pill(halted ? "halted" : "allowed", halted ? "open" : "closed")));
    for (const [key, why] of Object.entries(s.orders.data.halts || {})) rows.push(h("p", { class: "muted" }, `${key}: ${why}`));
    rows.push(h("div", { class: "actions-row" },
      h("button", { class: "danger", id: "kill-on", onclick: () => act("Turn the kill switch ON (halt new orders)", "POST", "/api/killswitch", { on: true }) }, "kill switch on"),
      h("button", { id: "kill-off", onclick: () => act("Turn the kill switch OFF (resume orders)", "POST", "/api/killswitch", { on: false }) }, "kill switch off"),
      h("button", { class: "danger", id: "cancel-all", onclick: () => act("Cancel EVERY open order this kernel placed", "POST", "/api/orders/cancel-all", { reason: "dashboard cancel-all" }) }, "cancel all orders")));
  } else {
    rows.push(h("p", { class: "not-configured" }, "kill switch: not configured (no order pipeline)"));
  }
  rows.push(h("p", { class: "muted" }, s.status.actions_enabled
    ? "Every action asks for confirmation, needs the token and is written to the audit log."
    : "Actions are disabled: the kernel has no [dashboard] token."));
  setPanel("actions", rows);
}

function renderAudit(s) {
  if (!s.audit.length) { setPanel("audit", h("p", { class: "muted" }, "no actions yet")); return; }
  setPanel("audit", table(["at", "action", "target", "outcome", "detail", "client"], s.audit.map((e) => h("tr", {},
    h("td", {}, fmtTime(e.at)), h("td", {}, e.action), h("td", {}, e.target),
    h("td", {}, pill(e.outcome, e.outcome === "ok" ? "yes" : "no")), h("td", { class: "detail" }, e.detail), h("td", {}, e.client)))));
}

function renderErrors(s) {
  const el = document.getElementById("errors");
  const entries = Object.entries(s.errors || {});
  el.hidden = !entries.length;
  el.textContent = entries.length ? `Degraded: ${entries.map(([area, why]) => `${area}: ${why}`).join("; ")}` : "";
}

function render(s) {
  const steps = [renderHeader, renderErrors, renderComponents, renderBreakers, renderLeadership, renderHealth, renderAlerts, renderFailovers,
    (x) => statsTable("pools", x.pools, ["size", "in_use", "idle", "waiting", "timeouts"]),
    (x) => statsTable("limiters", x.limiters, ["headroom", "used", "limit", "per", "granted", "rejected"]),
    (x) => statsTable("bulkheads", x.bulkheads, ["in_flight", "waiting", "max_concurrent", "rejected"]),
    renderOrders, renderPositions, renderSignals, renderLedger, renderWebhooks, renderActions, renderAudit];
  for (const step of steps) {
    try { step(s); } catch (err) { console.warn("render step failed", step.name, err); }
  }
}

// ---------------------------------------------------------------------------------- live feed

function accept(snapshot) {
  state.snapshot = snapshot;
  state.lastUpdate = Date.now();
  render(snapshot);
  tick();
}

async function refreshOnce() {
  try {
    const res = await fetch("/api/snapshot", { headers: authHeaders() });
    if (res.ok) accept(await res.json());
  } catch (err) { /* the stream reports connection trouble */ }
}

async function stream() {
  for (;;) {
    try {
      const res = await fetch("/api/events", { headers: { Accept: "text/event-stream", ...authHeaders() } });
      if (res.status === 401 || res.status === 403) {
        document.getElementById("freshness").textContent = "reads need the dashboard token";
        await new Promise((r) => setTimeout(r, 2000));
        continue;
      }
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
      state.backoff = 500;
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          let event = "message", data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("event: ")) event = line.slice(7);
            else if (line.startsWith("data: ")) data += line.slice(6);
          }
          if (event === "snapshot" && data) accept(JSON.parse(data));
        }
      }
    } catch (err) {
      document.getElementById("freshness").textContent = `connection lost, retrying (${err.message || err})`;
    }
    await new Promise((r) => setTimeout(r, state.backoff));
    state.backoff = Math.min(state.backoff * 2, 10000);
  }
}

function tick() {
  const age = state.lastUpdate ? (Date.now() - state.lastUpdate) / 1000 : null;
  const stale = age === null || age > state.staleAfter;
  const banner = document.getElementById("stale");
  banner.hidden = !stale || age === null;
  document.getElementById("stale-age").textContent = age === null ? "?" : age.toFixed(0);
  document.body.classList.toggle("is-stale", stale);
  if (age !== null) document.getElementById("freshness").textContent = stale ? `stale (${age.toFixed(0)} s)` : `live · updated ${fmtTime(state.lastUpdate / 1000)}`;
}

document.addEventListener("DOMContentLoaded", () => {
  const input = document.getElementById("token");
  input.value = sessionStorage.getItem("hr-token") || "";
  input.addEventListener("input", () => sessionStorage.setItem("hr-token", input.value.trim()));
  // Enter in the token field must not submit the form (an inline onsubmit would break the CSP).
  document.getElementById("token-form").addEventListener("submit", (e) => e.preventDefault());
  refreshOnce();
  stream();
  refreshTrends();
  setInterval(tick, 1000);
  setInterval(refreshTrends, 60000);
});
