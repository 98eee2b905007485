// Switchyard dashboard: reads the admin API of the service that serves it.
// Plain JavaScript, no framework. Every value from the API is put in the
// page as text (textContent), never as HTML.
"use strict";

const TOKEN_KEY = "switchyard.admin.token";
const OVERVIEW_EVERY_MS = 2000;
const LETTERS_EVERY_MS = 3000;
const SVG = "http://www.w3.org/2000/svg";

const $ = (id) => document.getElementById(id);

const state = {
  info: null,          // GET /admin/info
  handlers: [],        // GET /admin/handlers .handlers
  subs: [],            // GET /admin/subscriptions .subscriptions
  stats: null,         // last GET /admin/stats, with .at (ms)
  dlCounts: {},        // group -> dead letters in its default dead-letter topic
  group: "",           // the group the dead-letter view shows
  letters: [],
  selected: "",        // id of the dead letter shown in detail
  busy: false,         // a replay or purge is running
  timers: {},
};

// ---- small helpers ----

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) e.append(c);
  return e;
}

function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

function fmtNum(n) { return typeof n === "number" ? n.toLocaleString("en") : "–"; }

function fmtTime(s) {
  if (!s) return "–";
  const d = new Date(s);
  if (isNaN(d) || d.getFullYear() < 1971) return "–";
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function ago(s) {
  const d = new Date(s);
  if (!s || isNaN(d)) return "";
  const secs = Math.round((Date.now() - d.getTime()) / 1000);
  if (secs < 60) return secs + "s ago";
  if (secs < 3600) return Math.round(secs / 60) + "m ago";
  if (secs < 86400) return Math.round(secs / 3600) + "h ago";
  return Math.round(secs / 86400) + "d ago";
}

function setStatus(text, isError) {
  const s = $("status");
  s.textContent = text || "";
  s.classList.toggle("error", !!isError);
}

// setResult says how the last replay or purge went, in the dead-letter
// view, where the periodic refresh does not overwrite it.
function setResult(text, isError) {
  const r = $("dl-result");
  r.textContent = text || "";
  r.classList.toggle("error", !!isError);
}

function decodePayload(b64) {
  if (!b64) return "";
  try {
    const bin = atob(b64);
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    const text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    try { return JSON.stringify(JSON.parse(text), null, 2); } catch { return text; }
  } catch {
    return "(" + b64.length + " characters of base64, not UTF-8 text)\n" + b64;
  }
}

// ---- the API ----

class APIError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, body) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) throw new APIError(401, "no token");
  const opts = { headers: { Authorization: "Bearer " + token }, cache: "no-store" };
  if (body !== undefined) {
    opts.method = "POST";
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch(path, opts);
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!resp.ok) {
    const msg = (data && data.error) || resp.status + " " + resp.statusText;
    // A token the API refuses ends the session; a refused write does not.
    if (resp.status === 401 || (resp.status === 403 && msg === "admin: wrong token")) {
      signOut(msg === "admin: wrong token" ? "That token is wrong." : "The API asks for a token.");
    }
    throw new APIError(resp.status, msg);
  }
  return data;
}

// ---- session ----

function signOut(why) {
  sessionStorage.removeItem(TOKEN_KEY);
  for (const t of Object.values(state.timers)) clearTimeout(t);
  state.timers = {};
  state.info = null;
  $("tabs").hidden = true;
  $("session").hidden = true;
  for (const v of document.querySelectorAll(".view")) v.hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = why || "";
  setStatus("");
  $("token").focus();
}

async function signIn() {
  $("login").hidden = true;
  setStatus("Connecting…");
  try {
    state.info = await api("/admin/info");
  } catch (e) {
    if (e.status !== 401 && e.status !== 403) {
      $("login").hidden = false;
      $("login-error").textContent = "Cannot reach the admin API: " + e.message;
    }
    return;
  }
  setStatus("");
  $("tabs").hidden = false;
  $("session").hidden = false;
  $("broker-name").textContent = "broker: " + state.info.broker;
  $("dl-readonly").hidden = state.info.write;
  route();
  refreshOverview();
}

// ---- views ----

const VIEWS = ["overview", "graph", "deadletters"];

