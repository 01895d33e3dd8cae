// The dashboard: reads /dashboard/stream (SSE over fetch, so the operator token travels in a
// header, never in a URL) and draws everything itself: no framework, no asset from elsewhere.
"use strict";

const KEY = "polystream.operator";
const WINDOW_S = 300; // the charts show the last five minutes
const COLORS = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948",
  "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
const $ = (id) => document.getElementById(id);
const series = { produced: new Map(), consumed: new Map() };
let controller = null;
const posterUrls = new Map();

function token() { return sessionStorage.getItem(KEY) || ""; }
function auth() { return { Authorization: "Bearer " + token() }; }

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}
const fmt = (n) => Number(n).toLocaleString("en-US", { maximumFractionDigits: 1 });
const short = (topic) => topic.replace(/^polystream\./, "");

function showLogin(message) {
  $("board").hidden = true; $("logout").hidden = true; $("login").hidden = false;
  $("login-error").textContent = message || "";
}

async function connect() {
  if (controller) controller.abort();
  controller = new AbortController();
  $("login").hidden = true; $("board").hidden = false; $("logout").hidden = false;
  setStatus("connecting", "");
  let response;
  try {
    response = await fetch("/dashboard/stream", { headers: auth(), signal: controller.signal });
  } catch (e) { return retry(); }
  if (response.status === 401 || response.status === 403) {
    const body = await response.json().catch(() => ({}));
    sessionStorage.removeItem(KEY);
    return showLogin(body.detail || "refused");
  }
  if (!response.ok) return retry();
  setStatus("live", "ok");
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    let chunk;
    try { chunk = await reader.read(); } catch (e) { break; }
    if (chunk.done) break;
    buffer += decoder.decode(chunk.value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
      let event = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) event = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (event === "history") JSON.parse(data).forEach(addPoints);
      else if (event === "frame") render(JSON.parse(data));
    }
  }
  retry();
}

function retry() {
  setStatus("reconnecting", "bad");
  setTimeout(() => { if (token()) connect(); }, 2000);
}

function setStatus(text, cls) { const s = $("status"); s.textContent = text; s.className = "pill " + cls; }

function addPoints(p) {
  for (const [kind, rates] of [["produced", p.produced], ["consumed", p.consumed]]) {
    for (const [name, value] of Object.entries(rates || {})) {
      if (!series[kind].has(name)) series[kind].set(name, []);
      const points = series[kind].get(name);
      if (!points.length || points[points.length - 1][0] < p.t) points.push([p.t, value]);
      while (points.length && points[0][0] < p.t - WINDOW_S) points.shift();
    }
  }
}

function render(frame) {
  const s = frame.snapshot;
  addPoints({ t: s.taken_at, produced: frame.produced_rate, consumed: frame.consumed_rate });
  const eventTopics = Object.entries(s.produced).filter(([t]) => !/deadletter|receipts/.test(t));
  $("c-produced").textContent = fmt(eventTopics.reduce((a, [, n]) => a + n, 0));
  $("c-rate").textContent = fmt(Object.entries(frame.produced_rate)
    .filter(([t]) => !/deadletter|receipts/.test(t)).reduce((a, [, n]) => a + n, 0));
  $("c-lag").textContent = fmt(s.groups.reduce((a, g) => a + g.lag, 0));
  $("c-dead").textContent = fmt(s.dead_letters);
  $("c-streams").textContent = fmt(s.active_streams);
  $("now").textContent = s.now.replace("T", " ").slice(0, 19);
  drawChart($("chart-produced"), $("legend-produced"), series.produced, short);
  drawChart($("chart-consumed"), $("legend-consumed"), series.consumed, (n) => n);
  renderLag(s.groups, frame.stalled);
  renderStores(s.stores);
  renderDead(s);
  for (const key of ["top_rated", "trending", "most_watched"]) renderRanking($(key), s[key]);
  renderRecent(s.recent_events);
}