function currentView() {
  const v = location.hash.replace(/^#/, "");
  return VIEWS.includes(v) ? v : "overview";
}

function route() {
  if (!state.info) return;
  const view = currentView();
  for (const v of VIEWS) {
    $("view-" + v).hidden = v !== view;
    const tab = $("tab-" + v);
    if (v === view) tab.setAttribute("aria-current", "page"); else tab.removeAttribute("aria-current");
  }
  clearTimeout(state.timers.letters);
  if (view === "graph") loadGraph();
  if (view === "deadletters") { renderGroupSelect(); refreshLetters(); }
}

// ---- overview ----

async function refreshOverview() {
  clearTimeout(state.timers.overview);
  try {
    const [h, s, st] = await Promise.all([api("/admin/handlers"), api("/admin/subscriptions"), api("/admin/stats")]);
    state.handlers = h.handlers || [];
    state.subs = s.subscriptions || [];
    renderStats(st);
    renderHandlers();
    // A listing browses the dead-letter topics, which on RabbitMQ holds
    // their messages for a moment: none while a replay or purge runs.
    if (!state.busy) await refreshDeadLetterCounts();
    renderGroups();
    renderGroupSelect();
    if (!state.busy) setStatus("Updated " + new Date().toLocaleTimeString());
  } catch (e) {
    if (e.status === 401 || (e.status === 403 && e.message === "admin: wrong token")) return;
    setStatus("Refresh failed: " + e.message, true);
  }
  if (sessionStorage.getItem(TOKEN_KEY)) state.timers.overview = setTimeout(refreshOverview, OVERVIEW_EVERY_MS);
}

function renderStats(st) {
  const now = Date.now();
  const prev = state.stats;
  for (const k of ["handled", "published", "retried", "dead_lettered", "nacked", "duplicates"]) {
    $("c-" + k).textContent = fmtNum(st[k]);
    let rate = "";
    if (prev) {
      const dt = (now - prev.at) / 1000;
      if (dt > 0) rate = ((st[k] - prev.data[k]) / dt).toFixed(1) + " /s";
    }
    $("r-" + k).textContent = rate;
  }
  state.stats = { at: now, data: st };
}

function groups() {
  return [...new Set(state.subs.map((s) => s.Group))].sort();
}

async function refreshDeadLetterCounts() {
  const counts = {};
  await Promise.all(groups().map(async (g) => {
    try {
      const l = await api("/admin/dlq?group=" + encodeURIComponent(g));
      counts[g] = l.topics.reduce((n, t) => n + t.count, 0);
    } catch (e) {
      counts[g] = null; // the broker cannot browse it; shown as –
    }
  }));
  state.dlCounts = counts;
  const total = Object.values(counts).reduce((n, c) => n + (c || 0), 0);
  $("dl-badge").textContent = String(total);
  $("dl-badge").hidden = total === 0;
}

function renderHandlers() {
  const body = $("handlers").tBodies[0];
  const rows = state.handlers.map((h) => el("tr", {},
    el("td", {}, el("strong", { text: h.Handler })),
    el("td", { text: h.Group }),
    el("td", { class: "mono", text: h.Topic }),
    el("td", { class: "mono", text: h.EventType }),
    el("td", { class: "num", text: String(h.Concurrency) }),
    el("td", { class: "num", text: String(h.MaxAttempts) }),
    el("td", { class: "semantics" },
      el("dl", {},
        el("dt", { text: "delivery" }), el("dd", { text: h.Delivery || "–" }),
        el("dt", { text: "order" }), el("dd", { text: h.Order || "–" }),
        el("dt", { text: "retry" }), el("dd", { text: h.Retry || "–" }),
        el("dt", { text: "dead letters" }), el("dd", { text: h.DeadLetter || "–" })))));
  body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 7, class: "empty", text: "No handlers registered." }))]));
}

function renderGroups() {
  const body = $("groups").tBodies[0];
  const rows = state.subs.map((s) => {
    let backlog = "–";
    if (s.backlog) {
      backlog = fmtNum(s.backlog.Messages);
      const parts = s.backlog.Partitions ? Object.keys(s.backlog.Partitions).length : 0;
      if (parts) backlog += " over " + parts + " partition" + (parts === 1 ? "" : "s");
    }
    const dl = state.dlCounts[s.Group];
    const dlCell = el("td", { class: "num" });
    if (typeof dl === "number" && dl > 0) {
      dlCell.append(el("a", { href: "#deadletters", class: "bad", text: fmtNum(dl), "data-group": s.Group,
        onclick: () => { state.group = s.Group; } }));
    } else {
      dlCell.textContent = typeof dl === "number" ? "0" : "–";
    }
    const health = s.Healthy
      ? el("span", { class: "ok", text: "healthy" })
      : el("span", { class: "bad", text: "failing " + s.FailurePathFailures + "× since " + ago(s.Since), title: s.LastError || "" });
    return el("tr", {},
      el("td", {}, el("strong", { text: s.Group })),
      el("td", { class: "mono", text: s.Topic }),
      el("td", { text: (s.Handlers || []).join(", ") }),
      el("td", {}, health),
      el("td", { class: "num", text: backlog, title: s.backlog_error || "" }),
      dlCell);
  });
  body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 6, class: "empty", text: "No subscriptions: the service is starting or has no handlers." }))]));
}

// ---- event-flow graph ----

async function loadGraph() {
  let g;
  try {
    g = await api("/admin/graph");
  } catch (e) {
    $("graph").replaceChildren(el("p", { class: "error", text: "Cannot read the graph: " + e.message }));
    return;
  }
  $("graph").replaceChildren(drawGraph(g));
}

// layout places the nodes of a directed graph in columns: a node's column
// is the longest path to it from a node nothing points to, edges that
// close a cycle left out; within a column, nodes follow the mean row of
// what points to them, so that edges cross less.
function layout(nodes, edges) {
  const out = new Map(nodes.map((n) => [n.id, []]));
  for (const e of edges) out.get(e.from).push(e);
  // Depth-first search marks the edges that close a cycle.
  const mark = new Map();
  const visit = (id) => {
    mark.set(id, 1);
    for (const e of out.get(id)) {
      const m = mark.get(e.to);
      if (m === 1) e.back = true;
      else if (!m) visit(e.to);
    }
    mark.set(id, 2);
  };
  const indeg = new Map(nodes.map((n) => [n.id, 0]));
  for (const e of edges) indeg.set(e.to, indeg.get(e.to) + 1);
  for (const n of nodes) if (indeg.get(n.id) === 0 && !mark.get(n.id)) visit(n.id);
  for (const n of nodes) if (!mark.get(n.id)) visit(n.id);
  // Longest path over the forward edges, in topological order.
  const fwd = edges.filter((e) => !e.back);
  const col = new Map(nodes.map((n) => [n.id, 0]));
  const left = new Map(nodes.map((n) => [n.id, 0]));
  for (const e of fwd) left.set(e.to, left.get(e.to) + 1);
  const queue = nodes.filter((n) => left.get(n.id) === 0).map((n) => n.id);
  while (queue.length) {
    const id = queue.shift();
    for (const e of fwd.filter((f) => f.from === id)) {
      col.set(e.to, Math.max(col.get(e.to), col.get(id) + 1));
      left.set(e.to, left.get(e.to) - 1);
      if (left.get(e.to) === 0) queue.push(e.to);
    }
  }
  const columns = [];
  for (const n of nodes) (columns[col.get(n.id)] ||= []).push(n);
  const row = new Map();
  columns.forEach((c, ci) => {
    if (ci > 0) {
      const mean = (n) => {
        const rs = fwd.filter((e) => e.to === n.id && row.has(e.from)).map((e) => row.get(e.from));
        return rs.length ? rs.reduce((a, b) => a + b, 0) / rs.length : Infinity;
      };
      c.sort((a, b) => mean(a) - mean(b) || a.label.localeCompare(b.label));
    }
    c.forEach((n, i) => row.set(n.id, i));
  });
  return { columns: columns.filter(Boolean), col, row };
}