function drawChart(canvas, legend, data, label) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 34;
  ctx.clearRect(0, 0, w, h);
  let tMax = 0, tFirst = Infinity, yMax = 1;
  for (const points of data.values()) {
    for (const [t, v] of points) { tMax = Math.max(tMax, t); tFirst = Math.min(tFirst, t); yMax = Math.max(yMax, v); }
  }
  // Until five minutes have been seen, the whole width shows what there is.
  const span = Math.max(10, Math.min(WINDOW_S, tMax - tFirst));
  const tMin = tMax - span;
  ctx.strokeStyle = "#ccd"; ctx.fillStyle = "#667"; ctx.font = "11px sans-serif"; ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = h - pad - ((h - 2 * pad) * i) / 4;
    ctx.beginPath(); ctx.moveTo(pad, y); ctx.lineTo(w - 6, y); ctx.stroke();
    ctx.fillText(fmt((yMax * i) / 4), 2, y + 4);
  }
  ctx.fillText(span >= 120 ? `-${Math.round(span / 60)} min` : `-${Math.round(span)} s`, pad, h - 8);
  ctx.fillText("now", w - 30, h - 8);
  legend.replaceChildren();
  let i = 0;
  canvas.dataset.points = "0";
  for (const [name, points] of [...data.entries()].sort()) {
    const color = COLORS[i++ % COLORS.length];
    legend.append(el("span", { style: "color:" + color }, "■ " + label(name)));
    if (!points.length) continue;
    ctx.strokeStyle = color; ctx.lineWidth = 2; ctx.beginPath();
    points.forEach(([t, v], k) => {
      const x = pad + (Math.max(0, t - tMin) / span) * (w - pad - 6);
      const y = h - pad - (v / yMax) * (h - 2 * pad);
      if (k === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
    canvas.dataset.points = String(Number(canvas.dataset.points) + points.length);
  }
}

function renderLag(groups, stalled) {
  const rows = groups.map((g) => {
    const hot = Object.entries(g.partitions).filter(([, n]) => n > 0)
      .sort((a, b) => b[1] - a[1]).slice(0, 4).map(([p, n]) => `${short(p)}: ${fmt(n)}`).join(", ");
    const stuck = stalled.includes(g.sink);
    return el("tr", { class: stuck ? "warn" : "" }, el("td", {}, g.sink),
      el("td", { class: "num" }, fmt(g.consumed)), el("td", { class: "num" }, fmt(g.lag)),
      el("td", {}, stuck ? "⚠ not moving" : (g.lag ? hot : "caught up")));
  });
  $("lag").replaceChildren(el("table", {}, el("tr", {}, el("th", {}, "sink"),
    el("th", {}, "committed"), el("th", {}, "lag"), el("th", {}, "partitions behind")), ...rows));
}

function renderStores(stores) {
  $("stores").replaceChildren(...stores.map((st) => el("div", { class: "store " + (st.healthy ? "ok" : "bad") },
    el("b", {}, (st.healthy ? "● " : "✖ ") + st.name), el("small", {}, " " + st.role),
    el("div", { class: "sizes" }, st.healthy
      ? Object.entries(st.sizes).map(([k, n]) => `${k} ${fmt(n)}`).join(" · ") : st.detail))));
}

function renderDead(s) {
  const list = s.latest_dead_letters.map((d) => el("li", {},
    el("a", { href: "#", onclick: (e) => { e.preventDefault(); if (d.event_id) trace(d.event_id); } },
      d.event_type || "?"), ` ${d.reason || "no reason"} (${d.consumer || "?"})`));
  $("dead").replaceChildren(el("p", {}, `${fmt(s.dead_letters)} in the dead-letter topic`),
    el("ul", { class: "links" }, ...list));
}

function renderRanking(target, rows) {
  target.replaceChildren(...rows.map((r) => {
    const img = el("img", { alt: "", width: "28", height: "40" });
    if (r.poster) poster(r.poster).then((url) => { if (url) img.src = url; });
    return el("li", {}, img, el("span", { class: "title" }, r.title), el("span", { class: "num" }, fmt(r.score)));
  }));
}

async function poster(assetId) {
  if (!posterUrls.has(assetId)) {
    posterUrls.set(assetId, fetch("/dashboard/posters/" + encodeURIComponent(assetId), { headers: auth() })
      .then((r) => (r.ok ? r.blob() : null)).then((b) => (b ? URL.createObjectURL(b) : null))
      .catch(() => null));
  }
  return posterUrls.get(assetId);
}

function eventLink(e) {
  return el("li", {}, el("a", { href: "#", onclick: (ev) => { ev.preventDefault(); trace(e.event_id); } },
    e.type || e.event_id), el("small", {}, " " + (e.occurred_at || "").replace("T", " ").slice(0, 19)));
}

function renderRecent(events) {
  if ($("recent").dataset.frozen) return;
  $("recent").replaceChildren(...events.slice(0, 5).map(eventLink));
}

async function trace(eventId) {
  $("lineage-id").value = eventId;
  const r = await fetch("/dashboard/lineage/" + encodeURIComponent(eventId), { headers: auth() });
  const body = await r.json();
  if (!r.ok) { $("lineage").replaceChildren(el("p", { class: "bad" }, body.detail)); return; }
  $("lineage").replaceChildren(
    el("p", {}, el("b", {}, body.type || "?"), ` on ${short(body.topic || "?")}[${body.partition ?? "?"}]@${body.offset ?? "?"}`),
    el("table", { class: "lineage" }, ...body.steps.map((st) => el("tr", { class: "step " + st.status.replace(/ /g, "-") },
      el("td", {}, st.store), el("td", {}, st.status), el("td", {}, st.reason || ""),
      el("td", {}, (st.processed_at || "").replace("T", " ").slice(0, 23))))),
    ...(body.dead_letters.length ? [el("p", { class: "bad" }, "dead-lettered:"), el("ul", {},
      ...body.dead_letters.map((d) => el("li", {}, `${d.consumer || "?"}: ${d.reason || "no reason"}`)))] : []));
}

async function search(q) {
  const r = await fetch("/dashboard/search?q=" + encodeURIComponent(q), { headers: auth() });
  const body = await r.json();
  if (!r.ok) { $("results").replaceChildren(el("li", { class: "bad" }, body.detail)); return; }
  $("results").replaceChildren(...(body.length ? body.map(eventLink) : [el("li", {}, "nothing found")]));
}

document.addEventListener("DOMContentLoaded", () => {
  // A link printed by `polystream demo` carries the token in the fragment, which the browser
  // never sends to the server; it moves to sessionStorage and leaves the address bar.
  const m = location.hash.match(/token=([^&]+)/);
  if (m) { sessionStorage.setItem(KEY, decodeURIComponent(m[1])); history.replaceState(null, "", location.pathname); }
  $("login").addEventListener("submit", (e) => {
    e.preventDefault(); sessionStorage.setItem(KEY, $("token").value); $("token").value = ""; connect();
  });
  $("logout").addEventListener("click", () => { sessionStorage.removeItem(KEY); if (controller) controller.abort(); showLogin(""); });
  $("lineage-form").addEventListener("submit", (e) => { e.preventDefault(); if ($("lineage-id").value.trim()) trace($("lineage-id").value.trim()); });
  $("search-form").addEventListener("submit", (e) => { e.preventDefault(); if ($("search-q").value.trim()) search($("search-q").value.trim()); });
  if (token()) connect(); else showLogin("");
});