function drawGraph(g) {
  const handlers = g.handlers || [];
  if (!handlers.length) return el("p", { class: "note", text: "No handlers registered." });
  const failing = new Set();
  for (const s of state.subs) if (state.dlCounts[s.Group] > 0) for (const h of s.Handlers || []) failing.add(h);
  const nodes = [], edges = [];
  const ids = new Map();
  const node = (kind, name, sub) => {
    const id = kind + ":" + name;
    if (!ids.has(id)) {
      ids.set(id, { id, kind, label: name, sub });
      nodes.push(ids.get(id));
    }
    return id;
  };
  const topics = new Map((g.events || []).map((e) => [e.name, e.topic]));
  for (const h of handlers) {
    const hid = node("handler", h.name, "group " + (h.group || "–"));
    if (h.consumes) edges.push({ from: node("event", h.consumes, topics.get(h.consumes) || h.topic), to: hid });
    for (const p of h.publishes || []) edges.push({ from: hid, to: node("event", p, topics.get(p) || "") });
  }
  const { columns, col, row } = layout(nodes, edges);
  const charW = 7.2, nodeH = 44, gapX = 70, gapY = 22, pad = 16;
  const colW = columns.map((c) => Math.max(150, ...c.map((n) => Math.max(n.label.length, (n.sub || "").length) * charW + 24)));
  const colX = [];
  colW.reduce((x, w, i) => { colX[i] = x; return x + w + gapX; }, pad);
  const maxRows = Math.max(...columns.map((c) => c.length));
  const height = pad * 2 + maxRows * nodeH + (maxRows - 1) * gapY + 30;
  const width = colX[colX.length - 1] + colW[colW.length - 1] + pad;
  const pos = new Map();
  columns.forEach((c, ci) => {
    const offset = ((maxRows - c.length) * (nodeH + gapY)) / 2;
    c.forEach((n) => pos.set(n.id, { x: colX[ci], y: pad + offset + row.get(n.id) * (nodeH + gapY), w: colW[ci] }));
  });
  const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `Event flow: ${handlers.length} handlers, ${nodes.length - handlers.length} event types` });
  root.append(svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
    svg("path", { d: "M 0 0 L 10 5 L 0 10 z" }))));
  for (const e of edges) {
    const a = pos.get(e.from), b = pos.get(e.to);
    let d;
    if (e.back || col.get(e.to) <= col.get(e.from)) {
      // A cycle: out of the bottom of the source, under, into the bottom of the target.
      const x1 = a.x + a.w / 2, y1 = a.y + nodeH, x2 = b.x + b.w / 2, y2 = b.y + nodeH;
      const low = Math.max(y1, y2) + 28;
      d = `M ${x1} ${y1} C ${x1} ${low}, ${x2} ${low}, ${x2} ${y2}`;
    } else {
      const x1 = a.x + a.w, y1 = a.y + nodeH / 2, x2 = b.x, y2 = b.y + nodeH / 2, mx = (x1 + x2) / 2;
      d = `M ${x1} ${y1} C ${mx} ${y1}, ${mx} ${y2}, ${x2} ${y2}`;
    }
    root.append(svg("path", { d, class: "edge" + (e.back ? " cycle" : ""), "marker-end": "url(#arrow)" }));
  }
  for (const n of nodes) {
    const p = pos.get(n.id);
    const title = svg("title", {});
    title.textContent = (n.kind === "event" ? "event type " : "handler ") + n.label + (n.sub ? " (" + n.sub + ")" : "");
    const label = svg("text", { x: p.x + 10, y: p.y + 18 });
    label.textContent = n.label;
    const sub = svg("text", { x: p.x + 10, y: p.y + 34, class: "sub" });
    sub.textContent = n.sub || "";
    const cls = "node-" + n.kind + (n.kind === "handler" && failing.has(n.label) ? " failing" : "");
    root.append(svg("g", { class: cls, "data-name": n.label }, title,
      svg("rect", { x: p.x, y: p.y, width: p.w, height: nodeH, rx: n.kind === "event" ? 14 : 3 }), label, sub));
  }
  return root;
}

// ---- dead letters ----

function renderGroupSelect() {
  const sel = $("dl-group");
  const gs = groups();
  if (!state.group || !gs.includes(state.group)) state.group = gs[0] || "";
  const opts = gs.map((g) => {
    const n = state.dlCounts[g];
    return el("option", { value: g, selected: g === state.group, text: g + (typeof n === "number" ? " (" + n + ")" : "") });
  });
  // Rebuilding the options while the list is open would close it.
  if (document.activeElement !== sel) sel.replaceChildren(...opts);
}

function filter() {
  const f = {};
  if ($("dl-reason").value) f.reasons = [$("dl-reason").value];
  if ($("dl-handler").value) f.handlers = [$("dl-handler").value];
  return f;
}

function fillChoices(id, values) {
  const sel = $(id);
  if (document.activeElement === sel) return;
  const keep = sel.value;
  const all = [...new Set(values.filter(Boolean))].sort();
  if (keep && !all.includes(keep)) all.push(keep);
  sel.replaceChildren(el("option", { value: "", text: "any" }), ...all.map((v) => el("option", { value: v, text: v, selected: v === keep })));
}

async function refreshLetters() {
  clearTimeout(state.timers.letters);
  if (currentView() !== "deadletters") return;
  const g = state.group;
  if (!g) {
    $("dl-summary").textContent = "No consumer groups yet.";
  } else if (!state.busy) {
    const q = new URLSearchParams({ group: g, letters: "true" });
    if ($("dl-reason").value) q.set("reason", $("dl-reason").value);
    if ($("dl-handler").value) q.set("handler", $("dl-handler").value);
    try {
      const l = await api("/admin/dlq?" + q);
      if (g === state.group) renderLetters(l.topics[0]);
    } catch (e) {
      if (e.status !== 401) $("dl-summary").textContent = "Cannot list dead letters: " + e.message;
    }
  }
  updateButtons();
  if (sessionStorage.getItem(TOKEN_KEY)) state.timers.letters = setTimeout(refreshLetters, LETTERS_EVERY_MS);
}

// updateButtons enables Replay and Purge when the API allows writes, none
// is running and the list shows dead letters.
function updateButtons() {
  const off = !(state.info && state.info.write) || state.busy || state.letters.length === 0;
  $("dl-replay").disabled = off;
  $("dl-purge").disabled = off;
}

function renderLetters(summary) {
  state.letters = summary.letters || [];
  fillChoices("dl-reason", (summary.by_handler_reason || []).map((c) => c.reason));
  fillChoices("dl-handler", (summary.by_handler_reason || []).map((c) => c.handler));
  $("dl-summary").textContent = summary.count === 0
    ? "No dead letters in " + summary.topic + "."
    : summary.count + " dead letter" + (summary.count === 1 ? "" : "s") + " in " + summary.topic + ", oldest first.";
  const body = $("letters").tBodies[0];
  const rows = state.letters.map((l) => el("tr", { "data-id": l.id, class: l.id === state.selected ? "selected" : "" },
    el("td", { text: fmtTime(l.failed_at), title: ago(l.failed_at) }),
    el("td", { class: "mono", text: l.type || "–" }),
    el("td", { text: l.handler || "–" }),
    el("td", { text: l.reason || "–" }),
    el("td", { class: "num", text: l.attempts ? String(l.attempts) : "–" }),
    el("td", {}, el("button", { type: "button", class: "link", "aria-label": "Show dead letter " + l.id, text: l.id,
      onclick: () => showLetter(l.id) }))));
  body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 6, class: "empty", text: "No dead letters." }))]));
  if (state.selected && !state.letters.some((l) => l.id === state.selected)) closeLetter();
}

async function showLetter(id) {
  let l;
  try {
    l = await api("/admin/dlq/letter?" + new URLSearchParams({ group: state.group, id }));
  } catch (e) {
    setResult("Dead letter " + id + ": " + e.message, true);
    return;
  }
  state.selected = id;
  for (const tr of $("letters").tBodies[0].rows) tr.classList.toggle("selected", tr.dataset.id === id);
  const fields = [
    ["Message id", l.id], ["Event type", l.type], ["Key", l.key], ["Handler", l.handler], ["Group", l.group],
    ["Original topic", l.original_topic], ["Kept on", l.topic], ["Reason", l.reason],
    ["Attempts", l.attempts ? String(l.attempts) : "–"], ["First failure", fmtTime(l.first_failure)],
    ["Failed at", fmtTime(l.failed_at)], ["Replayed", String(l.replays || 0) + " time" + (l.replays === 1 ? "" : "s")],
  ];
  $("letter-fields").replaceChildren(...fields.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v || "–" })]));
  // The error chain as Go wraps it: "outer: inner: cause", outermost first.
  const chain = (l.error || "").split(": ").filter(Boolean);
  $("letter-chain").replaceChildren(...(chain.length ? chain.map((c) => el("li", { text: c })) : [el("li", { text: "no error recorded" })]));
  const headers = Object.entries(l.headers || {}).sort(([a], [b]) => a.localeCompare(b));
  $("letter-headers").tBodies[0].replaceChildren(...headers.map(([k, v]) => el("tr", {}, el("td", { text: k }), el("td", { class: "mono", text: v }))));
  $("letter-payload").textContent = decodePayload(l.payload);
  $("letter").hidden = false;
  $("h-letter").textContent = "Dead letter " + l.id;
  $("letter-close").focus();
}

function closeLetter() {
  state.selected = "";
  $("letter").hidden = true;
  for (const tr of $("letters").tBodies[0].rows) tr.classList.remove("selected");
}

// confirm shows the dialog and resolves to true when the operator
// confirms: Enter on the focused Confirm button, or a click; Escape or
// Cancel resolve to false.
function confirmDialog(title, text, ids) {
  const d = $("confirm");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-ids").replaceChildren(...ids.slice(0, 50).map((id) => el("li", { text: id })),
    ...(ids.length > 50 ? [el("li", { text: "… and " + (ids.length - 50) + " more" })] : []));
  return new Promise((resolve) => {
    d.returnValue = "";
    d.addEventListener("close", () => resolve(d.returnValue === "ok"), { once: true });
    d.showModal();
    $("confirm-ok").focus();
  });
}

// run posts a replay or purge. A run that reached none of the dead letters
// it saw (held for a moment elsewhere: a listing's browse, another
// operator) did nothing, so it is tried again, a few times.
async function run(path, body) {
  let res;
  for (let i = 0; i < 4; i++) {
    res = await api(path, body);
    if (res.count > 0 || !res.left_not_reached) return res;
    await new Promise((r) => setTimeout(r, 1000));
  }
  return res;
}

async function drain(replay) {
  const verb = replay ? "Replay" : "Purge";
  const button = $(replay ? "dl-replay" : "dl-purge");
  const body = { group: state.group, filter: filter() };
  state.busy = true;
  updateButtons();
  try {
    setResult("Counting what " + verb.toLowerCase() + " would take (dry run)…");
    const dry = await run("/admin/dlq/" + verb.toLowerCase(), { ...body, dry_run: true });
    setResult("");
    if (dry.count === 0) {
      setResult(dry.left_not_reached
        ? dry.left_not_reached + " dead letter(s) could not be reached (held elsewhere): try again."
        : "No dead letter matches: nothing to " + verb.toLowerCase() + ".");
      return;
    }
    const what = dry.count + " dead letter" + (dry.count === 1 ? "" : "s") + " of " + dry.topic;
    const text = replay
      ? "Replay " + what + " to the consumer group that gave up on them? They leave the dead-letter topic."
      : "Purge " + what + "? They are deleted for good.";
    if (!(await confirmDialog(verb + " " + dry.count + " dead letter" + (dry.count === 1 ? "" : "s") + "?", text, dry.ids || []))) {
      setResult(verb + " cancelled.");
      return;
    }
    setResult(verb + " running…");
    const res = await run("/admin/dlq/" + verb.toLowerCase(), body);
    let msg = (replay ? "Replayed " : "Purged ") + res.count + " dead letter" + (res.count === 1 ? "" : "s") + ".";
    const left = res.left_not_reached + (res.left_without_original_topic || 0);
    if (left) msg += " " + left + " left (in flight, behind another key, or without an original topic): try again.";
    setResult(msg);
  } catch (e) {
    setResult(verb + " failed: " + e.message, true);
  } finally {
    state.busy = false;
    updateButtons();
    button.focus();
    refreshLetters();
  }
}

// ---- wiring ----

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = $("token").value.trim();
    if (!t) return;
    sessionStorage.setItem(TOKEN_KEY, t);
    $("token").value = "";
    signIn();
  });
  $("signout").addEventListener("click", () => signOut("Token forgotten."));
  $("dl-filter").addEventListener("submit", (ev) => { ev.preventDefault(); refreshLetters(); });
  $("dl-group").addEventListener("change", () => { state.group = $("dl-group").value; closeLetter(); refreshLetters(); });
  $("dl-reason").addEventListener("change", refreshLetters);
  $("dl-handler").addEventListener("change", refreshLetters);
  $("dl-replay").addEventListener("click", () => drain(true));
  $("dl-purge").addEventListener("click", () => drain(false));
  $("letter-close").addEventListener("click", closeLetter);
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && !$("letter").hidden && !$("confirm").open) closeLetter();
  });
  window.addEventListener("hashchange", route);
  if (sessionStorage.getItem(TOKEN_KEY)) signIn(); else signOut("");
});
